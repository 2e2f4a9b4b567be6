"""`estimate_bias`: one log in, every position-bias estimator side by side out.

Writes `propensities.json` ({"positions": [1..K], "estimators": {name: [relative examination]}}),
`propensities.csv`, `propensities.png` and the ETL outputs (click log, sessions, stats.json).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ultr.data.batching import BatchIterator, Sessions, read_sessions, session_arrays
from ultr.data.etl import print_stats, run_etl
from ultr.data.io import atomic_path, write_json
from ultr.errors import DataError
from ultr.estimation.propensity import adjacent_chain, all_pairs, count_impressions, pairwise_ratios, pbm_em
from ultr.report import plot_propensity
from ultr.paths import existing
from ultr.workflows import etl_config, prepare_log

ESTIMATORS = ("pbm_em", "harvest_adjacent", "harvest_all_pairs", "dla")


def dla_propensity(sessions: Sessions, cfg: Mapping[str, Any]) -> np.ndarray:
    """DLA with an ID ranker (one score per query-document pair): the propensity read-out."""
    from ultr.experiment import build_steps
    from ultr.train.loop import fit, read_propensity

    clicked = sessions.click.sum(axis=1) > 0  # zero-click sessions carry no DLA gradient
    arrays = {k: v[clicked] for k, v in session_arrays(sessions).items()}
    if not clicked.any():
        raise DataError("no session has a click: DLA cannot estimate position bias from this log")
    d = cfg["dla"]
    K = sessions.list_size
    steps = build_steps("dla", cfg, 0, K, num_items=int(sessions.doc_index.max()) + 1)
    result = fit(
        steps, BatchIterator(arrays, int(d["batch_size"]), int(cfg["seed"])), None, None,
        max_label=1.0, train_steps=int(d["steps"]), eval_every=int(d["steps"]), patience=None,
        seed=int(cfg["seed"]), list_size=K, progress=bool(d.get("progress", True)), name="dla",
    )
    return read_propensity(steps, result.final_state.propensity, K, result.contexts)


def estimate_bias(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path, reader = prepare_log(cfg["log"], run_dir)
    fpath = (cfg.get("features") or {}).get("path")
    stats = run_etl(path, existing(fpath, "features.path") if fpath else None, run_dir, etl_config(cfg["etl"]))
    if reader is not None:
        stats["reader"], stats["quarantined"] = reader, reader["quarantined"]
        write_json(stats, run_dir / "stats.json")
    print_stats(stats, file=sys.stderr)
    sessions = read_sessions(run_dir)
    if fpath:
        # Propensity estimators work per (query, document): re-key feature rows to pair ids.
        sessions.doc_index = np.where(sessions.mask, sessions.doc_index, -1)
    counts = count_impressions(sessions)
    ratio, weight = pairwise_ratios(counts)
    wanted = list(cfg["estimators"])
    unknown = [e for e in wanted if e not in ESTIMATORS]
    if unknown:
        raise DataError(f"estimators {unknown} unknown; choose from {list(ESTIMATORS)}")
    curves: dict[str, np.ndarray] = {}
    if "pbm_em" in wanted:
        curves["pbm_em"] = pbm_em(counts, iterations=int(cfg.get("em_iterations", 200)))
    if "harvest_adjacent" in wanted:
        curves["harvest_adjacent"] = adjacent_chain(ratio)
    if "harvest_all_pairs" in wanted:
        curves["harvest_all_pairs"] = all_pairs(ratio, weight)
    if "dla" in wanted:
        curves["dla"] = dla_propensity(sessions, cfg)
    K = sessions.list_size
    pairs_with_evidence = int((weight > 0).sum())
    out = {
        "positions": list(range(1, K + 1)),
        "estimators": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in curves.items()},
        "ctr": [float(x) for x in stats["ctr_per_position"]],
        "harvest_pairs_with_evidence": pairs_with_evidence,
        "sessions": stats["sessions"],
    }
    write_json(out, run_dir / "propensities.json")
    header = "position," + ",".join(curves) + ",ctr"
    rows = [f"{k + 1}," + ",".join(f"{curves[e][k]:.4f}" for e in curves) + f",{out['ctr'][k]:.4f}" for k in range(K)]
    with atomic_path(run_dir / "propensities.csv") as tmp:
        tmp.write_text("\n".join([header, *rows]) + "\n")
    ctr = np.asarray(out["ctr"])
    plot_propensity({k: list(v) for k, v in curves.items()}, None, run_dir / "propensities.png",
                    reference={"CTR relative to position 1 (not debiased)": list(ctr / ctr[0])})
    print("\n| " + " | ".join(header.split(",")) + " |\n|" + "---|" * (len(curves) + 2), file=sys.stdout)
    for r in rows:
        print("| " + " | ".join(r.split(",")) + " |", file=sys.stdout)
    print(f"\n{pairs_with_evidence} of {K * (K - 1)} position pairs have intervention evidence; run directory: {run_dir}", file=sys.stdout)
    return out

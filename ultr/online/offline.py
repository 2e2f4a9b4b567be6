"""Online against offline (Ai et al., "Unbiased Learning to Rank: Online or Offline?", TOIS 2021):
the offline methods (ultr.methods: DLA, IPS, ...) trained on a click log of as many sessions as each
online run had interactions, logged by the offline experiment's fixed policy (a ranker trained on
`simulation.policy_fraction` of the training queries' labels, its top k shown) under the same user,
and evaluated on the same split. One `ultr.experiment` run per seed, in run_dir/offline/<user>/."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ultr.config import compose
from ultr.experiment import run_experiment
from ultr.online.feed import user_click_model


def offline_config(cfg: Mapping[str, Any], user: str, y_max: int, seed: int) -> dict[str, Any]:
    """The offline experiment's config for this user and seed: the online run's data, a log of
    `online.interactions` sessions of `online.list_size` results, `online.offline.methods` trained
    and reported under their own names (no selection, no fallback), then `online.offline.overrides`."""
    o, off = cfg["online"], cfg["online"]["offline"]
    cm = user_click_model(user, y_max, o.get("click_model"))
    exp = compose("experiment", [
        f"click_model={cm.pop('name')}", f"algorithm.methods=[{','.join(off['methods'])}]",
        f"simulation.sessions={int(o['interactions'])}", f"simulation.list_size={int(o['list_size'])}", f"seed={seed}",
        "selection.reference=null", "fallback.methods=[]", "evaluation.click_sessions=0", *off.get("overrides", [])])
    exp["data"] = dict(cfg["data"])
    exp["click_model"].update(cm)
    return exp


def offline_rows(cfg: Mapping[str, Any], user: str, y_max: int, seeds: list[int], run_dir: Path) -> dict[str, Any]:
    """{method: row} for the offline methods under this user: the evaluated split's metrics per seed."""
    split = cfg["online"]["evaluate_on"]
    per_seed: dict[str, list[dict[str, float]]] = {}
    t0 = time.perf_counter()
    for seed in seeds:
        exp = offline_config(cfg, user, y_max, seed)
        out = run_experiment(exp, run_dir / "offline" / user / f"seed{seed}")
        for method in cfg["online"]["offline"]["methods"]:
            per_seed.setdefault(method, []).append(dict(out["methods"][method][split]))
    rows = {}
    for method, values in per_seed.items():
        ndcg = np.asarray([v["ndcg@10"] for v in values])
        rows[method] = {"offline": True, "sessions": int(cfg["online"]["interactions"]), "final_ndcg@10": ndcg.tolist(),
                        "final": {"ndcg@10": float(ndcg.mean())}, "final_sd": {"ndcg@10": float(ndcg.std(ddof=1)) if len(ndcg) > 1 else 0.0},
                        "ranker": f"MLP {exp['model']['hidden']} {exp['model']['activation']}",
                        "logging": f"{exp['simulation']['logging']} top {exp['simulation']['list_size']} of a ranker on "
                                   f"{exp['simulation']['policy_fraction']:.0%} of the training labels"}
        print(f"offline {user:13s} {method:9s} {split} nDCG@10 {rows[method]['final']['ndcg@10']:.4f} ± "
              f"{rows[method]['final_sd']['ndcg@10']:.4f}  (a log of {rows[method]['sessions']:,} sessions per seed)", file=sys.stderr)
    print(f"offline {user}: {len(seeds)} experiments in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows

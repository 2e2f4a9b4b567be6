"""Online learning to rank: interactions per second of the compiled loop.

    python benchmarks/bench_online.py [--interactions 20000] [--seeds 3]

Per method (PDGD linear and MLP, DBGD, MGD) under the informational user, lists of k=10:
  mq2008  MQ2008 Fold1's training queries (46 features, up to 121 candidates per query)
  c10, c100, c1000  MSLR-shaped synthetic queries (136 features, 5 grades) with exactly 10, 100
      and 1,000 candidates each: how the rate scales with the candidates per query
Rates are steady state (the block is compiled first, then timed), all seeds together.

    python benchmarks/bench_online.py --peer [--peer-batches 10] [--rounds 3] [--data mq2008,c10]

adds ULTRA_pytorch's online PDGD and DBGD (linear ranker, its default batch of 256 queries per
update) on the same lists under the same user (ULTRA's PBM: its exam_prob and click_prob, which are
ultr's `pbm` defaults), side by side in this run: its own virtualenv (benchmarks/_work/ultra-venv:
torch 2.13.0 CPU, numpy, scipy, six, tensorboard), its code exported from the fetched repository
(--ultra-repo, a git directory; `fetch github:ULTR-Community/ULTRA_pytorch`), driven by
ultra_online_runner.py. ultr runs one seed here (as the peer does), in the papers' form (an update
per interaction: `ratio`) and in the peer's own form (an update per 256 interactions, online.batch:
`ratio_batch256`); each ratio is ultr's rate over the peer's, both measured in this run. With
--rounds R the peer and ultr are measured R times in turn, and the median ratio is recorded with
the lowest and highest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import WORK, record  # noqa: E402
from ultr.online.feed import Lists, lists, make_user  # noqa: E402
from ultr.online.loop import run_block  # noqa: E402
from ultr.online.methods import make  # noqa: E402
from ultr.workflows import ingest  # noqa: E402

RUNS = {"pdgd": ("pdgd", {}), "pdgd_mlp": ("pdgd", {"ranker": "mlp", "learning_rate": 0.003}),
        "pdgd_mlp_skip": ("pdgd", {"ranker": "mlp_skip", "learning_rate": 0.01, "linear_learning_rate": 0.1}), "dbgd": ("dbgd", {}), "mgd": ("mgd", {})}


def synthetic(queries: int, candidates: int, features: int = 136, seed: int = 0) -> tuple[jax.Array, Lists]:
    """MSLR-shaped lists: standard-normal features, grades 0-4 in MSLR-WEB30K's proportions."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((queries * candidates, features)).astype(np.float32)
    grades = rng.choice(5, size=queries * candidates, p=[0.52, 0.32, 0.13, 0.02, 0.01]).astype(np.int32)
    doc = np.arange(queries * candidates, dtype=np.int32).reshape(queries, candidates)
    return jnp.asarray(X), Lists(jnp.asarray(doc), jnp.asarray(grades[doc]), jnp.ones(doc.shape, bool))


def rate(name: str, settings: dict, X: jax.Array, train: Lists, y_max: int, seeds: int, n: int,
         user_name: str = "informational", batch: int = 1, min_seconds: float = 1.0) -> float:
    method = make(name, settings)
    user, tables = make_user(user_name, y_max, 10, {})
    states = jax.vmap(lambda kk: method.init(kk, X.shape[1]))(jax.random.split(jax.random.key(0), seeds))
    keys = jax.random.split(jax.random.key(1), seeds)
    states = jax.block_until_ready(run_block(method, user, 10, n, tables, X, train, states, keys, batch))[0]  # compile
    # blocks are repeated until min_seconds have passed: one block of 20k interactions can take
    # 0.1 s, too short a window on a shared machine
    t0, blocks = time.perf_counter(), 0
    while not blocks or time.perf_counter() - t0 < min_seconds:
        jax.block_until_ready(run_block(method, user, 10, n, tables, X, train, states, keys, batch))
        blocks += 1
    return blocks * n * seeds / (time.perf_counter() - t0)


ULTRA_VENV = WORK / "ultra-venv"
ULTRA_ROOT = WORK / "ULTRA_pytorch"
PEER_RUNS = {"pdgd": ("pdgd", {}), "dbgd": ("dbgd", {})}
PEER_BATCH = 256  # ULTRA_pytorch's default batch (main.py --batch_size): queries per update


def ultra_python(repo: str) -> Path:
    """The peer's own virtualenv and code (made once)."""
    py = ULTRA_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ULTRA_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy", "scipy", "six", "tensorboard"], check=True)
    if not (ULTRA_ROOT / "ultra").is_dir():
        ULTRA_ROOT.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "--git-dir", repo, "archive", "HEAD", "ultra"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(ULTRA_ROOT)], input=archive, check=True)
    return py


def peer_rate(py: Path, method: str, X: jax.Array, train: Lists, y_max: int, where: str, batches: int) -> dict:
    """ULTRA_pytorch's rate on these lists under ultr's `pbm` user, written as ULTRA's click-model JSON."""
    _, tables = make_user("pbm", y_max, 10, {})
    model = {"model_name": "position_biased_model", "eta": 1.0,
             "click_prob": np.asarray(tables["attraction"])[:, 0].tolist(), "exam_prob": np.asarray(tables["examination"]).tolist()}
    work = WORK / "online_peer"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pbm.json").write_text(json.dumps(model))
    doc = np.asarray(train.doc)
    np.savez(work / f"{where}.npz", features=np.asarray(X), doc=np.where(np.asarray(train.mask), doc, -1), label=np.asarray(train.label))
    out = work / f"{where}-{method}.json"
    subprocess.run([str(py), str(Path(__file__).resolve().parent / "ultra_online_runner.py"), str(ULTRA_ROOT),
                    str(work / f"{where}.npz"), str(work / "pbm.json"), str(out), "--method", method,
                    "--batches", str(batches), "--batch-size", str(PEER_BATCH)], check=True)
    return json.loads(out.read_text())


def side_by_side(data: dict, args: argparse.Namespace) -> None:
    """Per method and data, `rounds` rounds of the peer then ultr, one after the other (so that a
    slow spell of the shared machine falls on both sides of a round's ratio); a line per round and
    a summary with the median, lowest and highest of the rounds' ratios."""
    py = ultra_python(args.ultra_repo)
    for label, (name, settings) in PEER_RUNS.items():
        for where, (X, train, y_max) in data.items():
            ratios = {1: [], PEER_BATCH: []}
            for r in range(args.rounds):
                peer = peer_rate(py, name, X, train, y_max, where, args.peer_batches)
                n = args.interactions - args.interactions % PEER_BATCH
                ours = {b: rate(name, settings, X, train, y_max, 1, n, user_name="pbm", batch=b) for b in (1, PEER_BATCH)}
                for b in ratios:
                    ratios[b].append(ours[b] / peer["interactions_per_s"])
                record("online_vs_ultra_pytorch", {
                    "run": label, "data": where, "candidates": int(train.doc.shape[1]), "round": r + 1,
                    "ultra_pytorch_interactions_per_s": round(peer["interactions_per_s"], 1),
                    "ultr_interactions_per_s": round(ours[1]), "ratio": round(ratios[1][-1], 1),
                    f"ultr_batch{PEER_BATCH}_interactions_per_s": round(ours[PEER_BATCH]),
                    f"ratio_batch{PEER_BATCH}": round(ratios[PEER_BATCH][-1], 1),
                    "peer": f"{peer['ranker']} ranker, batch {peer['batch_size']}, {peer['interactions']} interactions timed, "
                            f"torch {peer['torch']}, {peer['threads']} threads"})
            record("online_vs_ultra_pytorch_rounds", {
                "run": label, "data": where, "rounds": args.rounds,
                **{f"ratio{'' if b == 1 else f'_batch{b}'}_{stat}": round(float(fn(v)), 1)
                   for b, v in ratios.items() for stat, fn in (("median", np.median), ("min", np.min), ("max", np.max))}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interactions", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mq2008", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/mq2008"))
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--batch", type=int, default=1, help="interactions per update (online.batch); 1 = the papers' form")
    ap.add_argument("--peer", action="store_true", help="ULTRA_pytorch's PDGD and DBGD side by side, instead of ultr's runs alone")
    ap.add_argument("--peer-batches", type=int, default=10, help="timed batches of 256 queries for the peer")
    ap.add_argument("--rounds", type=int, default=1, help="--peer: rounds of peer then ultr per method and data")
    ap.add_argument("--data", default="mq2008,c10,c100,c1000", help="which lists: mq2008, c10, c100, c1000")
    ap.add_argument("--ultra-repo", default="/work/.mirror/ULTR-Community+ULTRA_pytorch/repo")
    args = ap.parse_args()
    features = ingest({"root": args.mq2008, "fold": 1, "num_features": 46}, WORK / "online_mq2008", progress=False)
    data = {"mq2008": (jnp.asarray(features.features), lists(features, "train"), 2)}
    for c in (10, 100, 1000):
        data[f"c{c}"] = (*synthetic(max(50, 20_000 // c), c), 4)
    data = {where: data[where] for where in args.data.split(",")}
    if args.peer:
        side_by_side(data, args)
        return
    for label in args.runs.split(","):
        name, settings = RUNS[label]
        for where, (X, train, y_max) in data.items():
            n = args.interactions - args.interactions % args.batch
            r = rate(name, settings, X, train, y_max, args.seeds, n, batch=args.batch)
            record("online_rate", {"run": label, "data": where, "candidates": int(train.doc.shape[1]), "seeds": args.seeds,
                                   "batch": args.batch, "interactions": n, "interactions_per_s": round(r),
                                   "device": str(jax.devices()[0].device_kind)})


if __name__ == "__main__":
    main()

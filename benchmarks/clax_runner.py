"""Runs inside the CLAX virtualenv (benchmarks/bench_click_models.py creates it): fits CLAX's
models on session arrays written by the benchmark and scores them with CLAX's own metrics.

Usage: clax-venv/bin/python clax_runner.py ARRAYS.npz OUT.json --models pbm,ubm --lr 0.003 --batch 4096
Rows in ARRAYS are pair ids + 1; 0 marks a pair the training log never showed, which CLAX answers
with its learned baseline logit (its embeddings are a baseline plus a per-pair offset)."""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from clax import (CascadeModel, ClickChainModel, DependentClickModel, DynamicBayesianNetwork, PositionBasedModel,
                  UserBrowsingModel)
from clax.metrics import ConditionalPerplexity, LogLikelihood, MultiMetric, Perplexity, Average
from clax.trainer import Trainer
from flax import nnx


def build(name, pairs, K):
    rngs = nnx.Rngs(0)
    return {
        "pbm": lambda: PositionBasedModel(positions=K, query_doc_pairs=pairs, rngs=rngs),
        "cascade": lambda: CascadeModel(query_doc_pairs=pairs, rngs=rngs),
        "dcm": lambda: DependentClickModel(positions=K, query_doc_pairs=pairs, rngs=rngs),
        "ubm": lambda: UserBrowsingModel(positions=K, query_doc_pairs=pairs, rngs=rngs),
        "dbn": lambda: DynamicBayesianNetwork(query_doc_pairs=pairs, rngs=rngs),
        "sdbn": lambda: DynamicBayesianNetwork(query_doc_pairs=pairs, fix_continuation=True, rngs=rngs),
        "ccm": lambda: ClickChainModel(query_doc_pairs=pairs, rngs=rngs),
    }[name]()


def batches(a, split, size, rng=None, where=None):
    rows, clicks, mask = a[f"{split}_rows"], a[f"{split}_click"], a[f"{split}_mask"]
    idx = np.arange(len(rows)) if where is None else np.flatnonzero(where)
    if rng is not None:
        idx = rng.permutation(idx)
    K = rows.shape[1]
    for i in range(0, len(idx), size):
        j = idx[i : i + size]
        yield {"query_doc_ids": rows[j], "clicks": clicks[j].astype(np.float32), "mask": mask[j],
               "positions": np.broadcast_to(np.arange(1, K + 1, dtype=np.int32), rows[j].shape).copy()}


def metrics():
    return MultiMetric({"ll": LogLikelihood(), "ppl": Perplexity(), "cond_ppl": ConditionalPerplexity(),
                        "loss": Average("loss")})


def score(trainer, model, a, split, size, where=None):
    m = metrics()
    for b in batches(a, split, size, where=where):
        trainer._test_step(model, m, b)
    out = {k: float(v) for k, v in m.compute().items()}
    out["perplexity_at"] = [float(x) for x in m.metrics["ppl"].compute_per_rank()]
    return out


def fit(name, a, args):
    K = a["train_rows"].shape[1]
    model = build(name, int(a["pairs"]), K)
    trainer = Trainer(optimizer=optax.adamw(args.lr), epochs=args.epochs)
    optimizer = nnx.ModelAndOptimizer(model, trainer.optimizer)
    train_metrics = MultiMetric({"loss": Average("loss")})
    rng = np.random.default_rng(0)
    best, best_ll, waited, epoch_seconds = nnx.state(model), -np.inf, 0, []
    n = len(a["train_rows"])
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for b in batches(a, "train", args.batch, rng):
            trainer._train_step(model, optimizer, train_metrics, b)
        jax.block_until_ready(nnx.state(model))
        epoch_seconds.append(time.perf_counter() - start)
        ll = score(trainer, model, a, "val", args.batch)["ll"]
        if ll > best_ll + args.min_delta:
            best, best_ll, waited = jax.tree.map(jnp.copy, nnx.state(model)), ll, 0
        else:
            waited += 1
            if waited >= args.patience:
                break
    nnx.update(model, best)
    if args.save_attraction:  # row 0 is the unseen-pair row (CLAX's baseline), rows 1.. the pairs
        ids = np.arange(int(a["pairs"]) + 1, dtype=np.int32)[None, :]
        np.save(f"{args.save_attraction}_{name}.npy", np.asarray(model.attraction.prob({"query_doc_ids": ids})).reshape(-1))
    # The first epoch compiles the step: throughput is taken over the later epochs.
    later = epoch_seconds[1:] or epoch_seconds
    out = {"epochs": len(epoch_seconds), "validation_ll": best_ll, "sessions_per_second": n * len(later) / sum(later),
           "test": score(trainer, model, a, "test", args.batch),
           "test_seen": score(trainer, model, a, "test", args.batch, where=a["test_seen"])}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arrays")
    p.add_argument("out")
    p.add_argument("--models", default="pbm,cascade,dcm,ubm,dbn,sdbn,ccm")
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--min-delta", type=float, default=1e-6)
    p.add_argument("--save-attraction", default="", help="write each model's attraction per row to PREFIX_<model>.npy")
    args = p.parse_args()
    a = dict(np.load(args.arrays))
    result = {name: fit(name, a, args) for name in args.models.split(",")}
    with open(args.out, "w") as fh:
        json.dump({"jax": jax.__version__, "lr": args.lr, "batch": args.batch, "models": result}, fh)


if __name__ == "__main__":
    main()

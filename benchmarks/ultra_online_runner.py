"""Runs ULTRA_pytorch's online PDGD or DBGD, in ULTRA_pytorch's own virtualenv, for bench_online.py.

Usage: ultra-venv/bin/python ultra_online_runner.py ULTRA_ROOT LISTS.npz CLICK_MODEL.json OUT.json
           --method pdgd|dbgd --batches 20 --batch-size 256 --ranker Linear

LISTS.npz holds features [N, F] float32, doc [Q, W] int (rows of features, -1 = padding) and
label [Q, W]. The loop is ULTRA_pytorch's own (main.py's training loop): its
StochasticOnlineSimulationFeed samples `batch-size` queries, ranks them with the model,
samples a Plackett-Luce list, simulates clicks with the click model JSON, and the method
updates. One interaction = one query's displayed list. The first batch is a warm-up, not timed.
Nothing of ultr is imported here: this runs under torch, not jax.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import io
import json
import sys
import time
import types

import numpy as np


def raw_data(npz, rank_list_size):
    from ultra.utils.data_utils import Raw_data
    data = Raw_data()
    features, doc, label = npz["features"], npz["doc"], npz["label"]
    data.features = features.tolist()
    data.feature_size = int(features.shape[1])
    data.initial_list = doc.astype(int).tolist()
    data.labels = np.where(doc >= 0, label, 0).astype(float).tolist()
    data.qids = [str(i) for i in range(doc.shape[0])]
    data.dids = [str(i) for i in range(features.shape[0])]
    data.initial_list_lengths = (doc >= 0).sum(axis=1).tolist()
    data.rank_list_size = int(doc.shape[1])
    return data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ultra_root")
    ap.add_argument("lists")
    ap.add_argument("click_model")
    ap.add_argument("out")
    ap.add_argument("--method", choices=["pdgd", "dbgd"], required=True)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--ranker", default="Linear")
    ap.add_argument("--list-size", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, args.ultra_root)
    import random

    import torch
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    # ultra/ranking_model/base_ranking_model.py imports tensorflow and never uses it (a leftover of
    # the TensorFlow ULTRA); an empty module stands in rather than 600 MB of TensorFlow, installed
    # after torch's tensorboard writer has looked for the real one
    import torch.utils.tensorboard  # noqa: F401
    stub = types.ModuleType("tensorflow")
    stub.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)
    sys.modules.setdefault("tensorflow", stub)
    _as_tensor = torch.as_tensor

    def as_tensor(data, *a, dtype=None, **kw):
        # ULTRA_pytorch passes lists of numpy float32 values with dtype=int64, which torch 1.x cast
        # and torch 2.x refuses; casting in numpy first is what the old torch did
        if isinstance(data, list) and dtype is not None and not dtype.is_floating_point:
            data = np.asarray(data).astype(np.int64)
        return _as_tensor(data, *a, dtype=dtype, **kw)
    torch.as_tensor = as_tensor
    import ultra
    _metric_fn = ultra.utils.make_ranking_metric_fn

    def make_ranking_metric_fn(metric, topn):
        # DBGD.train passes one cutoff where the metrics module (ported from TF-Ranking) wants a
        # list, and fails at HEAD; one cutoff as a list of one, its value unwrapped
        if isinstance(topn, int):
            fn = _metric_fn(metric, [topn])
            return lambda *a, **kw: fn(*a, **kw)[0]
        return _metric_fn(metric, topn)
    ultra.utils.make_ranking_metric_fn = make_ranking_metric_fn
    data = raw_data(np.load(args.lists), args.list_size)
    settings = {
        "train_input_feed": "ultra.input_layer.StochasticOnlineSimulationFeed",
        "train_input_hparams": f"click_model_json={args.click_model}",
        "ranking_model": f"ultra.ranking_model.{args.ranker}", "ranking_model_hparams": "",
        "learning_algorithm": {"pdgd": "ultra.learning_algorithm.PDGD", "dbgd": "ultra.learning_algorithm.DBGD"}[args.method],
        # DBGD's 'Stochastic' strategy reads an hparam `tau` it never defines (fails at HEAD); the
        # deterministic one interleaves the two rankers' top lists, Yue and Joachims' DBGD
        "learning_algorithm_hparams": f"click_model_json={args.click_model},interleave_strategy=Deterministic"
                                      if args.method == "dbgd" else "",
        "metrics": ["ndcg"], "metrics_topn": [10], "objective_metric": "",
        "max_candidate_num": data.rank_list_size, "selection_bias_cutoff": args.list_size,
    }
    quiet = io.StringIO()  # ULTRA prints a line per step; not part of what is timed, but kept off the console
    with contextlib.redirect_stdout(quiet):
        data.pad(settings["max_candidate_num"])
        model = ultra.utils.find_class(settings["learning_algorithm"])(data, settings)
        feed = ultra.utils.find_class(settings["train_input_feed"])(model, args.batch_size, settings["train_input_hparams"])
        seconds, interactions = 0.0, 0
        for b in range(args.batches + 1):
            t0 = time.perf_counter()
            input_feed, info = feed.get_batch(data, check_validation=True)
            model.train(input_feed)
            if b:  # the first batch warms up
                seconds += time.perf_counter() - t0
                interactions += len(info["input_list"])
    out = {"method": args.method, "ranker": args.ranker, "batch_size": args.batch_size, "batches": args.batches,
           "interactions": interactions, "seconds": seconds, "interactions_per_s": interactions / seconds,
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

"""Click models: ultr against CLAX on the Yandex sample, recovery of known parameters, throughput.

  python benchmarks/bench_click_models.py yandex      # fit on trainSample (90/10 early stopping), score on testSample
  python benchmarks/bench_click_models.py truth       # 1M sessions simulated from known PBM, UBM and DBN parameters
  python benchmarks/bench_click_models.py throughput  # sessions/s per epoch, ultr vs CLAX, on the 1M-session log
  python benchmarks/bench_click_models.py scale --models pbm ubm dbn --batch 16384  # 50M-impression Baidu-format log

CLAX (clax-models 0.1.1, jax 0.7.2) runs in its own virtualenv under benchmarks/_work/clax-venv,
created on first use; it is never a dependency of ultr. Both sides get the same sessions, the same
rows, the same batch size and the same learning-rate grid; each picks its rate per model on the
validation part, and only then is the test log scored."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import WORK, record  # noqa: E402
from ultr.click_models.data import ArrayLog  # noqa: E402
from ultr.click_models.evaluate import evaluate  # noqa: E402
from ultr.click_models.pipeline import Prepared, fit_and_score, prepare  # noqa: E402
from ultr.config import compose  # noqa: E402

MODELS = ["pbm", "cascade", "dcm", "ubm", "dbn", "sdbn", "ccm"]
YANDEX = Path(__file__).resolve().parent.parent.parent / "shared/data/yandex-relpred-sample"
CLAX_VENV = WORK / "clax-venv"


def clax_python() -> Path:
    py = CLAX_VENV / "bin/python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CLAX_VENV)], check=True)
        subprocess.run([str(CLAX_VENV / "bin/pip"), "install", "-q", "clax-models==0.1.1", "jax==0.7.2", "jaxlib==0.7.2"], check=True)
    return py


def arrays(log) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = list(log.chunks())
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def export(data: Prepared, path: Path) -> np.ndarray:
    """The three splits as arrays for CLAX: rows + 1, 0 = unseen (CLAX answers it with its baseline)."""
    out = {"pairs": np.int64(data.rows + 1)}
    for split, log in (("train", data.train), ("val", data.val), ("test", data.test)):
        rows, click, mask = arrays(log)
        out[f"{split}_rows"] = np.where(mask, rows + 1, 0).astype(np.int32)
        out[f"{split}_click"], out[f"{split}_mask"] = click, mask
    seen = ((out["test_rows"] > 0) | ~out["test_mask"]).all(axis=1)
    out["test_seen"] = seen
    np.savez(path, **out)
    return seen


def run_clax(npz: Path, lrs: list[float], batch: int, models: list[str], reuse: bool = False) -> dict[float, dict]:
    """CLAX's fits per learning rate; with `reuse`, an earlier run's results for the same arrays are read back."""
    py, runner = clax_python(), Path(__file__).resolve().parent / "clax_runner.py"
    out = {}
    for lr in lrs:
        target = npz.with_name(f"clax_lr{lr}.json")
        if reuse and target.exists() and json.loads(target.read_text())["batch"] == batch:
            out[lr] = json.loads(target.read_text())["models"]
            continue
        subprocess.run([str(py), str(runner), str(npz), str(target), "--models", ",".join(models), "--lr", str(lr),
                        "--batch", str(batch)], check=True)
        out[lr] = json.loads(target.read_text())["models"]
    return out


def ours(cfg_overrides: list[str], data: Prepared, lrs: list[float], models: list[str], seen: np.ndarray) -> dict[float, dict]:
    test = ArrayLog(*arrays(data.test))
    out = {}
    for lr in lrs:
        cfg = compose("click_models", [*cfg_overrides, f"fit.learning_rate={lr}"])
        out[lr] = {}
        for name in models:
            model, fitted, r = fit_and_score(name, cfg, data)
            r["validation_ll"] = max(fitted.validation) if fitted.validation else None
            r["test_seen"] = evaluate(model, fitted.params, test.subset(seen), int(cfg["fit"]["batch_size"]))
            out[lr][name] = r
    return out


def pick(runs: dict[float, dict], name: str, key: str) -> tuple[float, dict]:
    lr = max(runs, key=lambda lr: runs[lr][name][key])
    return lr, runs[lr][name]


def yandex(args) -> None:
    work = WORK / "click_models_yandex"
    overrides = ["log.format=pyclick", f"log.path={YANDEX / 'trainSample.gz'}", f"test.path={YANDEX / 'testSample.gz'}",
                 f"fit.batch_size={args.batch}"]
    data = prepare(compose("click_models", overrides), work)
    seen = export(data, work / "arrays.npz")
    mine = ours(overrides, data, args.lrs, args.models, seen)
    theirs = run_clax(work / "arrays.npz", args.lrs, args.batch, args.models, args.reuse_clax)
    rows = []
    for name in args.models:
        lr_u, u = pick(mine, name, "validation_ll")
        lr_c, c = pick(theirs, name, "validation_ll")
        rows.append({"model": name, "ultr_lr": lr_u, "clax_lr": lr_c,
                     "ultr": {k: u[k] for k in ("log_likelihood", "perplexity", "conditional_perplexity", "epochs", "validation_ll")},
                     "clax": {"log_likelihood": c["test"]["ll"], "perplexity": c["test"]["ppl"],
                              "conditional_perplexity": c["test"]["cond_ppl"], "epochs": c["epochs"],
                              "validation_ll": c["validation_ll"]},
                     "ultr_seen": {"perplexity": u["test_seen"]["perplexity"], "log_likelihood": u["test_seen"]["log_likelihood"]},
                     "clax_seen": {"perplexity": c["test_seen"]["ppl"], "log_likelihood": c["test_seen"]["ll"]}})
    print("| model | ultr LL | CLAX LL | ultr PPL | CLAX PPL | ultr cond. PPL | CLAX cond. PPL | PPL, seen-only sessions (ultr / CLAX) | lr (ultr / CLAX) | validation LL (ultr / CLAX) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        u, c = r["ultr"], r["clax"]
        print(f"| {r['model']} | {u['log_likelihood']:.4f} | {c['log_likelihood']:.4f} | {u['perplexity']:.4f} | {c['perplexity']:.4f} | "
              f"{u['conditional_perplexity']:.4f} | {c['conditional_perplexity']:.4f} | "
              f"{r['ultr_seen']['perplexity']:.4f} / {r['clax_seen']['perplexity']:.4f} | {r['ultr_lr']} / {r['clax_lr']} | "
              f"{u['validation_ll']:.5f} / {c['validation_ll']:.5f} |")
    record("click_models_yandex", {"batch": args.batch, "lrs": args.lrs, "test_sessions": len(data.test),
                                   "seen_only_sessions": int(seen.sum()), "rows": rows})


def known_params(name: str, pairs: int, K: int, rng: np.random.Generator) -> dict:
    """Generating parameters: attraction ~ U(0.05, 0.95) per pair, satisfaction ~ U(0.1, 0.9),
    eye-tracking examination (PBM), gamma_{k,d} = theta_k 0.9^(d-1) (UBM), continuation 0.9 (DBN)."""
    import jax.numpy as jnp
    from ultr.click_models.models import get
    from ultr.click_models.module import module
    from ultr.click_models.fit import init_params
    from ultr.click_models.base import EYE_TRACKING_THETA

    def logit(p):
        p = np.asarray(p, np.float64)
        return jnp.asarray(np.log(p / (1 - p)), jnp.float32)
    model = module(get(name), pairs, K)
    params = init_params(model, 1, 0)
    P = params["params"]
    P["attraction"]["offsets"] = logit(rng.uniform(0.05, 0.95, pairs))
    P["attraction"]["baseline"] = jnp.zeros((), jnp.float32)
    theta = np.asarray(EYE_TRACKING_THETA[:K])
    if name == "pbm":
        P["examination"] = logit(theta)
    elif name == "ubm":
        d = np.arange(1, K + 1)[None, :]
        P["examination"] = logit(np.clip(theta[:, None] * 0.9 ** (d - 1), 1e-3, 1))
    else:
        P["satisfaction"]["offsets"] = logit(rng.uniform(0.1, 0.9, pairs))
        P["satisfaction"]["baseline"] = jnp.zeros((), jnp.float32)
        P["continuation"] = logit(0.9)
    return model, params


def simulated_log(model, params, sessions: int, queries: int, K: int, seed: int):
    """`sessions` sessions over `queries` queries of K documents each (queries * K pairs), each list
    shuffled per session so that every pair is seen at every rank."""
    from ultr.click_models.sample import sample_clicks
    rng = np.random.default_rng(seed)
    query = rng.integers(0, queries, sessions)
    order = np.argsort(rng.random((sessions, K)), axis=1)
    rows = (query[:, None] * K + order).astype(np.int32)
    mask = np.ones(rows.shape, bool)
    return ArrayLog(rows, sample_clicks(model, params, rows, mask, seed), mask)


def relative_error(fitted, true, where=None) -> float:
    f, t = np.asarray(fitted, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    keep = np.ones(t.shape, bool) if where is None else np.asarray(where).ravel()
    return float(np.mean(np.abs(f[keep] - t[keep]) / t[keep]))


def recovery(name: str, model, fitted, true) -> dict:
    """Mean relative error of what the clicks identify. PBM and UBM clicks fix examination times
    attraction only up to a common scale (gamma c, alpha / c give the same likelihood), so their
    examination is compared relative to rank 1 (as propensities are) and attraction as alpha gamma_1."""
    import jax
    sig = jax.nn.sigmoid
    F, T = fitted["params"], true["params"]

    def pair(table, p):
        return np.asarray(sig(p[table]["baseline"] + p[table]["offsets"]))
    if name in ("pbm", "ubm"):
        K = model.positions
        ef, et = np.asarray(sig(F["examination"])), np.asarray(sig(T["examination"]))
        top_f, top_t = ef.ravel()[0], et.ravel()[0]
        used = np.tril(np.ones((K, K), bool)) if name == "ubm" else None
        return {"attraction_times_top_examination": relative_error(pair("attraction", F) * top_f, pair("attraction", T) * top_t),
                "examination_relative_to_rank_1": relative_error(ef / top_f, et / top_t, used)}
    return {"attraction": relative_error(pair("attraction", F), pair("attraction", T)),
            "satisfaction": relative_error(pair("satisfaction", F), pair("satisfaction", T)),
            "continuation": relative_error(sig(F["continuation"]), sig(T["continuation"]))}


def truth(args) -> None:
    from ultr.click_models.em import fit_em
    from ultr.click_models.fit import FitSettings, fit
    K, queries = 10, args.pairs // 10
    rows = []
    for i, name in enumerate(["pbm", "ubm", "dbn"]):
        if name not in args.models:
            continue
        model, true = known_params(name, args.pairs, K, np.random.default_rng(100 + i))
        train = simulated_log(model, true, args.sessions, queries, K, seed=i)
        test = simulated_log(model, true, args.sessions // 10, queries, K, seed=1000 + i)
        cut = int(args.sessions * 0.9)
        part_train, part_val = train.subset(np.arange(cut)), train.subset(np.arange(cut, args.sessions))
        s = FitSettings(batch_size=args.batch, learning_rate=args.lr)
        start = time.perf_counter()
        fitted = fit(model, part_train, part_val, s, name)
        wall = time.perf_counter() - start
        floor = evaluate(model, true, test, args.batch)
        got = evaluate(model, fitted.params, test, args.batch)
        row = {"model": name, "perplexity_true": floor["perplexity"], "perplexity_fitted": got["perplexity"],
               "perplexity_gap": got["perplexity"] / floor["perplexity"] - 1,
               "ll_true": floor["log_likelihood"], "ll_fitted": got["log_likelihood"],
               "relative_error": recovery(name, model, fitted.params, true), "epochs": fitted.epochs,
               "sessions_per_second": fitted.sessions_per_second, "wall_seconds": wall}
        if model.model.em_keys(train.click[:1]) is not None or model.model.em_posteriors is not None:
            # closed-form EM converges to the maximum-likelihood estimate: the error any estimator
            # has from this many sessions, the floor the gradient fit is judged against
            em = fit_em(model, part_train, s, name)
            row["em_relative_error"] = recovery(name, model, em.params, true)
            row["em_perplexity_gap"] = evaluate(model, em.params, test, args.batch)["perplexity"] / floor["perplexity"] - 1
            row["em_iterations"], row["em_seconds"] = em.epochs, em.train_seconds
        rows.append(row)
        print(json.dumps(row), flush=True)
    record("click_models_truth", {"sessions": args.sessions, "pairs": args.pairs, "batch": args.batch, "lr": args.lr, "rows": rows})


def throughput(args) -> None:
    """Sessions/s per training epoch, ultr and CLAX, same log, rows and batch size; compilation
    excluded for both (ultr compiles ahead of time; CLAX's first epoch, which compiles, is dropped).
    The log is the 1M-session DBN ground-truth log (the speed of a step does not depend on the values)."""
    from ultr.click_models.models import get
    from ultr.click_models.module import module
    from ultr.click_models.fit import FitSettings, fit
    K, queries = 10, args.pairs // 10
    work = WORK / "click_models_throughput"
    work.mkdir(parents=True, exist_ok=True)
    log = simulated_log(*known_params("dbn", args.pairs, K, np.random.default_rng(102)), args.sessions, queries, K, seed=2)
    cut = int(args.sessions * 0.9)
    train, val = log.subset(np.arange(cut)), log.subset(np.arange(cut, args.sessions))
    npz = work / "arrays.npz"
    np.savez(npz, pairs=np.int64(args.pairs + 1), train_rows=train.rows + 1, train_click=train.click, train_mask=train.mask,
             val_rows=val.rows + 1, val_click=val.click, val_mask=val.mask, test_rows=val.rows + 1,
             test_click=val.click, test_mask=val.mask, test_seen=np.ones(len(val), bool))
    rows = []
    for name in args.models:
        for batch in args.batches:
            s = FitSettings(batch_size=batch, learning_rate=args.lr, epochs=args.epochs, patience=args.epochs)
            mine = fit(module(get(name), args.pairs, K), train, val, s, name).sessions_per_second
            target = work / f"clax_{name}_{batch}.json"
            subprocess.run([str(clax_python()), str(Path(__file__).resolve().parent / "clax_runner.py"), str(npz), str(target),
                            "--models", name, "--lr", str(args.lr), "--batch", str(batch), "--epochs", str(args.epochs),
                            "--patience", str(args.epochs)], check=True)
            theirs = json.loads(target.read_text())["models"][name]["sessions_per_second"]
            row = {"model": name, "batch": batch, "ultr_sessions_per_second": mine, "clax_sessions_per_second": theirs,
                   "ratio": mine / theirs}
            rows.append(row)
            print(json.dumps(row), flush=True)
    record("click_models_throughput", {"sessions": args.sessions, "pairs": args.pairs, "epochs": args.epochs, "rows": rows})


def scale(args) -> None:
    """PBM, UBM and DBN streamed from the session tables of the Baidu-format benchmark log."""
    import resource
    from ultr.click_models.data import SessionLog, train_rows
    from ultr.click_models.fit import FitSettings, fit
    from ultr.click_models.models import get
    from ultr.click_models.module import module
    from ultr.click_models.pipeline import ingest_log
    from ultr.config import compose
    logdir = WORK / f"baidu{args.impressions // 1_000_000}m"
    if not logdir.exists():
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "gen_baidu.py"), "--impressions",
                        str(args.impressions), "--out", str(logdir)], check=True)
    cfg = compose("click_models", ["log.format=baidu", f"log.path={logdir}"])
    out = WORK / "click_models_scale"
    start = time.perf_counter()
    ingest_log(cfg["log"], cfg["etl"], out, "train")
    etl_seconds = time.perf_counter() - start
    row_of, n_rows = train_rows(out, int(cfg["model"]["buckets"]))
    full = SessionLog(out, row_of)
    cut = int(len(full) * 0.9)
    train, val = full.part(0, cut), full.part(cut, None)
    rows = []
    for name in args.models:
        s = FitSettings(batch_size=args.batch, learning_rate=args.lr, epochs=args.epochs, patience=args.epochs)
        f = fit(module(get(name), n_rows, 10), train, val, s, name)
        row = {"model": name, "sessions_per_second": f.sessions_per_second, "epochs": f.epochs, "train_seconds": f.train_seconds,
               "validation_ll": f.validation, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        rows.append(row)
        print(json.dumps(row), flush=True)
    record("click_models_scale", {"impressions": args.impressions, "sessions": len(full), "pairs": len(row_of),
                                  "etl_seconds": etl_seconds, "batch": args.batch, "rows": rows})


def cascade_check(args) -> None:
    """CLAX's cascade, fitted as in `yandex` (its validation-chosen rate), scored by the exact cascade
    likelihood: CLAX trains P(no click above, click at k) where the model's conditional is P(click at
    k | no click above) = alpha_k, so its parameters and ours maximise different objectives."""
    import jax.numpy as jnp
    from ultr.click_models.models import get
    from ultr.click_models.module import module
    from ultr.click_models.fit import init_params
    work = WORK / "click_models_yandex"
    a = dict(np.load(work / "arrays.npz"))
    theirs = {lr: json.loads((work / f"clax_lr{lr}.json").read_text())["models"]["cascade"] for lr in args.lrs
              if (work / f"clax_lr{lr}.json").exists()}
    lr = max(theirs, key=lambda k: theirs[k]["validation_ll"])
    prefix = work / "clax_attraction"
    subprocess.run([str(clax_python()), str(Path(__file__).resolve().parent / "clax_runner.py"), str(work / "arrays.npz"),
                    str(work / "clax_cascade_check.json"), "--models", "cascade", "--lr", str(lr), "--batch", str(args.batch),
                    "--save-attraction", str(prefix)], check=True)
    p = np.clip(np.load(f"{prefix}_cascade.npy").astype(np.float64), 1e-6, 1 - 1e-6)
    model = module(get("cascade"), len(p) - 1, a["train_rows"].shape[1])
    params = init_params(model, 1, 0)
    params["params"]["attraction"]["baseline"] = jnp.asarray(np.log(p[0] / (1 - p[0])), jnp.float32)
    params["params"]["attraction"]["offsets"] = jnp.asarray(np.log(p[1:] / (1 - p[1:])) - np.log(p[0] / (1 - p[0])), jnp.float32)
    out = {}
    for split in ("val", "test"):
        log = ArrayLog(a[f"{split}_rows"] - 1, a[f"{split}_click"], a[f"{split}_mask"])
        m = evaluate(model, params, log, args.batch)
        out[split] = {"log_likelihood": m["log_likelihood"], "perplexity": m["perplexity"]}
    print(json.dumps(out))
    record("click_models_cascade_check", {"clax_lr": lr, "clax_params_scored_by_exact_likelihood": out})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("part", choices=["yandex", "cascade_check", "truth", "throughput", "scale"])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--lrs", nargs="+", type=float, default=[0.003, 0.01, 0.03, 0.1])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--sessions", type=int, default=1_000_000)
    p.add_argument("--pairs", type=int, default=10_000)
    p.add_argument("--batches", nargs="+", type=int, default=[1024, 8192])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--impressions", type=int, default=50_000_000)
    p.add_argument("--reuse-clax", action="store_true", help="yandex: read CLAX's results of an earlier run on the same arrays")
    args = p.parse_args()
    start = time.perf_counter()
    {"yandex": yandex, "cascade_check": cascade_check, "truth": truth, "throughput": throughput, "scale": scale}[args.part](args)
    print(f"wall time {time.perf_counter() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Training end to end on small shapes: no recompilation, checkpoints, the experiment contract,
and the statistical check that DLA recovers a known propensity curve."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import polars as pl
import pytest

from tests.conftest import EMBEDDED_MQ2008, ROOT
from pipelines.config import default_config
from ultr.api import fit
from ultr.experiment import run_experiment
from ultr.train.build import build_steps
from ultr.train.checkpoint import restore_state

pytestmark = pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")


def small_cfg(**over):
    cfg = default_config(["trainer=debug", "model.hidden=[32,16]", "simulation.sessions=20000"] + [f"{k}={v}" for k, v in over.items()])
    return cfg


@pytest.fixture(scope="module")
def experiment_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("exp")
    return run_dir, run_experiment(small_cfg(), run_dir)


def test_experiment_contract(experiment_run):
    run_dir, out = experiment_run
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["methods"]) == ["dla", "naive", "oracle", "selected"]
    for m, r in results["methods"].items():
        if m == "selected":
            continue
        assert set(r["test"]) >= {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10"}
        assert 0.0 < r["test"]["ndcg@10"] <= 1.0
        assert r["compiled_train_steps"] == 1  # fixed shapes: compiled once, never again
    prop = results["methods"]["dla"]["propensity"]
    assert len(prop["estimated"]) == len(prop["true"]) == 10 and prop["estimated"][0] == 1.0
    assert "propensity" not in results["methods"]["naive"]
    assert {"config", "timing"} <= results.keys()
    stages = results["timing"]["stages"]
    assert {"read_features", "train:dla", "evaluate:dla", "train:oracle"} <= stages.keys()
    if not results["data_cached"]:
        assert {"ingest", "simulate", "etl"} <= stages.keys()
    assert all(v["seconds"] >= 0 and v["peak_rss_mb"] > 0 for v in stages.values())
    assert stages["evaluate:dla"]["documents"] == 2874  # MQ2008 Fold1's test split, every candidate scored
    for f in ("per_query.parquet", "propensity.json", "propensity.png", "learning_curves.png", "results.md", "stats.json"):
        assert (run_dir / f).exists(), f
    assert any((run_dir / "tensorboard").iterdir())
    import polars as pl

    pq = pl.read_parquet(run_dir / "per_query.parquet")
    test = pq.filter(pl.col("split") == "test")
    assert test.height == 4 * 156 and test.filter(pl.col("has_relevant")).height == 4 * 105  # 3 runs and the selection
    assert pq.filter(pl.col("split") == "vali").height == 4 * 157


def test_checkpoint_restores_selected_model(experiment_run):
    run_dir, out = experiment_run
    cfg = small_cfg()
    steps = build_steps("dla", cfg, 46, 10)
    like = steps.init(jax.random.PRNGKey(0), 64)
    restored = restore_state(out["methods"]["dla"]["checkpoint"], like)
    assert int(restored.step) == out["methods"]["dla"]["best_step"]
    leaves = jax.tree.leaves(restored.ranker)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)


def test_same_seed_same_model(tmp_path):
    cfg = small_cfg(**{"algorithm.methods": "[naive]", "trainer.checkpoint": "false", "trainer.tensorboard": "false"})
    a = run_experiment(cfg, tmp_path / "a")["methods"]["naive"]["test"]
    b = run_experiment(cfg, tmp_path / "b")["methods"]["naive"]["test"]
    assert a == b


def test_dla_recovers_known_propensity_curve(tmp_path):
    """Statistical: on a PBM log with eta=1 (true curve known) DLA's recovered curve is within 15%
    mean relative error after a short run (6% seen; benchmarks/RESULTS.md has the full protocol)."""
    cfg = default_config([
        "algorithm.methods=[dla]", "model.hidden=[64]", "simulation.sessions=100000", "trainer.steps=1000",
        "trainer.eval_every=250", "trainer.patience=null", "trainer.progress=false",
        "trainer.checkpoint=false", "trainer.tensorboard=false",
    ])
    out = run_experiment(cfg, tmp_path)
    err = out["methods"]["dla"]["propensity"]["mean_relative_error"]
    assert err < 0.15, out["methods"]["dla"]["propensity"]


def test_nonfinite_loss_stops_with_clear_error(tmp_path):
    from ultr.train.loop import NonFiniteLossError

    cfg = small_cfg(**{"algorithm.methods": "[naive]", "optim.learning_rate": "1e30", "optim.clip_norm": "null", "trainer.tensorboard": "false"})
    with pytest.raises(NonFiniteLossError, match="loss became .* at step"):
        run_experiment(cfg, tmp_path)


def with_eval_sessions(data: Path, out: Path) -> tuple[Path, int]:
    """The simulated log plus one session on each of three vali and two test queries (their first
    documents, the top one clicked): sessions that must not reach training."""
    feats = pl.read_parquet(data / "features.parquet", columns=["query_id", "doc_id", "split"])
    log = pl.read_parquet(data / "clicks.parquet")
    extra = []
    for n, (split, take) in enumerate([("vali", 3), ("test", 2)]):
        for q in feats.filter(pl.col("split") == split)["query_id"].unique(maintain_order=True).head(take):
            docs = feats.filter(pl.col("query_id") == q)["doc_id"].head(10)
            sid = int(log["session_id"].max()) + 1 + len(extra)
            extra.append(pl.DataFrame({"session_id": [sid] * len(docs), "query_id": [q] * len(docs), "doc_id": docs,
                                       "position": list(range(1, len(docs) + 1)), "click": [1] + [0] * (len(docs) - 1)}))
    mixed = pl.concat([log, *[e.cast(log.schema) for e in extra]])
    mixed.write_parquet(out)
    return out, len(extra)


def test_given_click_log_and_python_api(tmp_path, experiment_run):
    run_dir, _ = experiment_run
    data = Path(experiment_run[1]["data_dir"])
    clicks, n_eval = with_eval_sessions(data, tmp_path / "mixed.parquet")
    model = fit(clicks, data / "features.parquet", method="dla", steps=40,
                overrides=["model.hidden=[16]", "trainer.batch_size=32", "trainer.eval_every=20"], work_dir=tmp_path / "w")
    # the split guard: sessions on vali/test queries are dropped and counted, not trained on
    assert model.etl_stats["dropped_sessions"]["not_train_split"] == n_eval == 5
    scores = model.predict(data / "features.parquet", split="test")
    assert scores.shape == (2874,) and np.isfinite(scores).all()
    curve = model.propensity()
    assert curve.shape == (10,) and curve[0] == 1.0


def test_cli_with_existing_clicks_and_overrides(tmp_path, experiment_run):
    run_dir, _ = experiment_run
    out = tmp_path / "cli"
    clicks, n_eval = with_eval_sessions(Path(experiment_run[1]["data_dir"]), tmp_path / "mixed.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={out}", "trainer=debug", "algorithm.methods=[naive]",
         "model.hidden=[8]", f"clicks={clicks}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    r = json.loads((out / "results.json").read_text())
    assert list(r["methods"]) == ["naive"] and r["config"]["model"]["hidden"] == [8]
    assert json.loads((out / "stats.json").read_text())["dropped_sessions"]["not_train_split"] == n_eval
    assert f"dropped {n_eval} sessions on vali/test queries" in proc.stderr


def test_bf16_model_keeps_float32_loss():
    import jax.numpy as jnp

    from ultr.data.batching import BatchIterator

    cfg = small_cfg(**{"model.dtype": "bfloat16"})
    steps = build_steps("dla", cfg, 4, 3)
    state = steps.init(jax.random.PRNGKey(0), 2)
    rng = np.random.default_rng(0)
    arrays = {"doc_index": rng.integers(0, 5, (8, 3)).astype(np.int32), "position": np.tile(np.arange(1, 4, dtype=np.int32), (8, 1)),
              "targets": np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)], "mask": np.ones((8, 3), bool)}
    feats = jnp.asarray(rng.random((5, 4), dtype=np.float32))
    state, m = steps.train_step(state, next(BatchIterator(arrays, 2, 0)), feats)
    assert m["loss"].dtype == jnp.float32 and np.isfinite(float(m["loss"]))
    assert jax.tree.leaves(state.ranker)[0].dtype == jnp.float32  # params stay float32


def test_prefetcher_preserves_order_and_state():
    from ultr.data.batching import BatchIterator
    from ultr.train.distributed import Prefetcher, Sharder, data_mesh

    arrays = {"x": np.arange(10)}
    ref = BatchIterator(arrays, 4, seed=3)
    expected = [next(ref)["x"].tolist() for _ in range(5)]
    it = BatchIterator(arrays, 4, seed=3)
    pf = Prefetcher(it, Sharder(data_mesh(), 4).put_batch)
    got = []
    for _ in range(5):
        batch, state = next(pf)
        got.append(np.asarray(batch["x"]).tolist())
    pf.close()
    assert got == expected
    # the state travelling with batch 5 resumes at batch 6
    again = BatchIterator(arrays, 4, seed=3)
    again.restore(state)
    assert next(again)["x"].tolist() == next(ref)["x"].tolist()


def test_rerun_into_same_run_dir(tmp_path):
    cfg = small_cfg(**{"algorithm.methods": "[naive]", "trainer.checkpoint_every": "20", "trainer.tensorboard": "false"})
    first = run_experiment(cfg, tmp_path)
    again = run_experiment(cfg, tmp_path)  # older training checkpoints must not block a fresh run
    assert first["methods"]["naive"]["test"] == again["methods"]["naive"]["test"]


def test_early_stopping_waits_for_the_propensity_curve(tmp_path):
    """The ranker's patience alone stops early; with a propensity tolerance nothing converges to,
    the run goes on to the step budget, recording each evaluation's curve and its relative change."""
    base = {"algorithm.methods": "[dla]", "trainer.steps": 200, "trainer.eval_every": 20, "trainer.patience": 1,
            "trainer.checkpoint": "false", "trainer.tensorboard": "false"}
    runs = {}
    for name, tol in (("off", "null"), ("loose", "1e9"), ("strict", "1e-12")):
        out = run_experiment(small_cfg(**base, **{"trainer.propensity_tol": tol}), tmp_path / name)
        runs[name] = out["methods"]["dla"]
    assert runs["off"]["steps_run"] < 200
    assert runs["loose"]["steps_run"] == runs["off"]["steps_run"]  # a curve that has settled never delays the stop
    assert runs["strict"]["steps_run"] == 200
    hist = json.loads((tmp_path / "strict" / "methods" / "dla.json").read_text())["history"]
    evals = [h for h in hist if "vali_ndcg@10" in h]
    assert len(evals) == 10 and all(len(h["propensity"]) == 10 for h in evals)
    assert all(h["propensity_change"] > 0 for h in evals[1:])


def test_weight_decay_adds_l2_to_the_gradient():
    # sgd lr 0.1, weight_decay 0.5, p = 2, zero gradient: update = -0.1 * (0 + 0.5 * 2) = -0.1.
    import jax.numpy as jnp

    from ultr.train.state import make_optimizer

    tx = make_optimizer({"name": "sgd", "learning_rate": 0.1, "weight_decay": 0.5, "clip_norm": 5.0})
    p = {"w": jnp.array([2.0])}
    upd, _ = tx.update({"w": jnp.array([0.0])}, tx.init(p), p)
    np.testing.assert_allclose(upd["w"], [-0.1], rtol=1e-6)
    none = make_optimizer({"name": "sgd", "learning_rate": 0.1, "weight_decay": None})
    upd, _ = none.update({"w": jnp.array([0.0])}, none.init(p), p)
    np.testing.assert_allclose(upd["w"], [0.0])


def test_tail_average_curve_is_the_geometric_mean_of_the_last_evaluations():
    from ultr.train.loop import tail_average_curve

    history = [{"step": 50, "loss": 1.0},
               {"step": 100, "propensity": [1.0, 0.9]},
               {"step": 200, "propensity": [1.0, 0.2]},
               {"step": 250, "loss": 1.0},
               {"step": 300, "propensity": [1.0, 0.8]}]
    # last two: sqrt(0.2 * 0.8) = 0.4; last one: the final curve; more than recorded: all three.
    np.testing.assert_allclose(tail_average_curve(history, 2), [1.0, 0.4])
    np.testing.assert_allclose(tail_average_curve(history, 1), [1.0, 0.8])
    np.testing.assert_allclose(tail_average_curve(history, 10), [1.0, (0.9 * 0.2 * 0.8) ** (1 / 3)])
    assert tail_average_curve([{"step": 1, "loss": 0.5}], 5) is None


def test_every_run_is_reported_under_its_own_name_and_the_selection_says_what_it_kept(experiment_run):
    """`dla` is always the DLA run; the default's choice between it and naive is the `selected`
    row, which names the run it kept, carries no propensity curve, and trains naive only once."""
    run_dir, out = experiment_run
    m = out["methods"]
    sel = m["selected"]
    assert sel["kept"] in ("dla", "naive") and sel["test"] == m[sel["kept"]]["test"]
    assert "propensity" not in sel and "selection" not in m["dla"] and "propensity" in m["dla"]
    assert [r["run"] for r in sel["selection"]["runs"]] == ["dla", "naive"]
    assert [k for k in out["timing"]["stages"] if k.startswith("train:")] == ["train:dla", "train:naive", "train:oracle"]
    assert f"| selected: {sel['kept']} |" in (run_dir / "results.md").read_text()
    assert set(json.loads((run_dir / "propensity.json").read_text())["estimated"]) == {"dla"}


def test_selection_with_a_named_candidate_trains_it_as_its_own_run(tmp_path):
    """`+experiment=select_regularisation`: the regularised DLA is its own row, `dla_regularised`,
    with its overrides recorded; `dla` stays the reference run."""
    cfg = default_config(["+experiment=select_regularisation", "algorithm.methods=[dla]", "trainer=debug", "model.hidden=[32,16]",
                          "simulation.sessions=20000", "trainer.checkpoint=false", "trainer.tensorboard=false"])
    out = run_experiment(cfg, tmp_path)["methods"]
    assert list(out) == ["dla", "dla_regularised", "selected"]
    assert out["dla_regularised"]["run"] == {"method": "dla", "overrides": ["model.dropout=0.3", "propensity_optim.learning_rate=1.0",
                                                                             "trainer.propensity_average=10"]}
    assert out["dla"]["vali"] != out["dla_regularised"]["vali"]  # dropout changed the ranker
    assert out["selected"]["kept"] == out["selected"]["selection"]["kept"]


def test_with_overrides_sets_existing_keys_only():
    from ultr.errors import DataError
    from ultr.train.method import with_overrides

    cfg = {"model": {"dropout": 0.0, "hidden": [8]}, "trainer": {"propensity_average": 1}}
    out = with_overrides(cfg, ["model.dropout=0.3", "model.hidden=[4, 2]", "trainer.propensity_average=null"])
    assert out == {"model": {"dropout": 0.3, "hidden": [4, 2]}, "trainer": {"propensity_average": None}}
    assert cfg["model"]["dropout"] == 0.0  # a copy
    for bad in ("model.dropot=0.3", "modle.dropout=0.3", "model.dropout"):
        with pytest.raises(DataError, match="run override"):
            with_overrides(cfg, [bad])


def test_severe_bias_retraining_is_a_run_of_its_own_and_joins_the_candidates(tmp_path, monkeypatch):
    """Severe bias (here: every curve counts) trains `dla+severe_bias` with `fallback.overrides`;
    it never replaces the `dla` row, it joins the selection's candidates, and its note gives the
    trigger that fired. A diverged curve says so; a severe one does not call itself diverged."""
    cfg = small_cfg(**{"algorithm.methods": "[dla]", "trainer.checkpoint": "false", "trainer.tensorboard": "false"})
    cfg["fallback"]["severe_below"] = 1.1
    r = run_experiment(cfg, tmp_path / "severe")["methods"]
    again = r["dla+severe_bias"]
    assert again["run"]["variant_of"] == "dla" and again["run"]["overrides"] == cfg["fallback"]["overrides"]
    assert again["run"]["trigger"].startswith("severe bias") and "diverged" not in again["run"]["trigger"]
    assert [x["run"] for x in r["selected"]["selection"]["runs"]] == ["dla", "naive", "dla+severe_bias"]
    assert again["propensity"]["estimated"] != r["dla"]["propensity"]["estimated"]
    import ultr.train.selection as selection

    monkeypatch.setattr(selection, "propensity_warning", lambda curve: "the learned curve puts position 4 at 171x position 1: ...")
    cfg["fallback"]["severe_below"] = 0.0
    r = run_experiment(cfg, tmp_path / "diverged")["methods"]
    assert r["dla+severe_bias"]["run"]["trigger"] == "its curve diverged (it puts position 4 at 171x position 1)"


def _vali(values, valid=None):
    v = np.asarray(values, dtype=float)
    return v, np.ones(len(v), bool) if valid is None else np.asarray(valid)


def test_the_selection_rule_by_hand():
    """A candidate replaces the reference only if a one-sided paired t-test over validation queries
    says it is better at alpha / candidates. Differences [1, 2, 3, 4] (x 0.01): mean 2.5, sample sd
    1.291, t = 2.5 / (1.291 / 2) = 3.873 with 3 degrees of freedom, one-sided p = 0.0152.
    Differences [3, 1, 2, -1, 2, 1]: mean 1.333, sd 1.366, t = 1.333 / (1.366 / sqrt 6) = 2.390 with
    5 degrees of freedom, p = 0.031: enough alone at 0.05, not next to a second candidate (0.025)."""
    from ultr.train.selection import choose, one_sided_p

    assert one_sided_p(np.array([0.01, 0.02, 0.03, 0.04])) == pytest.approx(0.0152, abs=5e-4)
    assert one_sided_p(np.array([0.03, 0.01, 0.02, -0.01, 0.02, 0.01])) == pytest.approx(0.0312, abs=5e-4)
    assert one_sided_p(np.zeros(5)) == 1.0  # identical rankings: nothing to choose
    ref = _vali([0.5] * 6)
    moderate = _vali([0.53, 0.51, 0.52, 0.49, 0.52, 0.51])
    noisy = _vali([0.9, 0.1, 0.9, 0.2, 0.5, 0.5])  # +0.017 on average, by noise
    assert choose("dla", ["naive"], {"dla": ref, "naive": moderate}, 0.05)["kept"] == "naive"
    rec = choose("dla", ["naive", "other"], {"dla": ref, "naive": moderate, "other": noisy}, 0.05)
    assert rec["kept"] == "dla" and rec["level_per_candidate"] == 0.025  # Bonferroni
    assert [r.get("beats_reference") for r in rec["runs"]] == [None, False, False]
    # a higher mean by noise never replaces the reference
    assert choose("dla", ["other"], {"dla": ref, "other": noisy}, 0.05)["kept"] == "dla"
    # of two candidates that both beat the reference, the best on validation is kept
    best = _vali([0.7, 0.71, 0.72, 0.73, 0.7, 0.71])
    assert choose("dla", ["naive", "best"], {"dla": ref, "naive": moderate, "best": best}, 0.1)["kept"] == "best"
    # queries without a relevant document do not count
    masked = choose("dla", ["naive"], {"dla": _vali([0.5, 0.5, 0.5, 0.5, 0.0], [1, 1, 1, 1, 0]),
                                       "naive": _vali([0.51, 0.52, 0.53, 0.54, 0.9], [1, 1, 1, 1, 0])}, 0.05)
    assert masked["validation_queries"] == 4 and masked["runs"][1]["difference"] == pytest.approx(0.025)


def test_a_diverged_reference_gives_way_to_its_retraining():
    from ultr.train.selection import stand_in

    warn = {"propensity": {"warning": "diverged"}}
    again = {"run": {"variant_of": "dla"}, "propensity": {}}
    entries = {"dla": warn, "naive": {}, "dla+severe_bias": again}
    assert stand_in("dla", ["naive", "dla+severe_bias"], entries)[:2] == ("dla+severe_bias", ["dla", "naive"])
    assert stand_in("dla", ["naive", "dla+severe_bias"], {**entries, "dla": {"propensity": {}}})[:2] == (
        "dla", ["naive", "dla+severe_bias"])  # not diverged: the reference stays
    assert stand_in("dla", ["naive", "dla+severe_bias"], {**entries, "dla+severe_bias": {**again, **warn}})[0] == "dla"


def test_every_ranker_stops_by_patience_even_when_training_goes_on_for_the_curve():
    """The one early-stopping rule: after `patience` evaluations without improvement the kept
    ranker is final; later (higher) evaluations of a run that trains on to settle its propensity
    curve do not replace it, so no method gets more draws at a noisy validation maximum."""
    from ultr.train.loop import FitResult, _keep_or_count, _Watch

    best, watch = FitResult(best_state=None, best_step=0, best_vali=-np.inf), _Watch()
    for step, vali in enumerate([0.5, 0.4, 0.45, 0.9, 0.95], start=1):
        watch.last_vali = vali
        _keep_or_count(f"state{step}", step, best, watch, patience=2)
    assert (best.best_step, best.best_vali, best.best_state, watch.ranker_done) == (1, 0.5, "state1", True)


def test_a_validation_split_without_relevant_documents_is_an_error_not_an_untrained_model(tmp_path, experiment_run):
    """With no relevant document in vali, nDCG@10 is undefined (NaN) and the best state would stay
    the untrained initial one: the run stops before training, naming the split and the fix."""
    from ultr.data.batching import query_lists, read_sessions
    from ultr.data.letor import read_features
    from ultr.errors import DataError
    from ultr.train.method import train_method

    data = Path(experiment_run[1]["data_dir"])
    table = read_features(data / "features.parquet")
    vali = query_lists(table, "vali")
    vali.label[:] = 0.0
    with pytest.raises(DataError, match="the vali split has no query with a relevant document.*data.vali_fraction"):
        train_method("naive", small_cfg(), table, jax.numpy.asarray(table.features), read_sessions(data), None, vali)


def test_the_api_trains_the_same_dla_as_the_command_line(tmp_path, experiment_run):
    """`ultr.api.fit(method="dla")` on the run's own log and features, with the run's overrides,
    is the command line's `dla` row: the same validation score at the same step."""
    run_dir, out = experiment_run
    data = Path(out["data_dir"])
    model = fit(data / "clicks.parquet", data / "features.parquet", method="dla", work_dir=tmp_path / "w",
                overrides=["trainer=debug", "model.hidden=[32,16]", "simulation.sessions=20000"])
    assert (model.trained.fit.best_step, model.trained.fit.best_vali) == (out["methods"]["dla"]["best_step"],
                                                                          out["methods"]["dla"]["vali"]["ndcg@10"])


def test_the_api_maps_columns_and_leaves_no_temporary_folder(tmp_path, experiment_run, monkeypatch):
    import tempfile

    from ultr.errors import DataError

    data = Path(experiment_run[1]["data_dir"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    renamed = tmp_path / "renamed.parquet"
    pl.read_parquet(data / "clicks.parquet").rename({"click": "clicked"}).write_parquet(renamed)
    small = ["trainer=debug", "model.hidden=[8]", "trainer.steps=20"]
    model = fit(renamed, data / "features.parquet", method="naive", columns={"click": "clicked"}, overrides=small)
    assert np.isfinite(model.predict(data / "features.parquet", split="test")).all()
    fit(renamed, data / "features.parquet", method="naive", overrides=[*small, "log.columns.click=clicked"])
    with pytest.raises(DataError, match="missing column"):
        fit(renamed, data / "features.parquet", method="naive", overrides=small)
    assert list((tmp_path / "tmp").iterdir()) == []  # after two fits and a failed one



"""Experiment presets compose and run shrunk; the data cache is shared; aggregation is exact."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import EMBEDDED_MQ2008, ROOT
from ultr.aggregate import aggregate, paired_p_value, pooled
from pipelines.config import default_config
from ultr.experiment import run_experiment
from ultr.train.selection import run_plan, selection_specs

def _presets(entry: str) -> list[str]:
    """The presets whose header names this entry point (pipelines.experiment or pipelines.online)."""
    return sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")
                  if any(f"pipelines.{entry}" in line for line in p.read_text().splitlines()[1:4]))


PRESETS = _presets("experiment")


def _sweep_params(preset: str) -> dict[str, list[str]]:
    """A multirun preset's sweeper parameters: key -> its values (empty for a single-run preset)."""
    import yaml
    doc = yaml.safe_load((ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text())
    params = ((doc.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {k: [v.strip() for v in str(values).split(",")] for k, values in params.items()}


SWEEPS = [p for p in PRESETS if _sweep_params(p)]
ONLINE_PRESETS = _presets("online")
SHRINK = ["trainer=debug", "trainer.steps=20", "trainer.eval_every=10", "model.hidden=[8]", "simulation.sessions=4000",
          "trainer.tensorboard=false", "trainer.checkpoint=false", "algorithm.ips_randomized.sessions=5000"]


@pytest.mark.parametrize("preset", SWEEPS)
def test_every_sweep_point_composes(preset):
    """A multirun preset's base run is the default experiment (run by the end-to-end tests); what it
    adds is its sweep: the swept keys compose, at their first and at their last values, into a config
    with a plan (a Hydra compose per point is ~1 s, so not every point)."""
    params = _sweep_params(preset)
    for pick in (0, -1):
        point = {key: values[pick] for key, values in params.items()}
        cfg = default_config([f"+experiment={preset}", *SHRINK, *(f"{k}={v}" for k, v in point.items())])
        assert {k: str(_get(cfg, k)) for k in point} == point
        assert run_plan(cfg)


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in SWEEPS])
def test_every_experiment_preset_runs_shrunk(tmp_path, preset):
    overrides = [f"+experiment={preset}", *SHRINK]
    cfg = default_config(overrides)
    out = run_experiment(cfg, tmp_path)["methods"]
    # the methods, the selection's candidates and its row, and severe-bias retrainings: nothing else
    reference, _ = selection_specs(cfg)
    plan = {s.label for s in run_plan(cfg)} | ({cfg["selection"]["name"]} if reference else set())
    assert set(cfg["algorithm"]["methods"]) <= plan <= set(out)
    assert all(out[extra]["run"]["variant_of"] in out for extra in set(out) - plan)
    header = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_" and any("pipelines.experiment" in line for line in header[1:4])


def test_every_preset_names_its_entry_point():
    every = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert sorted(PRESETS + ONLINE_PRESETS) == every and ONLINE_PRESETS == ["online", "online_vs_offline"]


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
@pytest.mark.parametrize("preset", ONLINE_PRESETS)
def test_every_online_preset_runs_shrunk(tmp_path, preset):
    from ultr.online.run import online
    offline = "online.offline.overrides=[" + ",".join(f'"{o}"' for o in SHRINK if not o.startswith("simulation.")) + "]"
    cfg = default_config([f"+experiment={preset}", "online.interactions=200", "online.every=100", "online.seeds=1",
                          "online.methods=[pdgd]", "online.oracle_epochs=1", offline, "online.users=[informational]"], name="online")
    out = online(cfg, tmp_path)
    assert set(out["users"]) == {"informational"} and out["interactions"] == 200
    # the offline methods ran on a log of as many sessions, or none were asked for
    assert set(out.get("offline", {}).get("informational", {})) == set(cfg["online"]["offline"]["methods"])
    header = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_runs_share_cached_data(tmp_path):
    a = run_experiment(default_config(SHRINK + ["algorithm.methods=[naive]"]), tmp_path / "a")
    b = run_experiment(default_config(SHRINK + ["algorithm.methods=[dla]"]), tmp_path / "b")
    c = run_experiment(default_config(SHRINK + ["algorithm.methods=[dla]", "click_model.eta=2"]), tmp_path / "c")
    assert a["data_dir"] == b["data_dir"] and b["data_cached"]
    assert c["data_dir"] != a["data_dir"]


def fake_run(d: Path, eta, seed, fold, values: dict):
    d.mkdir(parents=True)
    cfg = {"seed": seed, "data": {"fold": fold}, "click_model": {"eta": eta}, "trainer": {"progress": False}}
    methods = {m: {"test": {"ndcg@1": v, "ndcg@3": v, "ndcg@5": v, "ndcg@10": v, "err@10": v / 2}} for m, v in values.items()}
    methods["dla"]["propensity"] = {"estimated": [1.0, 0.5], "true": [1.0, 0.4], "mean_relative_error": 0.25}
    (d / "results.json").write_text(json.dumps({"methods": methods, "config": cfg}))


def test_aggregate_exact(tmp_path):
    vals = {(1.0, 0): (0.70, 0.60), (1.0, 1): (0.72, 0.61), (1.0, 2): (0.74, 0.65), (2.0, 0): (0.5, 0.5), (2.0, 1): (0.6, 0.4)}
    for i, ((eta, seed), (dla, naive)) in enumerate(vals.items()):
        fake_run(tmp_path / str(i), eta, seed, 1, {"dla": dla, "naive": naive})
    s = aggregate(tmp_path)
    row = s.filter((pl.col("click_model.eta") == "1.0") & (pl.col("method") == "naive")).row(0, named=True)
    assert row["n_runs"] == 3
    assert row["ndcg@10_mean"] == pytest.approx((0.60 + 0.61 + 0.65) / 3)
    assert row["ndcg@10_std"] == pytest.approx(np.std([0.60, 0.61, 0.65], ddof=1))
    assert row["p_vs_dla"] == pytest.approx(paired_p_value(np.array([-0.10, -0.11, -0.09])))
    # pooled over both etas: naive - dla on all five (setting, seed) pairs
    (pool,) = pooled(pl.read_parquet(tmp_path / "runs.parquet"), ["click_model.eta"], "dla")
    diffs = np.array([-0.10, -0.11, -0.09, 0.0, -0.2])
    assert pool["pairs"] == 5 and pool["wins"] == 0
    assert pool["mean_diff"] == pytest.approx(diffs.mean()) and pool["p"] == pytest.approx(paired_p_value(diffs))
    assert "| naive | 5 | -0.1000 | 0 |" in (tmp_path / "summary.md").read_text()
    for f in ("summary.csv", "summary.md", "runs.parquet", "ndcg_vs_eta.png", "propensity_curves.png"):
        assert (tmp_path / f).exists(), f


def test_paired_t_golden():
    # diffs [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2 -> two-sided p = 0.07418
    assert paired_p_value(np.array([1.0, 2.0, 3.0])) == pytest.approx(0.07418, abs=1e-4)
    assert np.isnan(paired_p_value(np.array([1.0])))


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_affine_per_click_and_aggregated_both_train(tmp_path):
    """Affine correction under trust bias in both forms: per-click targets over sessions (zero-click
    sessions included) and per-document targets over the training candidate lists."""
    for aggregate in ("false", "true"):
        cfg = default_config(SHRINK + ["click_model=trust", "algorithm.methods=[affine]",
                                       f"algorithm.affine.aggregate={aggregate}"])
        out = run_experiment(cfg, tmp_path / aggregate)["methods"]["affine"]
        assert 0.0 < out["test"]["ndcg@10"] <= 1.0 and out["compiled_train_steps"] == 1
        stats = json.loads((tmp_path / aggregate / "stats.json").read_text())
        assert stats["dropped_sessions"]["zero_click"] == 0 and stats["zero_click_sessions"] > 0

"""The first hour of a new user (issue 29): every trap found on a fresh clone is a one-line error
with exit status 2 that names where it looked and the fix, found before long work starts; resume
continues the run it names; the console carries no library noise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import EMBEDDED_MQ2008, ROOT, SHARED
from ultr.errors import DataError

needs_mq2008 = pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")


def _check(config: str, argv: list[str], capsys) -> str:
    """check_overrides' verdict: '' when it passes, else its one error line (exit status 2)."""
    from pipelines._entry import check_overrides

    try:
        check_overrides(config, argv)
    except SystemExit as e:
        assert e.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]
    return ""


# --- overrides that used to fail late, or run with the setting silently ignored


def test_a_typo_in_a_key_names_the_nearest_real_key(capsys):
    assert _check("experiment", ["trainer.stepz=5"], capsys) == (
        "error: trainer.stepz=5: the config has no key trainer.stepz; did you mean trainer.steps?")
    # Hydra's advice used to be to add `+`, which ran with the setting ignored: now refused too
    line = _check("experiment", ["+trainer.stepz=5"], capsys)
    assert "+ adds a key that nothing reads" in line and "did you mean trainer.steps?" in line
    assert "set it without +" in _check("experiment", ["+trainer.steps=5"], capsys)
    assert "did you mean trainer.steps?" in _check("experiment", ["-m", "trainer.stepz=1,2"], capsys)
    assert _check("experiment", ["+experiment=severe_bias", "trainer.steps=5", "model.hidden=[8]"], capsys) == ""


def test_a_bare_value_where_a_list_is_expected_says_to_use_brackets(capsys):
    assert _check("experiment", ["algorithm.methods=naive"], capsys) == (
        "error: algorithm.methods=naive: algorithm.methods is a list; use algorithm.methods=[naive]")
    from ultr.config import compose

    with pytest.raises(DataError, match=r"use model.hidden=\[64\]"):
        compose("experiment", ["model.hidden=64"])


def test_column_mapping_needs_no_plus(capsys):
    for config in ("etl", "experiment", "click_models", "estimate_bias"):
        assert _check(config, ["log.columns.click=clicked"], capsys) == "", config


def test_a_launcher_without_its_plugin_names_the_extra(capsys):
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
        pytest.skip("hydra-submitit-launcher is installed here")
    assert "pip install 'ultr[slurm]'" in _check("experiment", ["hydra/launcher=slurm_gpu"], capsys)


def test_aggregate_without_sweep_dir_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "pipelines.aggregate"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: sweep_dir must be set: pass sweep_dir=... (see conf/aggregate.yaml)"), proc.stderr[-2000:]


# --- paths and settings checked before the long work


def test_click_model_inputs_are_checked_before_any_log_is_read(tmp_path):
    from ultr.click_models.pipeline import click_models
    from ultr.config import compose

    train = tmp_path / "train.parquet"
    pl.DataFrame({"session_id": [1, 1], "query_id": ["q", "q"], "doc_id": ["a", "b"], "position": [1, 2],
                  "click": [1, 0]}).write_parquet(train)
    cases = [
        (["log.path=missing.parquet", f"test.path={train}"], "log.path 'missing.parquet' not found: looked for"),
        ([f"log.path={train}", "test.path=gone/test.gz", "log.format=pyclick"], "test.path 'gone/test.gz': no such click-log file"),
        ([f"log.path={train}", f"test.path={train}", "fit.method=em", "models=[pbm,cascade]"], "cascade: fit.method=em has no closed form"),
    ]
    for overrides, message in cases:
        out = tmp_path / "run"
        with pytest.raises(DataError, match=message) as e:
            click_models(compose("click_models", overrides), out)
        assert "\n" not in str(e.value)
        assert not (out / "train").exists()  # nothing was processed first


def test_a_parquet_log_with_string_session_ids_names_the_column(tmp_path, tiny_letor):
    from ultr.data.etl import EtlConfig, run_etl
    from ultr.data.letor import ingest_letor

    features = tmp_path / "features.parquet"
    ingest_letor(tiny_letor, features)
    log = tmp_path / "log.parquet"
    pl.DataFrame({"session_id": ["s1", "s1"], "query_id": ["1", "1"], "doc_id": ["a1", "a2"], "position": [1, 2],
                  "click": [1, 0]}).write_parquet(log)
    with pytest.raises(DataError, match=r"column 'session_id' holds strings \('s1' at row 0\), expected int64; map each"):
        run_etl(log, features, tmp_path / "out", EtlConfig(list_size=2))


# --- the cache follows every file a run reads


def test_the_cache_key_covers_a_fitted_click_model(tmp_path, monkeypatch):
    from ultr.experiment import simulation_inputs

    model = tmp_path / "ubm"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"simulator": {"name": "pbm", "theta": [1.0, 0.5]}}))
    cfg = {"data": {"root": "embedded:mq2008", "fold": 1, "splits": ["train", "vali", "test"]}, "seed": 0,
           "click_model": {"name": "fitted", "path": str(model)}, "simulation": {"sessions": 10}, "etl": {"list_size": 10}}
    from ultr.cache import cache_key

    first = cache_key(cfg, simulation_inputs(cfg))
    assert model / "model.json" in simulation_inputs(cfg)
    (model / "model.json").write_text(json.dumps({"simulator": {"name": "pbm", "theta": [1.0, 0.4]}}))  # refitted
    assert cache_key(cfg, simulation_inputs(cfg)) != first


# --- checkpoints in a sweep's run directory (its name holds glob characters)


def test_a_checkpoint_under_a_path_with_brackets_restores(tmp_path):
    """Orbax finds its per-process files by globbing the checkpoint directory: under a sweep's
    `algorithm.methods=[naive],...` directory it found none and wrote a checkpoint that could not
    be restored (and warned 'Skipping merge of OCDBT checkpoints' on the console)."""
    import jax
    import numpy as np

    from ultr.train.checkpoint import TrainCheckpoints, restore_state, save_state

    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.int32(7)}
    path = tmp_path / "algorithm.methods=[naive],seed=0" / "checkpoints" / "naive"
    save_state(state, path)
    back = restore_state(path, jax.tree.map(np.zeros_like, state))
    np.testing.assert_array_equal(back["w"], state["w"])
    ckpt = TrainCheckpoints(path.parent / "naive-train")
    ckpt.save(3, state, state, {"step": 3})
    assert ckpt.latest_step() == 3 and ckpt.restore(state)[2] == {"step": 3}


# --- resume continues the run it names


def test_resume_reloads_the_saved_overrides_and_refuses_changes(tmp_path):
    from pipelines._entry import resume_arguments

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- trainer=debug\n- click_model.eta=2\n")
    assert resume_arguments([f"hydra.run.dir={run}", "trainer.resume=true"]) == [
        "trainer=debug", "click_model.eta=2", "trainer.resume=true", f"hydra.run.dir={run}", "hydra.output_subdir=null"]
    # repeating the original overrides is fine; the console's progress bar may change
    assert resume_arguments([f"hydra.run.dir={run}", "trainer.resume=true", "click_model.eta=2", "trainer.progress=false"])[:3] == [
        "trainer=debug", "click_model.eta=2", "trainer.progress=false"]
    with pytest.raises(DataError, match=r"\['trainer.steps=9'\] would change the run being resumed"):
        resume_arguments([f"hydra.run.dir={run}", "trainer.resume=true", "trainer.steps=9"])
    with pytest.raises(DataError, match="holds no training checkpoint"):
        resume_arguments([f"hydra.run.dir={tmp_path / 'nothing'}", "trainer.resume=true"])
    assert resume_arguments(["trainer.steps=9"]) == ["trainer.steps=9"]  # not a resume


def test_resume_refuses_a_configuration_that_changed_since(tmp_path):
    from omegaconf import OmegaConf

    from ultr.config import compose
    from ultr.experiment import check_same_config

    cfg = compose("experiment", ["trainer=debug"])
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / ".hydra" / "config.yaml")
    check_same_config(tmp_path, {**cfg, "trainer": {**cfg["trainer"], "resume": True, "progress": True}})
    with pytest.raises(DataError, match=r"resuming would change trainer.steps \(60 -> 61\) from the configuration"):
        check_same_config(tmp_path, compose("experiment", ["trainer=debug", "trainer.steps=61"]))


# --- the console of a first run


NOISE = ("][INFO]", "][WARNING]", "is illegal", "libtpu", "Traceback", "vali_ndcg10=nan", ".build-")


@needs_mq2008
def test_a_run_and_a_multirun_print_no_library_noise(tmp_path):
    """tensorboardX's 'Summary name ... is illegal' (one line per scalar), JAX's 'Unable to
    initialize backend tpu', orbax's OCDBT warnings in a multirun, `vali_ndcg10=nan` before the
    first evaluation and the path of a cache build folder that is gone after the run."""
    base = ["trainer=debug", "model.hidden=[16]", "simulation.sessions=20000", "trainer.progress=true", "trainer.steps=40"]
    env = {"ULTR_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    single = subprocess.run([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={tmp_path / 'one'}", *base,
                             "fallback.severe_below=1.1"], cwd=ROOT, capture_output=True, text=True, env=env)
    multi = subprocess.run([sys.executable, "-m", "pipelines.experiment", "-m", f"hydra.sweep.dir={tmp_path / 'many'}", *base,
                            "algorithm.methods=[naive]", "seed=0,1"], cwd=ROOT, capture_output=True, text=True, env=env)
    for proc in (single, multi):
        assert proc.returncode == 0, proc.stderr[-3000:]
        noise = [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in NOISE)]
        assert noise == [], noise[:5]
    assert "dla+severe_bias" in single.stdout  # a run whose label TensorBoard would have renamed

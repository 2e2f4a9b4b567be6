"""Silent traps a new user would fall into: stale caches, sessions of evaluation queries in the
training log, paths that fall back to the package, bad input that ends in a traceback, process
state changed at import, directories swapped non-atomically, private JAX APIs."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import ultr
from tests.conftest import EMBEDDED_MQ2008, ROOT
from ultr.cache import cache_key
from ultr.data import io
from ultr.data.etl import EtlConfig, run_etl
from ultr.data.letor import ingest_letor
from ultr.errors import DataError
from ultr.paths import existing
from ultr.click_models.simulator import make_click_model


@pytest.fixture
def features_path(tmp_path, tiny_letor):
    path = tmp_path / "features.parquet"
    ingest_letor(tiny_letor, path)
    return path


def _log(path: Path, rows: list[tuple]) -> Path:
    cols = list(zip(*rows))
    pl.DataFrame({"session_id": cols[0], "query_id": cols[1], "doc_id": cols[2], "position": cols[3], "click": cols[4]}).write_parquet(path)
    return path


# --- the cache key follows the input files and the code that builds the entries


def _experiment_cfg(root: Path) -> dict:
    return {"data": {"root": str(root), "fold": 1}, "seed": 0, "click_model": {"name": "pbm", "eta": 1.0},
            "simulation": {"sessions": 10}, "etl": {"list_size": 10}}


def test_cache_key_changes_with_one_label_and_with_the_code_version(tmp_path, tiny_letor, monkeypatch):
    root = tmp_path / "ds" / "Fold1"
    root.mkdir(parents=True)
    for split, path in tiny_letor.items():
        shutil.copy(path, root / f"{split}.txt")
    inputs = [root / f"{s}.txt" for s in ("train", "vali", "test")]
    cfg = _experiment_cfg(tmp_path / "ds")
    first = cache_key(cfg, inputs)
    assert cache_key(cfg, inputs) == first  # stable
    train = root / "train.txt"
    text = train.read_text()
    train.write_text(text.replace("2 qid:1", "1 qid:1", 1))  # one label, same size
    assert len(train.read_text()) == len(text)
    second = cache_key(cfg, inputs)
    assert second != first
    monkeypatch.setattr(ultr, "__version__", "999")
    assert cache_key(cfg, inputs) != second


# --- sessions on vali/test queries never reach training unless asked


def test_sessions_on_eval_queries_are_dropped_counted_and_warned(tmp_path, features_path, capsys):
    log = _log(tmp_path / "log.parquet", [
        (1, "1", "a1", 1, 1), (1, "1", "a2", 2, 0),  # train query
        (2, "4", "d1", 1, 1), (2, "4", "d2", 2, 0),  # vali query
        (3, "6", "f1", 1, 0), (3, "6", "f2", 2, 1),  # test query
        (4, "2", "b1", 1, 0),                        # train query, no click
    ])
    stats = run_etl(log, features_path, tmp_path / "guarded", EtlConfig(list_size=2))
    assert stats["dropped_sessions"]["not_train_split"] == 2
    assert stats["sessions"] == 2 and stats["clicks"] == 1 and stats["zero_click_sessions"] == 1
    assert pq.read_table(tmp_path / "guarded" / "sessions").column("session_id").to_pylist() == [1, 4]
    assert "dropped 2 sessions on vali/test queries" in capsys.readouterr().err
    opened = run_etl(log, features_path, tmp_path / "open", EtlConfig(list_size=2, allow_eval_queries=True))
    assert opened["dropped_sessions"]["not_train_split"] == 0 and opened["sessions"] == 4


# --- paths: relative means the current directory, nothing else


def test_relative_paths_resolve_against_the_cwd_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        existing("data/mq2008", "data.root")  # exists in the source tree, not here
    msg = str(e.value)
    assert str(tmp_path / "data" / "mq2008") in msg and "embedded:mq2008" in msg and "\n" not in msg
    (tmp_path / "data" / "mq2008").mkdir(parents=True)
    assert existing("data/mq2008", "data.root") == tmp_path / "data" / "mq2008"
    assert existing("embedded:mq2008", "data.root").joinpath("Fold1", "train.txt.gz").exists()


# --- one-line errors


def test_ragged_csv_names_its_line(tmp_path, features_path):
    p = tmp_path / "log.csv"
    p.write_text("session_id,query_id,doc_id,position,click\n1,1,a1,1,0\n1,1,a2,2,1,7\n")
    with pytest.raises(DataError, match=r"log\.csv:3: 6 fields where the header has 5"):
        run_etl(p, features_path, tmp_path / "out", EtlConfig(list_size=2))


def test_jsonl_line_that_is_not_json_names_its_line(tmp_path, features_path):
    p = tmp_path / "log.jsonl"
    good = '{"session_id": 1, "query_id": "1", "doc_id": "a1", "position": 1, "click": 1}'
    p.write_text(good + "\n" + good.replace("a1", "a2").replace('"position": 1', '"position": 2') + "\n" + '{"session_id": 2, "query_id": \n')
    with pytest.raises(DataError, match=r"log\.jsonl:3: not a JSON object"):
        run_etl(p, features_path, tmp_path / "out", EtlConfig(list_size=2))


@pytest.mark.parametrize("params, msg", [
    ({"eta": -1.0}, "finite and >= 0"),
    ({"eta": float("nan")}, "finite and >= 0"),
    ({"eta": float("inf")}, "finite and >= 0"),
    ({"eps_neg": -0.1}, r"\[0, 1\]"),
    ({"eps_pos": 1.5}, r"\[0, 1\]"),
    ({"eps_neg": 0.6, "eps_pos": 0.4}, "exceeds eps_pos"),
])
def test_click_model_parameters_outside_their_range(params, msg):
    with pytest.raises(DataError, match=msg):
        make_click_model("pbm", y_max=2, **params)


def test_trust_epsilons_per_position_are_checked():
    with pytest.raises(DataError, match="exceeds eps_pos"):
        make_click_model("trust", y_max=2, eps_pos=[0.9, 0.5], eps_neg=[0.1, 0.6])


def test_list_and_batch_sizes_below_one(features_path):
    from ultr.data.batching import BatchIterator
    from ultr.data.letor import read_features
    from ultr.simulation.simulate import simulate_sessions

    with pytest.raises(DataError, match="etl.list_size=0"):
        EtlConfig(list_size=0)
    with pytest.raises(DataError, match="simulation.list_size=0"):
        simulate_sessions(read_features(features_path), make_click_model("pbm", y_max=2), sessions=10, list_size=0, seed=0,
                          policy_fraction=0.5, policy_min_queries=1)
    with pytest.raises(DataError, match="trainer.batch_size gives 0 rows"):
        BatchIterator({"x": np.zeros(4)}, 0, seed=0)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.experiment", *args], cwd=cwd, capture_output=True, text=True)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return errors[0]


def test_cli_unknown_launcher(tmp_path):
    line = _one_line_error(_cli(["hydra/launcher=nope", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path))
    assert "hydra/launcher/nope" in line and "joblib" in line


def test_cli_resume_without_a_checkpoint(tmp_path):
    line = _one_line_error(_cli(["trainer.resume=true", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path))
    assert "no training checkpoint" in line and str(tmp_path / "r") in line


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_cli_negative_eta_and_corrupt_parquet(tmp_path):
    line = _one_line_error(_cli(["click_model.eta=-1", "trainer=debug", f"hydra.run.dir={tmp_path / 'a'}"], tmp_path))
    assert "click_model.eta=-1:" in line
    bad = tmp_path / "clicks.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 100)  # a truncated copy
    line = _one_line_error(_cli([f"clicks={bad}", "trainer=debug", f"hydra.run.dir={tmp_path / 'b'}"], tmp_path))
    assert str(bad) in line and "not a readable Parquet file" in line


def test_corrupt_features_table(tmp_path):
    from ultr.data.letor import read_features

    p = tmp_path / "features.parquet"
    p.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_features(p)


def test_no_value_error_escapes_the_library():
    """Every error the library raises for bad input or settings is a DataError (one line, exit 2)."""
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "ultr").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if "raise ValueError(" in line]
    assert offenders == []


# --- process state and atomic directory swaps


def test_io_leaves_the_umask_alone_and_files_get_the_usual_mode(tmp_path, monkeypatch):
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
    importlib.reload(io)
    io.write_json({"a": 1}, tmp_path / "x.json")
    with io.atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("1")
    assert calls == []
    mask = real(0o022)
    real(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "x.json").st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o777 & ~mask


def test_atomic_dir_renames_the_old_directory_aside_before_the_new_one_goes_in(tmp_path, monkeypatch):
    target = tmp_path / "sessions"
    target.mkdir()
    (target / "old").write_text("old")
    events = []
    real_rename, real_rmtree = os.rename, shutil.rmtree

    def rename(src, dst):
        events.append(("rename", Path(src).name == "sessions", Path(dst).name == "sessions", (Path(dst) / "old").exists() or (Path(src) / "old").exists()))
        real_rename(src, dst)

    def rmtree(path, *a, **k):
        events.append(("rmtree", target.exists() and (target / "new").exists()))
        real_rmtree(path, *a, **k)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", rename)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with io.atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    # old aside, new in, and only then the old one removed
    assert [e[0] for e in events] == ["rename", "rename", "rmtree"]
    assert events[0][1] and not events[0][2]  # sessions -> aside
    assert events[1][2]                      # tmp -> sessions
    assert events[2][1]                      # the new one was in place when the old one went
    assert sorted(p.name for p in target.iterdir()) == ["new"] and len(list(tmp_path.iterdir())) == 1


def test_atomic_dir_keeps_the_old_directory_when_the_build_fails(tmp_path):
    target = tmp_path / "sessions"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["old"] and len(list(tmp_path.iterdir())) == 1


# --- compiles are counted with public APIs


def test_train_step_traces_are_counted_once_per_shape():
    import jax

    from pipelines.config import default_config
    from ultr.train.build import build_steps

    assert "_cache_size" not in (ROOT / "ultr" / "train" / "loop.py").read_text()
    steps = build_steps("naive", default_config(["model.hidden=[8]"]), 3, 4)
    state = steps.init(jax.random.PRNGKey(0), 2)
    feats = jax.numpy.ones((5, 3))

    def batch(n):
        return {"doc_index": np.zeros((n, 4), np.int32), "targets": np.eye(n, 4, dtype=np.float32),
                "mask": np.ones((n, 4), bool), "position": np.tile(np.arange(1, 5, dtype=np.int16), (n, 1))}

    state, _ = steps.train_step(state, batch(2), feats)
    state, _ = steps.train_step(state, batch(2), feats)
    assert steps.traces == [1]
    state, _ = steps.train_step(state, batch(3), feats)
    assert steps.traces == [2]


def test_resume_check_accepts_an_interrupted_run(tmp_path):
    from ultr.experiment import check_resumable

    (tmp_path / "checkpoints" / "dla-train").mkdir(parents=True)
    check_resumable(tmp_path, {"trainer": {"checkpoint_every": 10}})
    with pytest.raises(DataError, match="checkpoint_every > 0"):
        check_resumable(tmp_path, {"trainer": {"checkpoint_every": 0}})


# --- the wheel: configs and embedded data inside, runs from an empty directory


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_wheel_runs_from_an_empty_directory(tmp_path):
    """Build the wheel, install it (no dependencies) into a fresh venv that borrows this
    environment's installed dependencies, and run the debug experiment from an empty directory."""
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "ultr", "pipelines", "conf", "data"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        kw = {"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}
        copy(ROOT / name, src / name, **kw)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(wheels.glob("ultr-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: the editable install's own .pth hooks in that folder are not run.
    Path(site, "deps.pth").write_text(deps + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ULTR_CACHE")}
    where = subprocess.run([str(py), "-c", "import ultr; print(ultr.__file__)"], cwd=empty, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(site), where  # the wheel, not the source tree
    proc = subprocess.run([str(py), "-m", "pipelines.experiment", "trainer=debug", "simulation.sessions=20000", "trainer.progress=false"],
                          cwd=empty, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list(empty.glob("outputs/experiment/*/results.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["methods"]["dla"]["test"]["ndcg@10"] > 0.3
    assert (empty / ".cache" / "ultr").is_dir()  # the cache is the user's, beside the run

"""Scale-out: 8 forced CPU devices match 1 device; kill -9 then resume equals an uninterrupted
run bitwise; two local processes train together through jax.distributed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EMBEDDED_MQ2008, ROOT

pytestmark = pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")

BASE = ["trainer=debug", "trainer.steps=60", "trainer.eval_every=20", "model.hidden=[32]", "simulation.sessions=20000",
        "trainer.batch_size=64", "trainer.oracle_batch_size=8", "trainer.tensorboard=false"]


def run(args, out, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={out}", *BASE, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, **kw)


def metrics(out: Path) -> dict:
    r = json.loads((out / "results.json").read_text())
    return {m: v["test"] for m, v in r["methods"].items()}


def test_eight_devices_match_one(tmp_path):
    one = run([], tmp_path / "one")
    eight = run([], tmp_path / "eight", {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert one.returncode == 0, one.stderr[-2000:]
    assert eight.returncode == 0, eight.stderr[-2000:]
    r8 = json.loads((tmp_path / "eight" / "results.json").read_text())
    assert len(r8["devices"]) == 8
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "eight")
    worst = max(abs(a[m][k] - b[m][k]) for m in a for k in a[m])
    assert worst < 1e-3, (worst, a, b)


def test_kill_and_resume_is_exact(tmp_path):
    args = ["algorithm.methods=[dla]", "trainer.steps=1000", "trainer.eval_every=50",
            "trainer.checkpoint_every=50", "trainer.patience=null"]
    ref = run(args, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={out}", *BASE, *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoints" / "dla-train"
    deadline = time.time() + 120
    # Kill at the first finished checkpoint: most of the run is still ahead.
    while time.time() < deadline and not any(p.name.isdigit() for p in ckpt.glob("*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists(), "the run finished before it could be killed"
    saved = {f.name: f.read_bytes() for f in (out / ".hydra").iterdir()}
    # as the README writes it: the run directory and the flag; the saved settings are reloaded
    resumed = subprocess.run([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={out}", "trainer.resume=true"],
                             cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    r = json.loads((out / "results.json").read_text())
    assert 50 <= r["resumed_from_step"] < 1000
    assert f"resumed dla from step {r['resumed_from_step']}" in resumed.stderr
    assert {f.name: f.read_bytes() for f in (out / ".hydra").iterdir()} == saved  # the interrupted run's record stays
    assert metrics(out) == metrics(tmp_path / "ref")  # bitwise: same floats
    ref_prop = json.loads((tmp_path / "ref" / "results.json").read_text())["methods"]["dla"]["propensity"]["estimated"]
    assert r["methods"]["dla"]["propensity"]["estimated"] == ref_prop


def test_two_processes_train_together(tmp_path):
    port = 23456 + os.getpid() % 1000
    common = ["algorithm.methods=[naive]", "trainer.checkpoint=false", f"distributed.coordinator_address=localhost:{port}", "distributed.num_processes=2"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={tmp_path / f'p{i}'}", *BASE, *common, f"distributed.process_id={i}"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    a, b = metrics(tmp_path / "p0"), metrics(tmp_path / "p1")
    assert a == b  # one model, replicated on both processes
    assert np.isfinite(a["naive"]["ndcg@10"])

"""8 forced CPU devices vs 1: the same experiment, and the largest difference between their
results.json test metrics (issue 6 contract).

    python benchmarks/bench_devices.py [overrides...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record  # noqa: E402

DEFAULT = ["trainer.steps=300", "trainer.eval_every=100", "trainer.patience=null", "trainer.progress=false", "trainer.tensorboard=false"]


def main() -> None:
    over = sys.argv[1:] or DEFAULT
    out = {}
    for n in (1, 8):
        d = WORK / f"devices_{n}"
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipelines.experiment", f"hydra.run.dir={d}", *over], check=True, env=env,
                       cwd=Path(__file__).resolve().parent.parent, capture_output=True)
        r = json.loads((d / "results.json").read_text())
        out[n] = (r, time.perf_counter() - t)
    a, b = out[1][0]["methods"], out[8][0]["methods"]
    diffs = {f"{m}/{k}": abs(a[m]["test"][k] - b[m]["test"][k]) for m in a for k in a[m]["test"]}
    worst = max(diffs, key=diffs.get)
    record("devices_8_vs_1", {"overrides": over, "devices": [len(out[1][0]["devices"]), len(out[8][0]["devices"])],
                              "largest_difference": diffs[worst], "at": worst,
                              "seconds": {"1": round(out[1][1], 1), "8": round(out[8][1], 1)}})


if __name__ == "__main__":
    main()

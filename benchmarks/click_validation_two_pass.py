"""Click-based validation in two passes: each clicks-validated run of a sweep is trained again, now
validated with the propensity curve its own DLA learned in the first pass instead of PBM-EM's
(which one ranking per query leaves poorly identified). Labels are read for the report only.

    python benchmarks/click_validation_two_pass.py SWEEP OUT [--eta 2]
    python benchmarks/validation_report.py OUT

SWEEP is the sweep of benchmarks/validation_report.py (validation.source=labels,clicks). OUT gets
one second-pass run per first-pass clicks run (same overrides, validation.propensity=that run,
propensity_key dla) under the same directory name, and a link to each labels run, so that
validation_report.py pairs the second pass against the labels."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--eta", default="2")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for run in sorted(a.sweep.glob(f"*click_model.eta={a.eta},*")):
        target = a.out / run.name
        if run.name.endswith("validation.source=labels"):
            if not target.exists():
                target.symlink_to(run.resolve())
            continue
        if (target / "results.json").is_file():
            continue
        overrides = [part for part in run.name.split(",") if "=" in part]
        # quoted: the run directories' names hold '=', ',' and brackets (Hydra's override grammar)
        cmd = [sys.executable, "-m", "pipelines.experiment", "data.root=../shared/data/mq2008", *overrides,
               f"validation.propensity='{run.resolve()}'", "validation.propensity_key=dla", f"hydra.run.dir='{target}'"]
        print(" ".join(cmd[3:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()

"""Helpers shared by the benchmark scripts: peak RSS, machine description, result recording."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"  # generated inputs/outputs; ignored by git


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def record(name: str, result: dict) -> None:
    """Print one JSON line and append it to benchmarks/_work/results.jsonl (RESULTS.md is curated by hand)."""
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **result}
    line = json.dumps(result)
    print(line)
    WORK.mkdir(exist_ok=True)
    with open(WORK / "results.jsonl", "a") as fh:
        fh.write(line + "\n")


def run_child(code: str) -> dict:
    """Run Python code in a fresh process (so its peak RSS is its own) and return its JSON line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])

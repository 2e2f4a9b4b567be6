"""LETOR ingest throughput and peak memory on a synthetic fold with a standard dataset's shape.

    python benchmarks/gen_letor.py --shape mslr30k --scale 1.0 --out benchmarks/_work/mslr30k_1.0
    python benchmarks/bench_ingest.py --fold benchmarks/_work/mslr30k_1.0 --shape mslr30k

The ingest runs in a fresh process (its peak RSS is its own) with the dataset's preset settings.
The reference, measured in the same run on the first `--reference-mb` of the train split, is the
token-by-token Python parse the ingest used before (str.split, int(), float() per token), so the
speed is also reported as a ratio. Targets (issue 14, MSLR-WEB30K shape): >= 50 MB/s of text, the
whole fold in under 2 minutes, peak RSS <= the fold's dense float32 table + 1.5 GB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record, run_child  # noqa: E402

PRESET = {"mslr30k": (136, "minmax", False, "false"), "mslr10k": (136, "minmax", False, "false"),
          "yahoo_set1": (700, "none", False, "true"), "istella_s": (220, "minmax", True, "false")}

CHILD = """
import json, time
from pathlib import Path
from benchmarks._common import peak_rss_mb
from ultr.data.letor import ingest_letor
fold = Path({fold!r})
splits = {{s: fold / f"{{s}}.txt" for s in ("train", "vali", "test")}}
t = time.perf_counter()
st = ingest_letor(splits, {out!r}, num_features={width}, normalization={norm!r}, log1p={log1p}, sparse={sparse!r})
dt = time.perf_counter() - t
print(json.dumps({{"seconds": round(dt, 2), "documents": sum(s["documents"] for s in st["splits"].values()),
                  "peak_rss_mb": round(peak_rss_mb())}}))
"""


def reference_mb_per_s(path: Path, limit_mb: float) -> float:
    """The pre-vectorised parser's inner loop on the first `limit_mb` of `path`."""
    t, n = time.perf_counter(), 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            n += len(line)
            tokens = line.partition("#")[0].split()
            int(tokens[0])
            vals = [(int(i), float(v)) for i, _, v in (tok.partition(":") for tok in tokens[2:])]
            del vals
            if n > limit_mb * 1e6:
                break
    return n / 1e6 / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold", type=Path, required=True, help="directory holding Fold1/{train,vali,test}.txt")
    ap.add_argument("--shape", choices=sorted(PRESET), default="mslr30k")
    ap.add_argument("--reference-mb", type=float, default=100.0)
    args = ap.parse_args()
    fold = args.fold / "Fold1"
    width, norm, log1p, sparse = PRESET[args.shape]
    size = sum((fold / f"{s}.txt").stat().st_size for s in ("train", "vali", "test"))
    ref = reference_mb_per_s(fold / "train.txt", args.reference_mb)
    res = run_child(CHILD.format(fold=str(fold), out=str(WORK / f"ingest_{args.shape}.parquet"), width=width,
                                 norm=norm, log1p=log1p, sparse=sparse))
    dense_mb = res["documents"] * width * 4 / 2**20
    mb_s = size / 1e6 / res["seconds"]
    record("ingest", {
        "shape": args.shape, "fold": str(args.fold), "text_mb": round(size / 1e6), **res,
        "mb_per_s": round(mb_s, 1), "reference_mb_per_s": round(ref, 1), "speedup_vs_reference": round(mb_s / ref, 1),
        "dense_table_mb": round(dense_mb), "rss_over_table_mb": round(res["peak_rss_mb"] - dense_mb),
    })


if __name__ == "__main__":
    main()

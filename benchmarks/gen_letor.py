"""Synthetic LETOR folds with the shape of the field's standard datasets (they cannot be downloaded here).

    python benchmarks/gen_letor.py --shape mslr30k --scale 1.0 --out benchmarks/_work/mslr30k_1.0

writes OUT/Fold1/{train,vali,test}.txt in SVMlight text, as the real downloads ship:
- query and document counts per split: the published Fold1 / set-1 counts times `--scale`
  (documents per query drawn uniformly around the dataset's mean);
- the feature width and sparsity: MSLR and Istella are dense (every id on every line), Yahoo
  writes only its non-zero ids (about 30% of 700);
- labels 0-4 planted by a hidden nonlinear function of the features plus a per-query effect,
  cut at the dataset's published label shares;
- values with at most 6 significant digits, mixed counts and reals as in the real files.

Written in pieces of queries with Polars string expressions, so a full-size fold (4 GB of text
for MSLR-WEB30K) takes about a minute and bounded memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Shape:
    width: int
    splits: dict[str, tuple[int, int]]  # split -> (queries, documents) at full size
    label_shares: tuple[float, ...]  # share of labels 0..4
    density: float  # share of feature ids written per line (1.0 = dense)
    docid_comment: bool = False


# Published Fold1 (MSLR, Istella-S) and set-1 (Yahoo) counts.
SHAPES = {
    "mslr30k": Shape(136, {"train": (18919, 2270296), "vali": (6306, 747218), "test": (6306, 753611)},
                     (0.514, 0.325, 0.134, 0.019, 0.008), 1.0),
    "mslr10k": Shape(136, {"train": (6000, 723412), "vali": (2000, 235259), "test": (2000, 241521)},
                     (0.520, 0.324, 0.134, 0.015, 0.007), 1.0),
    "yahoo_set1": Shape(700, {"train": (19944, 473134), "vali": (2994, 71083), "test": (6983, 165660)},
                        (0.261, 0.359, 0.285, 0.073, 0.022), 0.3),
    "istella_s": Shape(220, {"train": (19245, 2043304), "vali": (7211, 684076), "test": (6562, 681250)},
                       (0.890, 0.018, 0.047, 0.030, 0.015), 1.0),
}


class Planted:
    """The hidden relevance function: a random two-layer tanh network of the features."""

    def __init__(self, width: int, rng: np.random.Generator):
        self.w1 = rng.normal(size=(width, 32)) / np.sqrt(width)
        self.w2 = rng.normal(size=32)
        self.linear = rng.normal(size=width) / np.sqrt(width)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ self.w1) @ self.w2 + 0.5 * x @ self.linear


def six_digits(x: np.ndarray) -> np.ndarray:
    """Round to 6 significant digits, as the real files print their values."""
    mag = np.floor(np.log10(np.maximum(np.abs(x), 1e-30)))
    scale = np.power(10.0, 5 - mag)
    return np.where(x == 0, 0.0, np.round(x * scale) / scale)


def piece_text(x: np.ndarray, labels: np.ndarray, qids: np.ndarray, density: float,
               rng: np.random.Generator, docids: np.ndarray | None) -> pl.Series:
    """One SVMlight line per row, built column by column in Polars (no Python loop per row)."""
    n, width = x.shape
    # Half the features are counts (integers, printed without a fraction, skewed like term and
    # link counts but bounded so min-max scaling keeps their spread), half reals.
    values = np.where(np.arange(width) % 2 == 0, np.floor(np.exp(np.clip(x, -3, 3)) * 3), six_digits(x))
    if density < 1.0:
        values = np.where(rng.random(values.shape) < density, values, 0.0)
    frame = pl.DataFrame({f"f{j}": values[:, j] for j in range(width)})
    tokens = []
    for j in range(width):
        col = pl.col(f"f{j}")
        text = pl.when(col == col.floor()).then(col.cast(pl.Int64).cast(pl.String)).otherwise(col.cast(pl.String))
        token = pl.lit(f"{j + 1}:") + text
        tokens.append(pl.when(col != 0).then(token) if density < 1.0 else token)
    head = [pl.lit(labels.astype(str)), pl.lit("qid:" + qids.astype(str))]
    tail = [pl.lit("#docid = " + docids.astype(str))] if docids is not None else []
    return frame.select(pl.concat_str(head + tokens + tail, separator=" ", ignore_nulls=True).alias("line"))["line"]


def write_split(path: Path, shape: Shape, queries: int, docs: int, planted: Planted, qid0: int,
                rng: np.random.Generator, thresholds: np.ndarray | None) -> np.ndarray:
    mean = docs / queries
    sizes = rng.integers(max(1, int(mean * 0.17)), int(mean * 1.83) + 1, size=queries)
    cuts = np.quantile(planted(rng.normal(size=(20000, shape.width))), np.cumsum(shape.label_shares)[:-1]) \
        if thresholds is None else thresholds
    with open(path, "w") as fh:
        for start in range(0, queries, 2000):
            q = np.arange(start, min(queries, start + 2000))
            qidx = np.repeat(q, sizes[q])
            x = rng.normal(size=(len(qidx), shape.width)) + 0.5 * rng.normal(size=(queries, shape.width))[qidx]
            rel = planted(x) + 0.3 * rng.normal(size=len(qidx))
            labels = np.searchsorted(cuts, rel)
            docids = np.char.add("d", np.arange(len(qidx)).astype(str)) if shape.docid_comment else None
            lines = piece_text(x, labels, qidx + qid0, shape.density, rng, docids)
            lines.to_frame().write_csv(fh, include_header=False, quote_style="never")
    return cuts


def generate(shape_name: str, scale: float, out: Path, seed: int = 0) -> Path:
    shape = SHAPES[shape_name]
    rng = np.random.default_rng(seed)
    planted = Planted(shape.width, rng)
    fold = out / "Fold1"
    fold.mkdir(parents=True, exist_ok=True)
    qid0, cuts = 1, None
    for split, (queries, docs) in shape.splits.items():
        nq = max(5, int(round(queries * scale)))
        cuts = write_split(fold / f"{split}.txt", shape, nq, int(docs * nq / queries), planted, qid0, rng, cuts)
        qid0 += nq
    return fold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t = time.perf_counter()
    fold = generate(args.shape, args.scale, args.out, args.seed)
    size = sum(f.stat().st_size for f in fold.iterdir())
    print(f"{fold}: {size / 1e6:.0f} MB in {time.perf_counter() - t:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

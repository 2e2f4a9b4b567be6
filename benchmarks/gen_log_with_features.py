"""A click log in Baidu-ULTR's shape (as the JAX reproducibility work distributes it): one Parquet
row per impression with its feature columns beside query, document, position and click: a few
named scalar scores and the rest as one embedding list column. Built from a simulated log
(`pipelines.simulate` output: clicks.parquet + features.parquet), so its rankers can also be
judged on the simulation's truth.

    python benchmarks/gen_log_with_features.py SIM_DIR OUT.parquet [--scalars 3] [--conflicts 0.01]

`--conflicts` perturbs that share of impressions' first feature, so that some (query, document)
pairs carry different features in different impressions: pipelines.experiment/etl count and
report them (`log.on_feature_conflict`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from ultr.data.letor import read_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--scalars", type=int, default=3, help="features written as named scalar columns f0.. (the rest: `emb`)")
    ap.add_argument("--conflicts", type=float, default=0.0, help="share of impressions whose f0 is perturbed")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t = read_features(a.sim_dir / "features.parquet")
    table = pl.DataFrame({"query_id": t.query_ids.astype(str), "doc_id": t.doc_ids.astype(str),
                          **{f"f{i}": t.features[:, i] for i in range(a.scalars)},
                          "emb": t.features[:, a.scalars:].tolist()})
    log = pl.scan_parquet(a.sim_dir / "clicks.parquet").with_columns(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String))
    log = log.join(table.lazy(), on=["query_id", "doc_id"], how="left", maintain_order="left").collect()
    if a.conflicts > 0:
        hit = np.random.default_rng(a.seed).random(log.height) < a.conflicts
        log = log.with_columns(pl.when(pl.Series(hit)).then(pl.col("f0") + 1.0).otherwise(pl.col("f0")).alias("f0"))
    tmp = a.out.with_name(a.out.name + ".tmp")
    log.write_parquet(tmp)
    tmp.replace(a.out)  # atomic: a killed run leaves no complete-looking file
    print(f"{a.out}: {log.height} impressions, columns {log.columns}; impressions with a perturbed f0: "
          f"{int(hit.sum()) if a.conflicts > 0 else 0}")


if __name__ == "__main__":
    main()

"""A trained ranker as a serialized JAX export (StableHLO): raw features in, scores out, with the
features table's normalisation built in, for any number of documents. Loading needs JAX alone:

    from jax import export
    score = export.deserialize(open("ranker.jaxexport", "rb").read())
    scores = score.call(features.astype("float32"))      # [n, F] raw features -> [n] scores

The export is lowered for CPU, CUDA and TPU (`ranker.json` lists them); ID rankers (no features)
have no portable input and are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax import export as jax_export

from ultr.api import Ranker, load
from ultr.data.io import atomic_path, write_json
from ultr.data.letor import read_features_meta
from ultr.errors import DataError

# Lowered for each, so an artifact made on a laptop serves on an accelerator too.
PLATFORMS = ("cpu", "cuda", "tpu")

LOADER = """from jax import export
score = export.deserialize(open("{path}", "rb").read())
scores = score.call(features.astype("float32"))  # features: [n, {width}] raw feature values"""


def normalise(x: jax.Array, norm: Mapping[str, Any]) -> jax.Array:
    """The ingest's transform (`ultr.data.letor.Normalization.apply`) in JAX."""
    if norm.get("log1p"):
        x = jnp.sign(x) * jnp.log1p(jnp.abs(x))
    if norm.get("method", "none") != "none":
        x = (x - jnp.asarray(norm["shift"], jnp.float32)) / jnp.asarray(norm["scale"], jnp.float32)
    return x


def scoring_function(ranker: Ranker):
    norm = dict(ranker.normalization)

    def score(x: jax.Array) -> jax.Array:
        idx = jnp.arange(x.shape[0], dtype=jnp.int32)[None, :]
        return ranker.steps.score(ranker.params, idx, normalise(x, norm))[0].astype(jnp.float32)

    return score


def export_ranker(ranker: Ranker, num_features: int) -> jax_export.Exported:
    """Exported with a symbolic number of documents: one artifact scores lists of any length."""
    (n,) = jax_export.symbolic_shape("n")
    return jax_export.export(jax.jit(scoring_function(ranker)), platforms=PLATFORMS)(
        jax.ShapeDtypeStruct((n, num_features), jnp.float32))


def export_run(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    ranker = load(str(cfg["ranker"]))
    meta = read_features_meta(ranker.features_path)
    width = int(meta["num_features"])
    if ranker.config["model"].get("name") == "id" or width == 0:
        raise DataError(f"{cfg['ranker']}: an ID ranker scores (query, document) ids of its own log; only feature rankers export")
    exported = export_ranker(ranker, width)
    path = run_dir / "ranker.jaxexport"
    with atomic_path(path) as tmp:
        tmp.write_bytes(exported.serialize())
    info = {"ranker": ranker.name, "source": str(cfg["ranker"]), "features": ranker.features_path, "num_features": width,
            "normalization": dict(ranker.normalization), "platforms": list(exported.platforms),
            "jax": jax.__version__, "input": f"float32 [n, {width}] raw feature values", "output": "float32 [n] scores",
            "loader": LOADER.format(path=path.name, width=width)}
    write_json(info, run_dir / "ranker.json")
    print(f"exported {ranker.name} ({width} features, platforms {list(exported.platforms)}) -> {path}\n\n"
          f"load it without ultr:\n\n{info['loader']}", file=sys.stdout)
    return info

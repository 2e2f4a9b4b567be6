"""IPS with the examination curve of a click model fitted on a real log
(`python -m pipelines.click_models`): `algorithm.ips_fitted.path=DIR` (the click-models run; the
model with the lowest test perplexity, or `algorithm.ips_fitted.model=ubm`), DIR/<model>, or a
propensities.json file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ultr.errors import DataError
from ultr.methods._ips import IpsMethod


def fitted_curve(path: str | None, model: str | None) -> tuple[np.ndarray, str]:
    """(relative examination per rank, the file it came from)."""
    if not path:
        raise DataError("ips_fitted needs algorithm.ips_fitted.path=<a pipelines.click_models run dir, DIR/<model>, or propensities.json>")
    p = Path(path)
    if p.is_dir() and (p / "click_models.json").is_file():
        scores = json.loads((p / "click_models.json").read_text())["models"]
        if model is None:
            model = min(scores, key=lambda n: scores[n]["perplexity"])
        elif model not in scores:
            raise DataError(f"{p}: no fitted model {model!r}; it holds {sorted(scores)}")
        p = p / model
    if p.is_dir():
        p = p / "propensities.json"
    if not p.is_file():
        raise DataError(f"{path}: holds no fitted click model (no propensities.json); point algorithm.ips_fitted.path "
                        "at a `python -m pipelines.click_models` run directory")
    curve = np.asarray(json.loads(p.read_text())["relative"], np.float64)
    if not (np.isfinite(curve).all() and (curve > 0).all()):
        raise DataError(f"{p}: the examination curve has non-positive or non-finite entries; refit the click model")
    return curve, str(p)


class IpsFitted(IpsMethod):
    name = "ips_fitted"
    defaults = {**IpsMethod.defaults, "path": None, "model": None}

    def known(self, src):
        own = src.cfg["algorithm"].get(self.name) or {}
        curve, _ = fitted_curve(own.get("path"), own.get("model"))
        K = int(src.cfg["etl"]["list_size"])
        if len(curve) < K:
            raise DataError(f"ips_fitted: the fitted curve has {len(curve)} ranks but etl.list_size={K}; "
                            f"set etl.list_size={len(curve)} or fit on a log with {K} results per page")
        return {"propensity": curve[:K]}


METHOD = IpsFitted()

"""IPS with the simulator's true propensities (an upper bound for propensity estimation)."""

from __future__ import annotations

import numpy as np

from ultr.errors import DataError
from ultr.methods._ips import IpsMethod


class IpsTrue(IpsMethod):
    name = "ips_true"

    def known(self, src):
        if src.true_curve is None:
            raise DataError("ips_true needs the true propensities: simulate the log, or put propensities.json beside clicks=")
        return {"propensity": np.asarray(src.true_curve)}


METHOD = IpsTrue()

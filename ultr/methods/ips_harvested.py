"""IPS with propensities from intervention harvesting (Agarwal et al., WSDM 2019): all position
pairs at which the same document was shown, from the training log itself."""

from __future__ import annotations

import numpy as np

from ultr.errors import DataError
from ultr.estimation.propensity import all_pairs, count_impressions, pairwise_ratios
from ultr.methods._ips import IpsMethod


class IpsHarvested(IpsMethod):
    name = "ips_harvested"

    def known(self, src):
        curve = all_pairs(*pairwise_ratios(count_impressions(src.sessions)))
        if not np.isfinite(curve).all():
            raise DataError(
                "ips_harvested: some positions have no intervention evidence (no document shown at two positions); "
                "a single deterministic logging policy never swaps documents: simulate with simulation.logging_policies=3"
            )
        return {"propensity": curve}


METHOD = IpsHarvested()

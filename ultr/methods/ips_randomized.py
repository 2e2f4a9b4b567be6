"""IPS with propensities from a simulated result-randomisation experiment (Joachims et al., WSDM 2017)."""

from __future__ import annotations

from ultr.errors import DataError
from ultr.methods._ips import IpsMethod
from ultr.click_models.simulator import click_model_from_config
from ultr.simulation.simulate import randomized_propensity


class IpsRandomized(IpsMethod):
    name = "ips_randomized"
    defaults = {"max_weight": None, "sessions": 200_000}  # sessions: size of the simulated randomisation experiment

    def known(self, src):
        cfg = src.cfg
        if cfg.get("clicks"):
            raise DataError("ips_randomized simulates a result-randomisation experiment: it needs the simulated setting, not clicks=")
        sim = cfg["simulation"]
        sessions = int((cfg["algorithm"].get(self.name) or {}).get("sessions", 200_000))
        return {"propensity": randomized_propensity(
            src.features, click_model_from_config(cfg["click_model"], src.features), sessions=sessions,
            list_size=int(cfg["etl"]["list_size"]), seed=int(cfg["seed"]) + 1,
            policy_fraction=float(sim["policy_fraction"]), policy_min_queries=int(sim["policy_min_queries"]))}


METHOD = IpsRandomized()

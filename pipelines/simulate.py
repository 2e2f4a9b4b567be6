"""Simulate a click log on a LETOR dataset: `python -m pipelines.simulate click_model.eta=2`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.workflows import simulate


@hydra.main(config_path=CONF, config_name="simulate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(simulate, cfg)


if __name__ == "__main__":
    launch(main, "simulate")

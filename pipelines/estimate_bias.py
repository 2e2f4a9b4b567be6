"""Estimate position bias on a click log with every estimator:
`python -m pipelines.estimate_bias log.format=pyclick log.path=...`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.workflows import estimate_bias


@hydra.main(config_path=CONF, config_name="estimate_bias", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(estimate_bias, cfg)


if __name__ == "__main__":
    launch(main, "estimate_bias")

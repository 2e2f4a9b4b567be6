"""The whole ULTR experiment: `python -m pipelines.experiment [overrides]` (see conf/experiment.yaml)."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.experiment import run_experiment


@hydra.main(config_path=CONF, config_name="experiment", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(run_experiment, cfg)


if __name__ == "__main__":
    launch(main, "experiment", resumable=True)

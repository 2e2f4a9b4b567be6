"""Summarise a sweep: `python -m pipelines.aggregate sweep_dir=DIR`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.aggregate import aggregate


@hydra.main(config_path=CONF, config_name="aggregate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(lambda c, _run_dir: aggregate(c["sweep_dir"]), cfg)


if __name__ == "__main__":
    launch(main, "aggregate")

"""Click log -> session tables: `python -m pipelines.etl log.path=CLICKS features.path=FEATURES`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.workflows import etl


@hydra.main(config_path=CONF, config_name="etl", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(etl, cfg)


if __name__ == "__main__":
    launch(main, "etl")

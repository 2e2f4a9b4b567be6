"""Fit click models on a log and score them by held-out click likelihood:
`python -m pipelines.click_models log.format=pyclick log.path=TRAIN test.path=TEST`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.click_models.pipeline import click_models


@hydra.main(config_path=CONF, config_name="click_models", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(click_models, cfg)


if __name__ == "__main__":
    launch(main, "click_models")

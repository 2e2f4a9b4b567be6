"""Trained rankers on held-out sessions of a click log, by counterfactual estimates with intervals:
`python -m pipelines.evaluate rankers=[RUN:dla,RUN:naive] log.path=HELDOUT propensity.source=PROPS`."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.evaluation.run import evaluate


@hydra.main(config_path=CONF, config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(evaluate, cfg)


if __name__ == "__main__":
    launch(main, "evaluate")

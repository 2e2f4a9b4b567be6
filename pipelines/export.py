"""A trained ranker as a serialized JAX export with its feature normalisation:
`python -m pipelines.export ranker=RUN:dla hydra.run.dir=DIR` -> DIR/ranker.jaxexport, DIR/ranker.json."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.export import export_run


@hydra.main(config_path=CONF, config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(export_run, cfg)


if __name__ == "__main__":
    launch(main, "export")

"""Online learning to rank: `python -m pipelines.online [overrides]` (see conf/online.yaml)."""

import hydra
from omegaconf import DictConfig

from pipelines._entry import CONF, launch, run
from ultr.online.run import online


@hydra.main(config_path=CONF, config_name="online", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(online, cfg)


if __name__ == "__main__":
    launch(main, "online")

"""DLA with its propensity tower disentangled from relevance by observation dropout (Zhang et al.,
KDD 2023): the same method as `dla` with `observation_dropout` on, registered under its own name
so one run can train and compare both on the same log. The rate was chosen on the validation
split of one seed of the MSLR-shaped robustness fold (benchmarks/RESULTS.md, issue 19)."""

from __future__ import annotations

from ultr.methods.dla import Dla


class DlaDisentangled(Dla):
    name = "dla_disentangled"
    defaults = {**Dla.defaults, "observation_dropout": 0.02}


METHOD = DlaDisentangled()

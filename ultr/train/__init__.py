"""Training: explicit train state, pure jitted steps, and the one loop that holds side effects
(state, steps, build, loop, distributed, checkpoint); one method trained (method) and the runs an
experiment trains with the choice among them (selection)."""

from ultr import random_cpu  # noqa: F401  (threefry lowered unrolled on CPU: the same bits, faster)

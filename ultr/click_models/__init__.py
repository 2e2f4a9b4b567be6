"""Click models fitted to logs: the models (models/, one module each), fitting, held-out click
likelihood, sampling and saved models."""

from ultr import random_cpu  # noqa: F401  (threefry lowered unrolled on CPU: the same bits, faster)

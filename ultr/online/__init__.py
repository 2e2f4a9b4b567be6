"""Online learning to rank: the ranker chooses what is shown and learns from the clicks it gets.
feed.py (queries' candidate lists on device, the simulated users), display.py (Plackett-Luce
display and its probabilities), interleaving.py (team-draft multileaving), methods/ (PDGD, DBGD,
MGD, one module each), loop.py (the interaction loop compiled in JAX, learning curves)."""

from ultr import random_cpu  # noqa: F401  (threefry lowered unrolled on CPU: the same bits, faster)

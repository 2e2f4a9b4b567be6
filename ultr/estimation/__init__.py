"""Position-bias estimators that work on any click log: a PBM fitted by EM and intervention
harvesting (all-pairs and adjacent-chain). DLA's read-out lives with training."""

"""Click models fitted to logs: the models (models/, one module each), fitting, held-out click
likelihood, sampling and saved models."""

"""Click simulation on labelled data: logging policies, click models, session sampling (NumPy only)."""

"""Training: explicit train state, pure jitted steps, and the one loop that holds side effects."""

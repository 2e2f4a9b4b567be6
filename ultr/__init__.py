"""ultr: unbiased learning to rank from biased click logs."""

__version__ = "0.1.0"

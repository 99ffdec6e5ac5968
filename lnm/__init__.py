"""lnm: learning-with-noisy-labels benchmark for medical image classification."""

__version__ = "0.1.0"

"""Metrics and Lightning callbacks that torchmetrics lacks for training generative models."""

from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity, CausalLMTokenAccuracy
from torchmetrics_ext.video import FrechetVideoDistance, KernelVideoDistance

__version__ = "0.1.0.dev0"

__all__ = [
    "CausalLMCrossEntropy",
    "CausalLMPerplexity",
    "CausalLMTokenAccuracy",
    "FrechetVideoDistance",
    "KernelVideoDistance",
    "__version__",
]

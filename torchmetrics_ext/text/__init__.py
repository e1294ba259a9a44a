"""Metrics for causal language models, accumulated over batches (``torchmetrics.Metric`` subclasses)."""

from torchmetrics_ext.text.cross_entropy import CausalLMCrossEntropy
from torchmetrics_ext.text.perplexity import CausalLMPerplexity
from torchmetrics_ext.text.token_accuracy import CausalLMTokenAccuracy

__all__ = ["CausalLMCrossEntropy", "CausalLMPerplexity", "CausalLMTokenAccuracy"]

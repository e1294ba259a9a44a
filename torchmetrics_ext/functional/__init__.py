"""Stateless forms of the metrics of :mod:`torchmetrics_ext`, one function per metric."""

from torchmetrics_ext.functional.text import causal_lm_cross_entropy, causal_lm_perplexity, causal_lm_token_accuracy

__all__ = ["causal_lm_cross_entropy", "causal_lm_perplexity", "causal_lm_token_accuracy"]

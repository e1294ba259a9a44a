"""Stateless causal-LM metrics: the math behind the classes of :mod:`torchmetrics_ext.text`."""

from torchmetrics_ext.functional.text.cross_entropy import causal_lm_cross_entropy
from torchmetrics_ext.functional.text.perplexity import causal_lm_perplexity
from torchmetrics_ext.functional.text.token_accuracy import causal_lm_token_accuracy

__all__ = ["causal_lm_cross_entropy", "causal_lm_perplexity", "causal_lm_token_accuracy"]

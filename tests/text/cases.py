"""The three causal-LM metrics, each with its functional form and its float64 reference."""

import pytest

from tests.helpers import reference
from torchmetrics_ext.functional.text import causal_lm_cross_entropy, causal_lm_perplexity, causal_lm_token_accuracy
from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity, CausalLMTokenAccuracy

METRICS = [
    pytest.param(CausalLMPerplexity, causal_lm_perplexity, reference.perplexity, id="perplexity"),
    pytest.param(CausalLMCrossEntropy, causal_lm_cross_entropy, reference.cross_entropy, id="cross_entropy"),
    pytest.param(CausalLMTokenAccuracy, causal_lm_token_accuracy, reference.token_accuracy, id="token_accuracy"),
]
CLASSES = [pytest.param(case.values[0], id=case.id) for case in METRICS]
# Stated tolerance of the package: 1e-5 relative to the float64 value, whatever the dtype of the logits.
RTOL = 1e-5

"""What the causal-LM metric classes share: their arguments and the negative log-likelihood states."""

from typing import Any, Optional

import torch
from torch import Tensor

from torchmetrics_ext.functional.text.cross_entropy import _causal_lm_nll_update
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.utilities.checks import _check_causal_lm_options


class _CausalLMMetric(StateSafeMetric):
    """Holds and checks the arguments common to the causal-LM metrics."""

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        ignore_index: Optional[int] = -100,
        shift: bool = True,
        chunk_size: Optional[int] = None,
        non_finite: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_causal_lm_options(ignore_index, shift, chunk_size, non_finite)
        self.ignore_index = ignore_index
        self.shift = shift
        self.chunk_size = chunk_size
        self.non_finite = non_finite


class _CausalLMNLLMetric(_CausalLMMetric):
    """Accumulates the float64 sum of the target tokens' negative log-likelihoods and their int64 count."""

    nll_sum: Tensor
    count: Tensor

    def __init__(
        self,
        ignore_index: Optional[int] = -100,
        shift: bool = True,
        chunk_size: Optional[int] = None,
        non_finite: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(ignore_index, shift, chunk_size, non_finite, **kwargs)
        self.add_state("nll_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor, attention_mask: Optional[Tensor] = None) -> None:
        """Add the negative log-likelihoods of one batch; nothing is added when the batch is rejected."""
        nll_sum, count = _causal_lm_nll_update(
            logits, labels, attention_mask, self.ignore_index, self.shift, self.chunk_size, self.non_finite
        )
        self.nll_sum += nll_sum
        self.count += count

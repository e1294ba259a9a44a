"""Next-token accuracy of a causal language model, as a ``torchmetrics.Metric``."""

from typing import Any, Optional

import torch
from torch import Tensor

from torchmetrics_ext.functional.text.token_accuracy import (
    _causal_lm_token_accuracy_compute,
    _causal_lm_token_accuracy_update,
)
from torchmetrics_ext.text._causal_lm_base import _CausalLMMetric
from torchmetrics_ext.utilities.checks import _check_top_k


class CausalLMTokenAccuracy(_CausalLMMetric):
    r"""Next-token accuracy of a causal language model: the fraction of target tokens among the top-k logits.

    .. math::
        \mathrm{Acc@k} = \frac{1}{N} \sum_{(b, t)} \big[\operatorname{rank}(y_{b, t} \mid \ell_{b, t-1}) < k\big]

    over the :math:`N` target tokens of every batch whose label is not ``ignore_index`` and whose
    ``attention_mask`` is 1, with the labels shifted inside (``shift=True``). The rank of the target counts the
    logits above it and the equal logits at lower token ids, so ``top_k=1`` is exactly ``argmax == label``.

    As input to ``forward`` and ``update`` the metric accepts:

    - ``logits`` (:class:`~torch.Tensor`): ``[batch_size, seq_len, vocab_size]``, float32, float16 or bfloat16
    - ``labels`` (:class:`~torch.Tensor`): ``[batch_size, seq_len]`` integer token ids, unshifted
    - ``attention_mask`` (:class:`~torch.Tensor`, optional): ``[batch_size, seq_len]`` of 0 and 1, aligned with
      ``labels``; a target at a 0 is not counted

    As output of ``forward`` and ``compute`` the metric returns:

    - ``token_accuracy`` (:class:`~torch.Tensor`): a float32 scalar in [0, 1], NaN with a warning when no token
      was counted

    Args:
        top_k: a target counts as correct when it is among the ``top_k`` highest logits.
        ignore_index: label value of tokens that are not counted; ``None`` counts every label.
        shift: ``True`` shifts the labels left by one; ``False`` takes ``logits[:, t]`` as the prediction of
            ``labels[:, t]``.
        chunk_size: target tokens per chunk; ``None`` picks a chunk of about 4 MiB of float32 on CPUs and
            64 MiB on accelerators.
        non_finite: ``"error"`` raises on NaN or infinite logits at a counted position, ``"skip"`` leaves such
            tokens out.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: as :class:`~torchmetrics_ext.text.CausalLMPerplexity`, and on ``top_k`` that is not a
            positive integer or, in ``update``, exceeds ``vocab_size``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.text import CausalLMTokenAccuracy
        >>> logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[0, 2, 1]])
        >>> CausalLMTokenAccuracy()(logits, labels)
        tensor(0.5000)
        >>> CausalLMTokenAccuracy(top_k=2)(logits, labels)
        tensor(1.)

    """

    is_differentiable = False
    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    correct: Tensor
    count: Tensor

    def __init__(
        self,
        top_k: int = 1,
        ignore_index: Optional[int] = -100,
        shift: bool = True,
        chunk_size: Optional[int] = None,
        non_finite: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(ignore_index, shift, chunk_size, non_finite, **kwargs)
        _check_top_k(top_k)
        self.top_k = top_k
        self.add_state("correct", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor, attention_mask: Optional[Tensor] = None) -> None:
        """Add the top-k hits of one batch; nothing is added when the batch is rejected."""
        correct, count = _causal_lm_token_accuracy_update(
            logits, labels, attention_mask, self.ignore_index, self.shift, self.chunk_size, self.non_finite, self.top_k
        )
        self.correct += correct
        self.count += count

    def compute(self) -> Tensor:
        """Return the accuracy over every counted token seen since the last reset."""
        return _causal_lm_token_accuracy_compute(self.correct, self.count)

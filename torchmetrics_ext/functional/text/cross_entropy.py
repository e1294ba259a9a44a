"""Mean negative log-likelihood of a causal language model, in nats."""

from typing import Optional

from torch import Tensor

from torchmetrics_ext.functional.text._causal_lm import _causal_lm_statistics, _mean_over_tokens
from torchmetrics_ext.utilities.checks import _check_causal_lm_options


def _causal_lm_nll_update(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor],
    ignore_index: Optional[int],
    shift: bool,
    chunk_size: Optional[int],
    non_finite: str,
) -> tuple[Tensor, Tensor]:
    """Return the float64 sum of the negative log-likelihoods and the int64 count of the counted tokens."""
    stats = _causal_lm_statistics(logits, labels, attention_mask, ignore_index, shift, chunk_size, non_finite)
    return stats.nll_sum, stats.count


def _causal_lm_cross_entropy_compute(nll_sum: Tensor, count: Tensor) -> Tensor:
    """Mean negative log-likelihood in nats, as float32 (NaN when no token was counted)."""
    return _mean_over_tokens(nll_sum, count).float()


def causal_lm_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
    chunk_size: Optional[int] = None,
    non_finite: str = "error",
) -> Tensor:
    r"""Cross-entropy of a causal language model: the mean negative log-likelihood of the target tokens, in nats.

    .. math::
        \mathrm{CE} = -\frac{1}{N} \sum_{(b, t)} \log \operatorname{softmax}(\ell_{b, t-1})_{y_{b, t}}

    over the :math:`N` target tokens :math:`y_{b, t}` whose label is not ``ignore_index`` and whose
    ``attention_mask`` is 1. With ``shift=True`` the labels are shifted inside, exactly as Hugging Face models do
    for their ``loss``: the token at :math:`t` is predicted by the logits at :math:`t - 1`. The log-softmax is
    taken in float32 (float64 for float64 logits), one chunk of tokens at a time, whatever the logits' dtype.
    Not differentiable: use it to measure, not as a training loss.

    Args:
        logits: ``[batch_size, seq_len, vocab_size]`` float32, float16 or bfloat16 scores.
        labels: ``[batch_size, seq_len]`` integer token ids, unshifted (Hugging Face ``labels``).
        attention_mask: optional ``[batch_size, seq_len]`` 0/1 mask aligned with ``labels``; a target at a 0 is
            not counted.
        ignore_index: label value of tokens that are not counted; ``None`` counts every label.
        shift: ``True`` shifts the labels left by one; ``False`` takes ``logits[:, t]`` as the prediction of
            ``labels[:, t]``.
        chunk_size: target tokens per chunk; ``None`` picks a chunk of about 4 MiB of float32 on CPUs and
            64 MiB on accelerators.
        non_finite: ``"error"`` raises on NaN or infinite logits at a counted position, ``"skip"`` leaves such
            tokens out.

    Returns:
        A float32 scalar; NaN, with a warning, when no token is counted.

    Raises:
        ValueError: on logits that are not a floating [B, T, V] tensor, labels that are not integer [B, T],
            labels outside ``[0, vocab_size)`` other than ``ignore_index``, a mask of another shape or with
            values other than 0 and 1, ``seq_len < 2`` with ``shift=True``, or non-finite logits with
            ``non_finite="error"``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.text import causal_lm_cross_entropy
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[2, 0, 1]])  # logits[:, t] predict labels[:, t + 1]; labels[:, 0] is never a target
        >>> causal_lm_cross_entropy(logits, labels)
        tensor(0.1672)

    """
    _check_causal_lm_options(ignore_index, shift, chunk_size, non_finite)
    nll_sum, count = _causal_lm_nll_update(logits, labels, attention_mask, ignore_index, shift, chunk_size, non_finite)
    return _causal_lm_cross_entropy_compute(nll_sum, count)

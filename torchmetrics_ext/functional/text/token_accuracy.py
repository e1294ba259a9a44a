"""Next-token accuracy of a causal language model."""

from typing import Optional

from torch import Tensor

from torchmetrics_ext.functional.text._causal_lm import _causal_lm_statistics, _mean_over_tokens
from torchmetrics_ext.utilities.checks import _check_causal_lm_options, _check_top_k


def _causal_lm_token_accuracy_update(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor],
    ignore_index: Optional[int],
    shift: bool,
    chunk_size: Optional[int],
    non_finite: str,
    top_k: int,
) -> tuple[Tensor, Tensor]:
    """Return the int64 number of targets within the top-k logits and the int64 count of counted tokens."""
    stats = _causal_lm_statistics(
        logits, labels, attention_mask, ignore_index, shift, chunk_size, non_finite, top_k=top_k, need_nll=False
    )
    return stats.correct, stats.count


def _causal_lm_token_accuracy_compute(correct: Tensor, count: Tensor) -> Tensor:
    """Fraction of counted tokens predicted within the top k, as float32 (NaN when none was counted)."""
    return _mean_over_tokens(correct, count).float()


def causal_lm_token_accuracy(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
    chunk_size: Optional[int] = None,
    non_finite: str = "error",
    top_k: int = 1,
) -> Tensor:
    r"""Next-token accuracy of a causal language model: the fraction of target tokens among the top-k logits.

    .. math::
        \mathrm{Acc@k} = \frac{1}{N} \sum_{(b, t)} \big[\operatorname{rank}(y_{b, t} \mid \ell_{b, t-1}) < k\big]

    over the :math:`N` target tokens whose label is not ``ignore_index`` and whose ``attention_mask`` is 1, with
    the labels shifted inside when ``shift=True``. The rank of the target counts the logits above it, and equal
    logits at lower token ids, so ``top_k=1`` is ``argmax == label`` exactly (argmax returns the first maximum).

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
        top_k: a target counts as correct when it is among the ``top_k`` highest logits.

    Returns:
        A float32 scalar in [0, 1]; NaN, with a warning, when no token is counted.

    Raises:
        ValueError: on the inputs :func:`causal_lm_cross_entropy` rejects, and on ``top_k`` that is not a positive
            integer or exceeds ``vocab_size``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.text import causal_lm_token_accuracy
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> causal_lm_token_accuracy(logits, labels)
        tensor(1.)

    """
    _check_causal_lm_options(ignore_index, shift, chunk_size, non_finite)
    _check_top_k(top_k)
    correct, count = _causal_lm_token_accuracy_update(
        logits, labels, attention_mask, ignore_index, shift, chunk_size, non_finite, top_k
    )
    return _causal_lm_token_accuracy_compute(correct, count)

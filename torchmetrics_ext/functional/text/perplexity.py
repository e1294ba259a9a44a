"""Perplexity of a causal language model."""

from typing import Optional

from torch import Tensor

from torchmetrics_ext.functional.text._causal_lm import _mean_over_tokens
from torchmetrics_ext.functional.text.cross_entropy import _causal_lm_nll_update
from torchmetrics_ext.utilities.checks import _check_causal_lm_options


def _causal_lm_perplexity_compute(nll_sum: Tensor, count: Tensor) -> Tensor:
    """Exp of the mean negative log-likelihood, taken in float64 and returned as float32."""
    return _mean_over_tokens(nll_sum, count).exp().float()


def causal_lm_perplexity(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
    chunk_size: Optional[int] = None,
    non_finite: str = "error",
) -> Tensor:
    r"""Perplexity of a causal language model: exp of the mean negative log-likelihood of the target tokens.

    .. math::
        \mathrm{PPL} = \exp\Big(-\frac{1}{N} \sum_{(b, t)} \log \operatorname{softmax}(\ell_{b, t-1})_{y_{b, t}}\Big)

    in nats, over the :math:`N` target tokens whose label is not ``ignore_index`` and whose ``attention_mask`` is
    1; with ``shift=True`` the labels are shifted inside (the token at :math:`t` is predicted by the logits at
    :math:`t - 1`), so ``logits`` and ``labels`` are passed exactly as a Hugging Face model takes them. This is
    ``exp(loss)`` of such a model, computed without a softmax and exact for bfloat16 and float16 logits.
    ``ignore_index=None, shift=False`` gives the values of ``torchmetrics.functional.text.perplexity``.

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
        ValueError: on the inputs :func:`causal_lm_cross_entropy` rejects.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.text import causal_lm_perplexity
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> causal_lm_perplexity(logits, labels)
        tensor(1.1820)

    """
    _check_causal_lm_options(ignore_index, shift, chunk_size, non_finite)
    nll_sum, count = _causal_lm_nll_update(logits, labels, attention_mask, ignore_index, shift, chunk_size, non_finite)
    return _causal_lm_perplexity_compute(nll_sum, count)

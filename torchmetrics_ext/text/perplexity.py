"""Perplexity of a causal language model, as a ``torchmetrics.Metric``."""

from torch import Tensor

from torchmetrics_ext.functional.text.perplexity import _causal_lm_perplexity_compute
from torchmetrics_ext.text._causal_lm_base import _CausalLMNLLMetric


class CausalLMPerplexity(_CausalLMNLLMetric):
    r"""Perplexity of a causal language model, exp of the mean negative log-likelihood of the target tokens.

    .. math::
        \mathrm{PPL} = \exp\Big(-\frac{1}{N} \sum_{(b, t)} \log \operatorname{softmax}(\ell_{b, t-1})_{y_{b, t}}\Big)

    in nats, over the :math:`N` target tokens of every batch whose label is not ``ignore_index`` and whose
    ``attention_mask`` is 1. The labels are shifted inside (``shift=True``): pass ``logits`` and ``labels``
    exactly as a Hugging Face model takes them, and the value is ``exp`` of the token-weighted mean of its
    ``loss``. The log-softmax is taken in float32 one chunk of tokens at a time, so bfloat16 and float16 logits
    give the float64 value to 1e-5 and no softmax is materialised. ``CausalLMPerplexity(ignore_index=None,
    shift=False)`` is a drop-in for ``torchmetrics.text.Perplexity``.

    As input to ``forward`` and ``update`` the metric accepts:

    - ``logits`` (:class:`~torch.Tensor`): ``[batch_size, seq_len, vocab_size]``, float32, float16 or bfloat16
    - ``labels`` (:class:`~torch.Tensor`): ``[batch_size, seq_len]`` integer token ids, unshifted
    - ``attention_mask`` (:class:`~torch.Tensor`, optional): ``[batch_size, seq_len]`` of 0 and 1, aligned with
      ``labels``; a target at a 0 is not counted

    As output of ``forward`` and ``compute`` the metric returns:

    - ``perplexity`` (:class:`~torch.Tensor`): a float32 scalar, NaN with a warning when no token was counted

    The states, a float64 sum and an int64 count, are summed across processes and keep their dtype when the
    module is cast (``module.to(torch.bfloat16)``, Lightning's ``precision="bf16-true"``).

    Args:
        ignore_index: label value of tokens that are not counted; ``None`` counts every label.
        shift: ``True`` shifts the labels left by one; ``False`` takes ``logits[:, t]`` as the prediction of
            ``labels[:, t]``.
        chunk_size: target tokens per chunk; ``None`` picks a chunk of about 4 MiB of float32 on CPUs and
            64 MiB on accelerators.
        non_finite: ``"error"`` raises on NaN or infinite logits at a counted position, ``"skip"`` leaves such
            tokens out.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an argument above of the wrong type or value; in ``update``, on logits that are not a
            floating [B, T, V] tensor, labels that are not integer [B, T], labels outside ``[0, vocab_size)``
            other than ``ignore_index``, a mask of another shape or with values other than 0 and 1,
            ``seq_len < 2`` with ``shift=True``, or non-finite logits with ``non_finite="error"``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.text import CausalLMPerplexity
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[0, 0, -100]])  # the last token is padding
        >>> metric = CausalLMPerplexity()
        >>> metric.update(logits, labels)
        >>> metric.compute()
        tensor(1.2707)

    """

    higher_is_better = False
    plot_lower_bound = 1.0

    def compute(self) -> Tensor:
        """Return the perplexity over every counted token seen since the last reset."""
        return _causal_lm_perplexity_compute(self.nll_sum, self.count)

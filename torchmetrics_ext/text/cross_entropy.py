"""Cross-entropy (mean negative log-likelihood) of a causal language model, as a ``torchmetrics.Metric``."""

from torch import Tensor

from torchmetrics_ext.functional.text.cross_entropy import _causal_lm_cross_entropy_compute
from torchmetrics_ext.text._causal_lm_base import _CausalLMNLLMetric


class CausalLMCrossEntropy(_CausalLMNLLMetric):
    r"""Cross-entropy of a causal language model: the mean negative log-likelihood of the target tokens, in nats.

    .. math::
        \mathrm{CE} = -\frac{1}{N} \sum_{(b, t)} \log \operatorname{softmax}(\ell_{b, t-1})_{y_{b, t}}

    over the :math:`N` target tokens of every batch whose label is not ``ignore_index`` and whose
    ``attention_mask`` is 1; the labels are shifted inside (``shift=True``), as Hugging Face models do for their
    ``loss``. Unlike the mean of per-batch losses, every token weighs the same whatever the batch it came in. Its
    exponential is :class:`~torchmetrics_ext.text.CausalLMPerplexity`; in a
    :class:`~torchmetrics.MetricCollection` the two share their states and read the logits once.

    As input to ``forward`` and ``update`` the metric accepts:

    - ``logits`` (:class:`~torch.Tensor`): ``[batch_size, seq_len, vocab_size]``, float32, float16 or bfloat16
    - ``labels`` (:class:`~torch.Tensor`): ``[batch_size, seq_len]`` integer token ids, unshifted
    - ``attention_mask`` (:class:`~torch.Tensor`, optional): ``[batch_size, seq_len]`` of 0 and 1, aligned with
      ``labels``; a target at a 0 is not counted

    As output of ``forward`` and ``compute`` the metric returns:

    - ``cross_entropy`` (:class:`~torch.Tensor`): a float32 scalar in nats, NaN with a warning when no token was
      counted

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
        ValueError: as :class:`~torchmetrics_ext.text.CausalLMPerplexity`.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.text import CausalLMCrossEntropy
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> attention_mask = torch.tensor([[1, 1, 0]])  # the last token is padding
        >>> metric = CausalLMCrossEntropy()
        >>> metric(logits, labels, attention_mask)
        tensor(0.2395)

    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def compute(self) -> Tensor:
        """Return the mean negative log-likelihood over every counted token seen since the last reset."""
        return _causal_lm_cross_entropy_compute(self.nll_sum, self.count)

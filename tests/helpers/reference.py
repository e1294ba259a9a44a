"""Float64 references for the causal-LM metrics, written with NumPy and SciPy rather than the package's code."""

from typing import Optional

import numpy as np
import torch
from scipy.special import logsumexp
from torch import Tensor


def shifted_targets(
    labels: Tensor, attention_mask: Optional[Tensor], ignore_index: Optional[int], shift: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (batch, position, token) of the counted targets; the logits at (batch, position) predict token."""
    labels = labels.cpu().numpy().astype(np.int64)
    mask = np.ones_like(labels, dtype=bool) if attention_mask is None else attention_mask.cpu().numpy() != 0
    if shift:
        labels, mask = labels[:, 1:], mask[:, 1:]
    if ignore_index is not None:
        mask = mask & (labels != ignore_index)
    batch, position = np.nonzero(mask)
    return batch, position, labels[batch, position]


def token_nll(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
) -> np.ndarray:
    """Float64 negative log-likelihood of every counted target, the logits upcast exactly from their dtype.

    Written as ``-log p_y = log(1 + sum_{i != y} exp(x_i - x_y))`` with ``logaddexp(0, .)``: unlike
    ``-log_softmax`` in float64 it keeps its relative precision when ``p_y`` is within 1e-16 of 1.
    """
    batch, position, tokens = shifted_targets(labels, attention_mask, ignore_index, shift)
    rows = logits.detach().cpu().double().numpy()[batch, position]
    target_logit = rows[np.arange(len(tokens)), tokens]
    others = rows - target_logit[:, None]
    others[np.arange(len(tokens)), tokens] = -np.inf
    return np.logaddexp(0.0, logsumexp(others, axis=-1))


def cross_entropy(logits: Tensor, labels: Tensor, **kwargs) -> float:
    return float(token_nll(logits, labels, **kwargs).mean())


def perplexity(logits: Tensor, labels: Tensor, **kwargs) -> float:
    return float(np.exp(token_nll(logits, labels, **kwargs).mean()))


def token_accuracy(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
    top_k: int = 1,
) -> float:
    """Fraction of targets ranked within the top k by a stable sort (equal logits: lower token id first)."""
    batch, position, tokens = shifted_targets(labels, attention_mask, ignore_index, shift)
    rows = logits.detach().cpu().double().numpy()[batch, position]
    order = np.argsort(-rows, axis=-1, kind="stable")
    rank = np.argmax(order == tokens[:, None], axis=-1)
    return float((rank < top_k).mean())


def hugging_face_loss(logits: Tensor, labels: Tensor) -> float:
    """The loss of a Hugging Face causal LM (shift inside, mean over labels != -100), in float64 with torch."""
    vocab_size = logits.shape[-1]
    shift_logits = logits[:, :-1].reshape(-1, vocab_size).double()
    shift_labels = labels[:, 1:].reshape(-1)
    return float(torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100))


def random_batch(
    batch_size: int = 3,
    seq_len: int = 17,
    vocab_size: int = 50,
    dtype: torch.dtype = torch.float32,
    scale: float = 4.0,
    seed: int = 0,
    pad: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, labels with -100 padding at the end of some rows, and the matching attention mask."""
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(batch_size, seq_len, vocab_size, generator=gen)).to(dtype)
    labels = torch.randint(vocab_size, (batch_size, seq_len), generator=gen)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.int64)
    if pad:
        for row in range(1, batch_size):
            length = int(torch.randint(2, seq_len, (1,), generator=gen))
            labels[row, length:] = -100
            attention_mask[row, length:] = 0
    return logits, labels, attention_mask

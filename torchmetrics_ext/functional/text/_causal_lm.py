"""The shift and the chunked log-softmax core of the causal-LM metrics: the one place logits are read.

Logits are read one chunk of counted target tokens at a time: the chunk's rows are copied and upcast to float32
(float64 logits stay float64) and their log-softmax taken there, so the extra memory of a call is a few chunks plus
a few bytes per token, never a copy of the logits, and nothing is rounded to the logits' own dtype. A float32 log-softmax is off by about 1e-7 nats per token; that is
a relative error below 1e-6 for every token whose negative log-likelihood exceeds ``_CONFIDENT_NLL``. Below it (the
model is confident and right) the value is taken again as

    nll = log(sum_i exp(x_i - x_y)) = log1p(sum_{i != y} exp(x_i - x_y))

whose terms are all small, so ``log1p`` keeps the relative error near 1e-7 however close to 0 the value is.
"""

from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torchmetrics.utilities import rank_zero_warn

from torchmetrics_ext.utilities.checks import _check_causal_lm_inputs

# Default chunk budget: the float32 work buffer of one chunk. Small on CPUs so that a chunk stays in cache,
# large on accelerators so that the kernel launches of a chunk are paid for.
_CHUNK_BYTES_CPU = 4 * 2**20
_CHUNK_BYTES_ACCELERATOR = 256 * 2**20
# Below this negative log-likelihood (probability above 0.94) a token's value is refined with log1p.
_CONFIDENT_NLL = 0.0625


class CausalLMStatistics(NamedTuple):
    """Sums over the counted target tokens of one batch."""

    nll_sum: Tensor  # float64 scalar, in nats
    correct: Tensor  # int64 scalar, targets within the top-k logits
    count: Tensor  # int64 scalar, tokens counted


def _default_chunk_size(vocab_size: int, device: torch.device) -> int:
    budget = _CHUNK_BYTES_CPU if device.type == "cpu" else _CHUNK_BYTES_ACCELERATOR
    return max(1, budget // (4 * vocab_size))


def _select_targets(
    labels: Tensor,
    attention_mask: Optional[Tensor],
    ignore_index: Optional[int],
    shift: bool,
    vocab_size: int,
) -> tuple[Tensor, Tensor]:
    """Return ``(rows, tokens)`` of every counted target: ``logits.view(-1, V)[rows]`` predicts ``tokens``.

    With ``shift`` the label at ``t`` is predicted by the logits at ``t - 1``: the labels (and the mask, which is
    aligned with them) are shifted left by one, the logits are not touched.
    """
    seq_len = labels.shape[1]
    if shift:
        labels = labels[:, 1:]
        attention_mask = None if attention_mask is None else attention_mask[:, 1:]
    counted = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    if attention_mask is not None:
        counted &= attention_mask.bool()
    batch, position = counted.nonzero(as_tuple=True)
    tokens = labels[batch, position].long()
    out_of_range = (tokens < 0) | (tokens >= vocab_size)
    if out_of_range.any():
        bad = tokens[out_of_range][0].item()
        hint = " (it equals -100: pass `ignore_index=-100` to skip such labels)" if bad == -100 else ""
        raise ValueError(
            f"Argument `labels` expected token ids in [0, {vocab_size}) or `ignore_index={ignore_index}`,"
            f" but got {bad}{hint}."
        )
    return batch * seq_len + position, tokens


def _read_rows(logits: Tensor, rows: Tensor) -> Tensor:
    """Copy the rows ``logits.view(-1, V)[rows]`` into a new float32 (or float64) tensor [len(rows), V]."""
    batch_size, seq_len, vocab_size = logits.shape
    if logits.stride(0) == seq_len * logits.stride(1):  # [B, T] flattens without a copy: a plain row gather
        picked = logits.view(batch_size * seq_len, vocab_size).index_select(0, rows)
    else:
        picked = logits[rows // seq_len, rows % seq_len]
    return picked if picked.dtype in (torch.float32, torch.float64) else picked.float()


def _refine_confident_nll(nll: Tensor, logits: Tensor, rows: Tensor, tokens: Tensor, step: int) -> None:
    """Recompute in place, as ``log1p(sum_{i != y} exp(x_i - x_y))``, the values of ``nll`` below _CONFIDENT_NLL."""
    confident = (nll < _CONFIDENT_NLL).nonzero().squeeze(1)
    for start in range(0, confident.numel(), step):
        which = confident[start : start + step]
        work, target = _read_rows(logits, rows[which]), tokens[which].unsqueeze(1)
        work -= work.gather(1, target)  # every x_i - x_y < log(e^0.0625 - 1) < 0: exp cannot overflow
        work.exp_().scatter_(1, target, 0.0)
        nll[which] = torch.log1p(work.sum(1).double())


def _top_k_hits(work: Tensor, target: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Whether each target is among the ``top_k`` logits of its row (ties go to the lower token id, as argmax),
    and whether the row is finite (no NaN or +inf, a target logit above -inf)."""
    target_logit = work.gather(1, target)
    if top_k == 1:
        row_max, argmax = work.max(1)
        hits = argmax == target.squeeze(1)
    else:
        row_max = work.amax(1)
        column = torch.arange(work.shape[1], device=work.device)
        ahead = (work > target_logit).sum(1) + ((work == target_logit) & (column < target)).sum(1)
        hits = ahead < top_k
    return hits, torch.isfinite(row_max) & torch.isfinite(target_logit.squeeze(1))


@torch.no_grad()
def _causal_lm_statistics(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor] = None,
    ignore_index: Optional[int] = -100,
    shift: bool = True,
    chunk_size: Optional[int] = None,
    non_finite: str = "error",
    top_k: Optional[int] = None,
    need_nll: bool = True,
) -> CausalLMStatistics:
    """Check the inputs and sum the NLL and/or the top-k hits over the counted target tokens.

    A counted token is non-finite when its logits hold NaN or +inf, or its target's logit is -inf (its NLL is then
    not finite; -inf elsewhere is a probability of 0, as logits processors use it). ``non_finite="error"`` raises
    a ``ValueError`` on such tokens, ``"skip"`` leaves them out of every sum and of the count.
    """
    _check_causal_lm_inputs(logits, labels, attention_mask, shift, top_k or 1)
    rows, tokens = _select_targets(labels, attention_mask, ignore_index, shift, logits.shape[-1])
    step = chunk_size or _default_chunk_size(logits.shape[-1], logits.device)
    work_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    target_log_prob = torch.empty(tokens.shape, dtype=work_dtype, device=logits.device)
    hits = torch.zeros(tokens.shape, dtype=torch.bool, device=logits.device)
    finite = torch.ones(tokens.shape, dtype=torch.bool, device=logits.device)
    for start in range(0, tokens.numel(), step):
        part = slice(start, start + step)
        work, target = _read_rows(logits, rows[part]), tokens[part].unsqueeze(1)
        if need_nll:
            target_log_prob[part] = torch.log_softmax(work, dim=1).gather(1, target).squeeze(1)
        if top_k is not None:
            hits[part], finite[part] = _top_k_hits(work, target, top_k)

    nll = -target_log_prob.double()
    if need_nll:
        _refine_confident_nll(nll, logits, rows, tokens, step)
        finite = torch.isfinite(nll)
    count = finite.sum()
    skipped = tokens.numel() - int(count)
    if skipped and non_finite == "error":
        raise ValueError(
            f"Argument `logits` expected finite values at the counted positions, but {skipped} of {tokens.numel()}"
            " target tokens have NaN or +inf logits, or a target logit of -inf. Pass `non_finite='skip'` to leave"
            " those tokens out."
        )
    return CausalLMStatistics(torch.where(finite, nll, 0.0).sum(), (hits & finite).sum(), count)


def _mean_over_tokens(total: Tensor, count: Tensor) -> Tensor:
    """``total / count`` in float64; NaN with a warning when no token was counted."""
    if count == 0:
        rank_zero_warn(
            "No target token was counted (every label is `ignore_index` or masked out, or nothing was passed):"
            " the result is NaN.",
            UserWarning,
        )
        return torch.tensor(float("nan"), dtype=torch.float64, device=total.device)
    return total.double() / count

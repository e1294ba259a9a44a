"""The shift and the chunked log-softmax core of the causal-LM metrics: the one place logits are read.

Logits are read one chunk of counted target tokens at a time, upcast to float32 (float64 logits stay float64) in a
buffer reused from chunk to chunk: the extra memory of a call is two chunks (three when a chunk's rows are not
contiguous) plus a few bytes per token, never a copy of the logits, and nothing is rounded to the logits' dtype. For a row ``x`` and its target ``y``

    nll = logsumexp(x) - x_y

The float32 sums of a CPU log-softmax drift with their length (-5e-7 nats over 32k logits, -1e-5 over 256k in our
runs), so a longer row is cut into blocks of at most ``_BLOCK`` logits whose log-normalisers are combined in
float64: the error stays below 1e-6 nats per token whatever the vocabulary. Below ``_CONFIDENT_NLL`` (the model is confident and right)
the difference above would lose the value's relative precision, so it is taken again as

    nll = log1p(sum_{i != y} exp(x_i - x_y))

whose terms are all small, and ``log1p`` keeps the relative error near 1e-7 however close to 0 the value is.
"""

import os
from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torchmetrics.utilities import rank_zero_warn

from torchmetrics_ext.utilities.checks import _check_causal_lm_inputs

# Default chunk budget: the float32 work buffer of one chunk. Small on CPUs so that a chunk stays in cache,
# large on accelerators so that the kernel launches of a chunk are paid for.
_CHUNK_BYTES_CPU = 4 * 2**20
_CHUNK_BYTES_ACCELERATOR = 64 * 2**20
# Most logits in one float32 log-softmax: its sums drift with their length (-5e-7 nats at 32k, -1e-5 at 256k).
_BLOCK = 32768
# Below this negative log-likelihood (probability above 0.94) a token's value is refined with log1p.
_CONFIDENT_NLL = 0.0625


class CausalLMStatistics(NamedTuple):
    """Sums over the counted target tokens of one batch."""

    nll_sum: Tensor  # float64 scalar, in nats
    correct: Tensor  # int64 scalar, targets within the top-k logits
    count: Tensor  # int64 scalar, tokens counted


def _default_chunk_size(vocab_size: int, device: torch.device, work_dtype: torch.dtype = torch.float32) -> int:
    budget = _CHUNK_BYTES_CPU if device.type == "cpu" else _CHUNK_BYTES_ACCELERATOR
    return max(1, budget // (work_dtype.itemsize * vocab_size))


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
    out_of_range = (labels < 0) | (labels >= vocab_size)
    if ignore_index is not None:
        out_of_range &= labels != ignore_index
    if out_of_range.any():
        bad = labels[out_of_range][0].item()
        hint = " (it equals -100: pass `ignore_index=-100` to skip such labels)" if bad == -100 else ""
        raise ValueError(
            f"Argument `labels` expected token ids in [0, {vocab_size}) or `ignore_index={ignore_index}`,"
            f" but got {bad}{hint}."
        )
    seq_len = labels.shape[1]
    if shift:
        labels = labels[:, 1:]
        attention_mask = None if attention_mask is None else attention_mask[:, 1:]
    counted = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    if attention_mask is not None:
        counted &= attention_mask.bool()
    batch, position = counted.nonzero(as_tuple=True)
    tokens = labels[batch, position].long()
    return batch * seq_len + position, tokens


def _vocabulary_blocks(vocab_size: int) -> tuple[int, int]:
    """Cut a vocabulary into ``count`` blocks of ``width`` logits, with ``width <= _BLOCK`` and little padding."""
    count = -(-vocab_size // _BLOCK)
    return count, -(-vocab_size // count)


def _work_buffer(rows: int, vocab_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A [rows, count * width] buffer; the columns past ``vocab_size`` hold -inf, a probability of 0."""
    count, width = _vocabulary_blocks(vocab_size)
    return torch.full((rows, count * width), float("-inf"), dtype=dtype, device=device)


def _read_rows(logits: Tensor, rows: Tensor, span: tuple[int, int], buffer: Tensor, writable: bool = False) -> Tensor:
    """Return the rows ``logits.view(-1, V)[rows]`` upcast, padded with -inf to the width of ``buffer``.

    ``rows`` are ascending, from ``span[0]`` to ``span[1]`` (given from a host copy: reading them here would wait
    for an accelerator). They are copied into ``buffer`` unless they already are a contiguous range of the right
    dtype and width and the caller does not write to them: then the logits are read in place.
    """
    batch_size, seq_len, vocab_size = logits.shape
    first, last = span
    if logits.stride(0) == seq_len * logits.stride(1):  # [B, T] flattens without a copy
        flat = logits.view(batch_size * seq_len, vocab_size)
        source = flat[first : last + 1] if last - first + 1 == len(rows) else flat.index_select(0, rows)
    else:
        source = logits[rows // seq_len, rows % seq_len]
    if not writable and source.dtype == buffer.dtype and source.shape[1] == buffer.shape[1] and source.is_contiguous():
        return source
    buffer[: len(rows), :vocab_size] = source
    return buffer[: len(rows)]


def _block_log_normalizer_terms(
    work: Tensor, log_probs: Tensor, target: Tensor, logit_at: Tensor, log_prob_at: Tensor
) -> None:
    """Write, for each vocabulary block of the rows of ``work``, a logit and the log-softmax of the block there.

    Their difference ``x_j - log_softmax(x)_j`` is the block's log-normaliser at any ``j``; it is read where the
    log-softmax is held best: at the target when a row is one block (``nll = -log_softmax(x)_y`` as the kernel
    gives it), else at each block's maximum, where the log-softmax is ``-log(sum exp(x - max))``, a small number
    that float32 holds to 1e-7. ``logit_at`` and ``log_prob_at`` are [n, count] outputs.
    """
    width = work.shape[1] // logit_at.shape[1]
    blocks = work.view(-1, width)
    block_log_probs = torch.log_softmax(blocks, dim=1, out=log_probs.view(-1, width)[: len(blocks)])
    if logit_at.shape[1] == 1:
        torch.gather(work, 1, target, out=logit_at)
        torch.gather(block_log_probs, 1, target, out=log_prob_at)
    else:
        torch.amax(blocks, dim=1, out=logit_at.view(-1))
        torch.amax(block_log_probs, dim=1, out=log_prob_at.view(-1))


def _log_normalizer(logit_at: Tensor, log_prob_at: Tensor) -> Tensor:
    """``logsumexp`` of whole rows in float64 from their blocks': ``logsumexp_b(x_b - log_softmax(x)_b)``."""
    block_lse = logit_at.double() - log_prob_at.double()
    block_lse[logit_at == float("-inf")] = float("-inf")  # a block of ruled-out tokens adds nothing
    return torch.logsumexp(block_lse, dim=1)


def _refine_confident_nll(nll: Tensor, logits: Tensor, rows: Tensor, tokens: Tensor, buffer: Tensor) -> None:
    """Recompute in place, as ``log1p(sum_{i != y} exp(x_i - x_y))``, the values of ``nll`` below _CONFIDENT_NLL."""
    confident = (nll < _CONFIDENT_NLL).nonzero().squeeze(1)
    confident_rows = rows[confident]
    confident_rows_host = confident_rows.cpu()
    vocab_size = logits.shape[-1]
    for start in range(0, len(confident), len(buffer)):
        part = slice(start, start + len(buffer))
        span = (int(confident_rows_host[part][0]), int(confident_rows_host[part][-1]))
        work = _read_rows(logits, confident_rows[part], span, buffer, writable=True)[:, :vocab_size]  # no padding
        target = tokens[confident[part]].unsqueeze(1)
        work -= work.gather(1, target)  # every x_i - x_y < log(e^0.0625 - 1) < 0: exp cannot overflow
        work.exp_().scatter_(1, target, 0.0)
        nll[confident[part]] = torch.log1p(work.sum(1).double())


def _top_k_hits(work: Tensor, target: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Whether each target is among the ``top_k`` logits of its row (ties go to the lower token id, as argmax),
    and whether the row is finite (no NaN or +inf, a target logit above -inf)."""
    target_logit = work.gather(1, target)
    if top_k == 1:
        row_max, argmax = work.max(1)
        hits = argmax == target.squeeze(1)
    else:
        largest = work.topk(top_k, dim=1).values
        row_max, kth = largest[:, 0], largest[:, -1:]
        hits = (target_logit > kth).squeeze(1)  # above the k-th largest: fewer than k logits rank before it
        tied = (target_logit == kth).squeeze(1).nonzero().squeeze(1)
        if tied.numel():  # equal to the k-th largest: the token ids decide, so count the logits ranked before it
            rows, row_logit, row_target = work[tied], target_logit[tied], target[tied]
            column = torch.arange(work.shape[1], device=work.device)
            ahead = (rows > row_logit).sum(1) + ((rows == row_logit) & (column < row_target)).sum(1)
            hits[tied] = ahead < top_k
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
    if _use_triton(logits):  # one pass of a Triton kernel over the rows for the NLL and the rank of each target
        from torchmetrics_ext.functional.text._triton_kernel import _triton_row_statistics

        nll, rank = _triton_row_statistics(logits, rows, tokens)
        nll, finite = nll.double(), torch.isfinite(nll)
        hits = rank < top_k if top_k is not None else torch.zeros_like(finite)
        return _summed_statistics(nll if need_nll else None, hits, finite, tokens.numel(), non_finite)
    work_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    step = min(chunk_size or _default_chunk_size(logits.shape[-1], logits.device, work_dtype), max(1, len(tokens)))
    # the chunk-sized buffers, reused for every chunk: the whole extra memory of the call but for [N] vectors
    buffer = _work_buffer(step, logits.shape[-1], work_dtype, logits.device)
    if need_nll:
        log_probs = torch.empty_like(buffer)
        # per token: the terms of each vocabulary block's log-normaliser and the target logit, combined after the loop
        blocks = _vocabulary_blocks(logits.shape[-1])[0]
        logit_at = torch.empty(len(tokens), blocks, dtype=work_dtype, device=logits.device)
        log_prob_at = torch.empty_like(logit_at)
        target_logit = torch.empty(len(tokens), 1, dtype=work_dtype, device=logits.device)
    hits = torch.zeros(tokens.shape, dtype=torch.bool, device=logits.device)
    finite = torch.ones(tokens.shape, dtype=torch.bool, device=logits.device)
    rows_host = rows.cpu()
    for start in range(0, len(tokens), step):
        part = slice(start, start + step)
        span = (int(rows_host[start]), int(rows_host[part][-1]))
        work, target = _read_rows(logits, rows[part], span, buffer), tokens[part].unsqueeze(1)
        if need_nll:
            _block_log_normalizer_terms(work, log_probs, target, logit_at[part], log_prob_at[part])
            torch.gather(work, 1, target, out=target_logit[part])
        if top_k is not None:
            hits[part], finite[part] = _top_k_hits(work, target, top_k)

    nll = None
    if need_nll:
        nll = _log_normalizer(logit_at, log_prob_at) - target_logit.squeeze(1).double()
        _refine_confident_nll(nll, logits, rows, tokens, buffer)
        finite = torch.isfinite(nll)
    return _summed_statistics(nll, hits, finite, tokens.numel(), non_finite)


def _use_triton(logits: Tensor) -> bool:
    """Whether the Triton kernel reads ``logits``: CUDA logits of float32 or lower precision, Triton importable, and
    the kernel asked for with ``TORCHMETRICS_EXT_TRITON=1`` (experimental: checked under Triton's CPU interpreter
    only, not yet compiled and timed on a GPU)."""
    if os.environ.get("TORCHMETRICS_EXT_TRITON", "0") != "1" or not logits.is_cuda or logits.dtype == torch.float64:
        return False
    from torchmetrics_ext.functional.text._triton_kernel import _TRITON_DTYPES, _triton_available

    return logits.dtype in _TRITON_DTYPES and _triton_available(logits)


def _summed_statistics(
    nll: Optional[Tensor], hits: Tensor, finite: Tensor, total: int, non_finite: str
) -> CausalLMStatistics:
    """Sum the per-token NLL (float64, or None) and hits over the finite tokens, applying ``non_finite``."""
    nll_sum = torch.zeros((), dtype=torch.float64, device=finite.device)
    if nll is not None:
        nll_sum = torch.where(finite, nll, 0.0).sum()
    count = finite.sum()
    skipped = total - int(count)
    if skipped and non_finite == "error":
        raise ValueError(
            f"Argument `logits` expected finite values at the counted positions, but {skipped} of {total}"
            " target tokens have NaN or +inf logits, or a target logit of -inf. Pass `non_finite='skip'` to leave"
            " those tokens out."
        )
    return CausalLMStatistics(nll_sum, (hits & finite).sum(), count)


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

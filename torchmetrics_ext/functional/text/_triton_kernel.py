"""A Triton kernel reading each counted row of causal-LM logits once for its NLL and the rank of its target.

One program per selected row (token) walks the vocabulary in ``BLOCK_V`` chunks. With ``d_i = x_i - x_y`` it keeps,
per lane, an online log-sum-exp of the ``d_i`` of the other tokens (running max ``m`` starting at 0, the target's
own ``d_y = 0``, and running sum ``s`` of ``exp(d_i - m)``), all in float32 whatever the logits' dtype, and at the
end combines the lanes and the target's own term:

    nll = log(sum_i exp(x_i - x_y)) = m + log(exp(-m) + s)

When no other logit reaches ``x_y`` (``m == 0``) this is ``log1p(s)`` with every term of ``s`` below 1, so a
confident right token keeps its relative precision (1e-7) however close to 0 its NLL is, as the log1p refinement
of the PyTorch core; otherwise ``nll >= log 2`` and the difference loses nothing.

Rank and ties: ``rank = #{i : x_i > x_y} + #{i < y : x_i == x_y}``, the number of logits ranked before the target
when ties go to the lower token id (as ``argmax`` and the tie branch of ``_top_k_hits``), so ``rank < k`` is the
top-k hit of the PyTorch path exactly, ties included.

Non-finite rows, as the PyTorch core sees them: a NaN or +inf logit in the row gives ``nll = NaN``; otherwise a
target logit of -inf gives ``nll = +inf``; -inf elsewhere is a probability of 0. The caller's ``non_finite`` policy
then applies to ``~isfinite(nll)``. (Finite logits whose differences overflow float32, |x_i - x_y| > 3.4e38, are
not handled.)

The rows are addressed as ``logits[row // seq_len, row % seq_len]`` through the strides of the logits, so the
label shift is done by the indices ``rows``: the logits are never copied, whatever their strides.
"""

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl

    _TRITON_IMPORTED = True
except ImportError:  # pragma: no cover - triton is optional
    _TRITON_IMPORTED = False

# The logits dtypes the kernel reads (float64 stays on the float64 PyTorch path).
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_available(tensor: Tensor) -> bool:
    """Whether the kernel can run on ``tensor``: Triton imports and the tensor is on CUDA, or the interpreter is on.

    ``TRITON_INTERPRET=1`` must be set before Triton is imported for the interpreter to take CPU tensors.
    """
    if not _TRITON_IMPORTED:
        return False
    return tensor.is_cuda or os.environ.get("TRITON_INTERPRET", "0") == "1"


if _TRITON_IMPORTED:

    @triton.jit
    def _row_statistics_kernel(
        logits_ptr,
        rows_ptr,
        targets_ptr,
        nll_ptr,
        rank_ptr,
        seq_len,
        stride_b,
        stride_t,
        stride_v,
        vocab_size,
        BLOCK_V: tl.constexpr,
    ):
        pid = tl.program_id(0)
        row = tl.load(rows_ptr + pid).to(tl.int64)
        y = tl.load(targets_ptr + pid).to(tl.int64)
        base = logits_ptr + (row // seq_len) * stride_b + (row % seq_len) * stride_t
        x_y = tl.load(base + y * stride_v).to(tl.float32)
        lanes = tl.arange(0, BLOCK_V).to(tl.int64)
        m = tl.zeros([BLOCK_V], dtype=tl.float32)  # running max of d_i = x_i - x_y over i != y, and of d_y = 0
        s = tl.zeros([BLOCK_V], dtype=tl.float32)  # running sum of exp(d_i - m) over i != y
        ahead = tl.zeros([BLOCK_V], dtype=tl.int32)  # logits ranked before the target
        bad = tl.zeros([BLOCK_V], dtype=tl.int32)  # NaN or +inf seen
        for start in range(0, vocab_size, BLOCK_V):
            cols = start + lanes
            inside = cols < vocab_size
            x = tl.load(base + cols * stride_v, mask=inside, other=float("-inf")).to(tl.float32)
            bad = bad | ((x != x) | (x == float("inf"))).to(tl.int32)
            ahead += ((x > x_y) | ((x == x_y) & (cols < y))).to(tl.int32)
            d = tl.where(cols == y, float("-inf"), x - x_y)
            m_new = tl.maximum(m, d)
            s = s * tl.exp(m - m_new) + tl.exp(d - m_new)
            m = m_new
        m_row = tl.max(m, axis=0)
        s_row = tl.sum(s * tl.exp(m - m_row), axis=0)
        # log1p(s_row), accurate for small s_row without a log1p intrinsic: log(u) * s / (u - 1) with u = 1 + s
        u = 1.0 + s_row
        log1p_s = tl.where(u == 1.0, s_row, tl.log(u) * (s_row / (u - 1.0)))
        nll = tl.where(m_row == 0.0, log1p_s, m_row + tl.log(tl.exp(-m_row) + s_row))
        nll = tl.where(x_y == float("-inf"), float("inf"), nll)
        nll = tl.where(tl.max(bad, axis=0) > 0, float("nan"), nll)
        tl.store(nll_ptr + pid, nll)
        tl.store(rank_ptr + pid, tl.sum(ahead, axis=0))


def _default_block_v(vocab_size: int) -> int:
    return min(4096, triton.next_power_of_2(vocab_size))


def _num_warps(block_v: int) -> int:
    """Eight logits per thread and block: 64 registers a thread on sm_80/sm_90 (checked with ``cuobjdump``), where
    sixteen per thread need 128 and halve the warps an SM can hold."""
    return max(4, min(16, block_v // 256))


def _triton_row_statistics(
    logits: Tensor, rows: Tensor, targets: Tensor, block_v: int = 0
) -> tuple[Tensor, Tensor]:
    """Per selected row: the NLL of its target (float32 [R]) and the target's rank (int32 [R], ties to lower ids).

    ``logits`` is [N, V] or [B, T, V] of any strides (row ``r`` is ``logits.view(-1, V)[r]``), ``rows`` int64 [R]
    indices of those rows, ``targets`` int64 [R] token ids in [0, V). The top-k hit is ``rank < k``. ``block_v``,
    a power of two, defaults to min(4096, next_power_of_2(V)).
    """
    if logits.dim() == 2:
        logits = logits.unsqueeze(0)
    _, seq_len, vocab_size = logits.shape
    count = rows.numel()
    nll = torch.empty(count, dtype=torch.float32, device=logits.device)
    rank = torch.empty(count, dtype=torch.int32, device=logits.device)
    if count == 0:
        return nll, rank
    block_v = block_v or _default_block_v(vocab_size)
    _row_statistics_kernel[(count,)](
        logits,
        rows.contiguous(),
        targets.contiguous(),
        nll,
        rank,
        seq_len,
        logits.stride(0),
        logits.stride(1),
        logits.stride(2),
        vocab_size,
        BLOCK_V=block_v,
        num_warps=_num_warps(block_v),
    )
    return nll, rank

"""Input checks shared by several metrics.

Every check raises a ``ValueError`` that names the argument, what was expected and what was seen. Metrics call
them before touching their states, so a rejected call leaves nothing accumulated.
"""

from typing import Optional

import torch
from torch import Tensor

NON_FINITE_STRATEGIES = ("error", "skip")


def _check_causal_lm_options(
    ignore_index: Optional[int],
    shift: bool,
    chunk_size: Optional[int],
    non_finite: str,
) -> None:
    """Check the static arguments of the causal-LM metrics (the constructor's and the functions')."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise ValueError(f"Argument `ignore_index` expected to be `None` or an `int` but got {ignore_index!r}.")
    if not isinstance(shift, bool):
        raise ValueError(f"Argument `shift` expected to be a `bool` but got {shift!r}.")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"Argument `chunk_size` expected to be `None` or a positive `int` but got {chunk_size!r}.")
    if non_finite not in NON_FINITE_STRATEGIES:
        raise ValueError(f"Argument `non_finite` expected to be one of {NON_FINITE_STRATEGIES} but got {non_finite!r}.")


def _check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"Argument `top_k` expected to be a positive `int` but got {top_k!r}.")


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _check_causal_lm_inputs(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Optional[Tensor],
    shift: bool,
    top_k: int = 1,
) -> None:
    """Check the shapes, dtypes and devices of ``logits`` [B, T, V], ``labels`` [B, T] and ``attention_mask`` [B, T].

    Values that need the shift to be judged (label range, mask values) are checked where the targets are selected.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 3:
        seen = logits.ndim if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"Argument `logits` expected to be a tensor with 3 dimensions [batch_size, seq_len, vocab_size], but got {seen}."
        )
    if not logits.is_floating_point():
        raise ValueError(
            "Argument `logits` expected to be a floating point tensor (float32, float16 or bfloat16),"
            f" but got dtype {logits.dtype}."
        )
    if not isinstance(labels, Tensor) or labels.ndim != 2:
        seen = labels.ndim if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"Argument `labels` expected to be a tensor with 2 dimensions [batch_size, seq_len], but got {seen}."
        )
    if not _is_integer_dtype(labels.dtype):
        raise ValueError(f"Argument `labels` expected to hold integer token ids, but got dtype {labels.dtype}.")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            "Arguments `logits` and `labels` expected to share [batch_size, seq_len], but got"
            f" {tuple(logits.shape[:2])} and {tuple(labels.shape)}."
        )
    if labels.device != logits.device:
        raise ValueError(
            f"Arguments `logits` and `labels` expected on one device, but got {logits.device} and {labels.device}."
        )
    if logits.shape[-1] < 1:
        raise ValueError("Argument `logits` expected a vocabulary of at least one token, but got vocab_size 0.")
    if shift and logits.shape[1] < 2:
        raise ValueError(
            "Argument `logits` expected seq_len >= 2 with `shift=True` (the first token has no prediction),"
            f" but got seq_len {logits.shape[1]}. Pass `shift=False` for inputs that are already aligned."
        )
    if top_k > logits.shape[-1]:
        raise ValueError(
            f"Argument `top_k` expected to be at most vocab_size {logits.shape[-1]}, but got {top_k}."
        )
    if attention_mask is None:
        return
    if not isinstance(attention_mask, Tensor) or attention_mask.shape != labels.shape:
        seen = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
        raise ValueError(
            f"Argument `attention_mask` expected to have the shape of `labels` {tuple(labels.shape)}, but got {seen}."
        )
    if not (attention_mask.dtype == torch.bool or _is_integer_dtype(attention_mask.dtype)):
        raise ValueError(
            f"Argument `attention_mask` expected to be a bool or integer tensor of 0 and 1, but got dtype"
            f" {attention_mask.dtype}."
        )
    if attention_mask.device != logits.device:
        raise ValueError(
            f"Arguments `logits` and `attention_mask` expected on one device, but got {logits.device} and"
            f" {attention_mask.device}."
        )
    if attention_mask.dtype != torch.bool and ((attention_mask != 0) & (attention_mask != 1)).any():
        bad = attention_mask[(attention_mask != 0) & (attention_mask != 1)][0].item()
        raise ValueError(f"Argument `attention_mask` expected to hold only 0 and 1, but got {bad}.")


VIDEO_LAYOUTS = ("BTCHW", "BCTHW")


def _check_video_layout(layout: str) -> None:
    """Check the ``layout`` argument of the video metrics: ``"BTCHW"`` (the default) or ``"BCTHW"``."""
    if layout not in VIDEO_LAYOUTS:
        raise ValueError(f"Argument `layout` expected to be one of {VIDEO_LAYOUTS} but got {layout!r}.")


def _check_videos(
    videos: Tensor, layout: str = "BTCHW", min_frames: int = 1, channels: Optional[int] = 3, name: str = "videos"
) -> None:
    """Check a batch of videos: 5 dimensions in ``layout``, ``channels`` channels, at least ``min_frames`` frames,
    uint8 in [0, 255] or floating point in [0, 1] (NaN and infinities are outside)."""
    _check_video_layout(layout)
    if not isinstance(videos, Tensor) or videos.ndim != 5:
        seen = f"{videos.ndim} dimensions" if isinstance(videos, Tensor) else type(videos).__name__
        raise ValueError(
            f"Argument `{name}` expected to be a tensor with 5 dimensions [{', '.join(layout)}] (layout={layout!r}),"
            f" but got {seen}."
        )
    frames, colors = (videos.shape[1], videos.shape[2]) if layout == "BTCHW" else (videos.shape[2], videos.shape[1])
    if channels is not None and colors != channels:
        raise ValueError(
            f"Argument `{name}` expected {channels} channels (C of layout={layout!r}), but got shape"
            f" {tuple(videos.shape)} with {colors}."
        )
    if frames < min_frames:
        raise ValueError(
            f"Argument `{name}` expected at least {min_frames} frames (T of layout={layout!r}), but got shape"
            f" {tuple(videos.shape)} with {frames}."
        )
    if videos.numel() == 0:
        raise ValueError(f"Argument `{name}` expected a non-empty tensor, but got shape {tuple(videos.shape)}.")
    if videos.dtype == torch.uint8:
        return
    if not videos.is_floating_point():
        raise ValueError(
            f"Argument `{name}` expected uint8 values in [0, 255] or floating point values in [0, 1], but got dtype"
            f" {videos.dtype}."
        )
    outside = ~((videos >= 0) & (videos <= 1))  # NaN is outside too
    if outside.any():
        raise ValueError(
            f"Argument `{name}` expected floating point values in [0, 1] (uint8 for [0, 255]), but got"
            f" {videos[outside][0].item()}."
        )

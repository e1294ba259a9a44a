"""Turning a checked batch of videos into frames the temporal metrics compute on."""

import torch
from torch import Tensor


def _as_btchw(videos: Tensor, layout: str) -> Tensor:
    """A view of ``videos`` in ``[B, T, C, H, W]`` order, whatever ``layout`` they came in."""
    return videos.transpose(1, 2) if layout == "BCTHW" else videos


def _unit_float(videos: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Values in [0, 1] as ``dtype``: uint8 is divided by 255, floating point is only cast."""
    if videos.dtype == torch.uint8:
        return videos.to(dtype) / 255
    return videos.to(dtype)

"""Cheap feature extractors, videos and an independent reference of the FVD preprocessing, for the video tests."""

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def pool_extractor() -> nn.Module:
    """[B, 3, T, 224, 224] -> [B, 6]: the mean of each channel over each half of the clip. No weights."""
    return nn.Sequential(nn.AdaptiveAvgPool3d((2, 1, 1)), nn.Flatten())


def mixing_extractor(seed: int = 0) -> nn.Module:
    """[B, 3, T, 224, 224] -> [B, 5]: a non-linear head with parameters over the pooled clip."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool3d((2, 2, 1)), nn.Flatten(), nn.Linear(12, 5), nn.Tanh())


def videos(n: int, seed: int, frames: int = 9, size: int = 6, power: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """[n, frames, 3, size, size] in [0, 1]: coarse noise, so that the pooled features vary from video to video."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, frames, 3, size, size, generator=generator, dtype=torch.float64) ** power
    return x.to(dtype)


def reference_input(video_btchw: torch.Tensor) -> torch.Tensor:
    """One video [T, C, H, W] in [0, 1] -> [1, 3, T, 224, 224] in [-1, 1], frame by frame."""
    frames = [
        F.interpolate(frame[None].float(), size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
        for frame in video_btchw
    ]
    return (torch.cat(frames) * 2 - 1).transpose(0, 1)[None]


def reference_features(extractor: nn.Module, batches_btchw: list) -> np.ndarray:
    """Features of every video, the extractor called on each batch of the list as the metric calls it."""
    with torch.no_grad():
        return np.concatenate(
            [extractor(torch.cat([reference_input(v) for v in batch])).double().numpy() for batch in batches_btchw]
        )

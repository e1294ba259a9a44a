"""The preprocessing of the Fréchet and kernel video distances: what a video looks like to I3D."""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from torchmetrics_ext.utilities.checks import _check_videos

FVD_FRAME_SIZE = 224
FVD_MIN_FRAMES = 9  # I3D's strides shrink time by 8 and its final average pool needs 2 steps


def preprocess_videos(videos: Tensor, layout: str = "BTCHW", size: int = FVD_FRAME_SIZE) -> Tensor:
    """Turn a batch of videos into the input of I3D: ``[B, 3, T, size, size]`` float32 in [-1, 1].

    Every frame is resized to ``size x size`` with ``F.interpolate(mode="bilinear", align_corners=False,
    antialias=False)`` (the PyTorch preprocessing of cd-fvd and StyleGAN-V; TensorFlow 1's ``resize_bilinear`` of
    the original FVD samples slightly differently), then scaled from [0, 1] to [-1, 1].
    uint8 videos are divided by 255 first, so a uint8 video and the same video divided by 255 give the same input.
    A bilinear resize without antialias is a convex combination of pixels: the result stays in [-1, 1].

    Args:
        videos: ``[B, T, 3, H, W]`` (``layout="BTCHW"``) or ``[B, 3, T, H, W]`` (``layout="BCTHW"``), uint8 in
            [0, 255] or floating point in [0, 1], at least 9 frames.
        layout: the order of the dimensions of ``videos``.
        size: height and width of the resized frames.

    Returns:
        ``[B, 3, T, size, size]`` float32 in [-1, 1].

    Raises:
        ValueError: if ``videos`` is not a 5-d tensor in ``layout`` with 3 channels and at least 9 frames, or holds
            values outside its dtype's range.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video.preprocess import preprocess_videos
        >>> videos = torch.full((2, 9, 3, 32, 48), 255, dtype=torch.uint8)
        >>> x = preprocess_videos(videos)
        >>> x.shape, x.dtype, x.min().item(), x.max().item()
        (torch.Size([2, 3, 9, 224, 224]), torch.float32, 1.0, 1.0)

    """
    _check_videos(videos, layout, min_frames=FVD_MIN_FRAMES, channels=3)
    if layout == "BCTHW":
        videos = videos.transpose(1, 2)  # [B, T, C, H, W]
    batch, frames = videos.shape[:2]
    x = videos.float() / 255 if videos.dtype == torch.uint8 else videos.float()
    x = x.reshape(batch * frames, *x.shape[2:])  # [B * T, C, H, W]: one image per frame
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    x = x * 2 - 1
    return x.reshape(batch, frames, *x.shape[1:]).transpose(1, 2).contiguous()  # [B, C, T, size, size]

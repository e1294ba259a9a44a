"""VBench's temporal flickering: how little consecutive frames differ, pixel by pixel."""

import torch
from torch import Tensor

from torchmetrics_ext.functional.video._frames import _as_btchw
from torchmetrics_ext.utilities.checks import _check_videos


def _flickering_scores(videos: Tensor, layout: str) -> Tensor:
    """The temporal flickering score of every video of a checked batch, float64 ``[B]``.

    The mean absolute difference of each pair of consecutive frames is taken on the 0..255 scale: uint8 frames as
    they are (exact: integers summed in float64), floating point frames in [0, 1] times 255, without rounding.
    One pair of frames at a time, so that only one float64 frame per video is held.
    """
    frames = _as_btchw(videos, layout)  # [B, T, C, H, W]
    scale = 1.0 if frames.dtype == torch.uint8 else 255.0
    pair_means = torch.stack(
        [
            (frames[:, t + 1].double() - frames[:, t].double()).abs().mean(dim=(1, 2, 3))
            for t in range(frames.shape[1] - 1)
        ],
        dim=1,
    )  # [B, T - 1]
    mean_absolute_error = pair_means.mean(dim=1) * scale
    return (255.0 - mean_absolute_error) / 255.0


def temporal_flickering(videos: Tensor, layout: str = "BTCHW") -> Tensor:
    r"""VBench's temporal flickering score of videos: one minus the mean absolute change between consecutive frames.

    For a video of frames :math:`f_1, \dots, f_T` on the 0..255 value scale,

    .. math::
        s = \frac{1}{255}\Big(255 - \frac{1}{T - 1} \sum_{t=1}^{T-1} \operatorname{mean}_{c,h,w}
            \lvert f_t - f_{t+1} \rvert\Big)

    and the result is the mean of :math:`s` over the videos, as VBench's ``vbench/temporal_flickering.py``
    computes it (the mean of the per-video scores). It lies in [0, 1], higher is better: 1 for a static video,
    0 for a video alternating between black and white frames. uint8 videos are used as they are, which is exact
    (VBench reads uint8 frames and takes ``cv2.absdiff``); floating point videos in [0, 1] are multiplied by 255
    without rounding, so they match VBench only when they are uint8 frames divided by 255. The channel order
    (RGB or BGR) does not matter. VBench scores static-camera videos with this dimension: motion counts as
    flicker.

    Args:
        videos: ``[B, T, C, H, W]`` (``[B, C, T, H, W]`` with ``layout="BCTHW"``), uint8 in [0, 255] or floating
            point in [0, 1], at least 2 frames, any number of channels.
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos``.

    Returns:
        The mean score over the videos, a float32 scalar computed in float64.

    Raises:
        ValueError: on an unknown ``layout``, or videos that are not 5-d in ``layout``, have fewer than 2 frames,
            are empty, are neither uint8 nor floating point, or have floating point values outside [0, 1].

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import temporal_flickering
        >>> _ = torch.manual_seed(0)
        >>> videos = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
        >>> round(temporal_flickering(videos).item(), 6)
        0.668621
        >>> temporal_flickering(torch.zeros(2, 4, 3, 8, 8)).item()  # static videos
        1.0

    """
    _check_videos(videos, layout, min_frames=2, channels=None)
    return _flickering_scores(videos, layout).mean().float()

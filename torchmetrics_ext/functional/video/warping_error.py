"""The flow warping error of Lai et al. (ECCV 2018), "Learning Blind Video Temporal Consistency"."""

from typing import Optional

import torch
from torch import Tensor

from torchmetrics_ext.functional.video._frames import _as_btchw, _unit_float
from torchmetrics_ext.functional.video._reduction import _mean_over_videos
from torchmetrics_ext.functional.video.warp import occlusion_mask, warp
from torchmetrics_ext.utilities.checks import _check_videos

OCCLUSION_MASKS = ("lai", "none")


def _check_occlusion(occlusion: str) -> None:
    if occlusion not in OCCLUSION_MASKS:
        raise ValueError(f"Argument `occlusion` expected to be one of {OCCLUSION_MASKS} but got {occlusion!r}.")


def _check_video_flows(flows: Tensor, name: str, frames: Tensor) -> None:
    """``flows`` must be floating point ``[B, T - 1, 2, H, W]`` for the ``[B, T, C, H, W]`` ``frames``."""
    batch, time, _, height, width = frames.shape
    expected = [batch, time - 1, 2, height, width]
    if not isinstance(flows, Tensor) or list(flows.shape) != expected or not flows.is_floating_point():
        seen = (
            f"shape {list(flows.shape)} and dtype {flows.dtype}" if isinstance(flows, Tensor) else type(flows).__name__
        )
        raise ValueError(
            f"Argument `{name}` expected a floating point tensor of shape {expected} [B, T - 1, 2, H, W] (one flow per"
            f" pair of consecutive frames), but got {seen}."
        )
    if not torch.isfinite(flows).all():
        raise ValueError(f"Argument `{name}` expected finite flows, but got NaN or infinity.")


def _check_warping_inputs(
    videos: Tensor, flows_fw: Tensor, flows_bw: Optional[Tensor], occlusion: str, layout: str
) -> None:
    """Check everything ``_warping_errors`` reads, before anything is computed or accumulated."""
    _check_occlusion(occlusion)
    _check_videos(videos, layout, min_frames=2, channels=None)
    frames = _as_btchw(videos, layout)
    _check_video_flows(flows_fw, "flows_fw", frames)
    if flows_bw is None and occlusion == "lai":
        raise ValueError("Argument `flows_bw` expected the backward flows for `occlusion='lai'`, but got None.")
    if flows_bw is not None:
        _check_video_flows(flows_bw, "flows_bw", frames)


def _warping_errors(
    videos: Tensor, flows_fw: Tensor, flows_bw: Optional[Tensor], occlusion: str, layout: str
) -> tuple[Tensor, Tensor]:
    """The warping error of every video, float64 ``[B]``, and whether it has one (a pair with a visible pixel).

    Each pair's error is the mean over its non-occluded pixels and channels; a pair with every pixel occluded has
    no error and is left out of its video's mean, a video with no such pair is left out (``False``).
    """
    frames = _unit_float(_as_btchw(videos, layout))  # [B, T, C, H, W] float32 in [0, 1]
    batch, time, channels, height, width = frames.shape
    current = frames[:, :-1].reshape(-1, channels, height, width)  # frame t of every pair: [B * (T - 1), C, H, W]
    following = frames[:, 1:].reshape(-1, channels, height, width)
    forward = flows_fw.reshape(-1, 2, height, width).to(frames.device, torch.float32)
    squared = (current - warp(following, forward)).double().square()  # [B * (T - 1), C, H, W]
    if occlusion == "lai":
        backward = flows_bw.reshape(-1, 2, height, width).to(frames.device, torch.float32)
        visible = ~occlusion_mask(forward, backward).unsqueeze(1)  # [B * (T - 1), 1, H, W]
    else:
        visible = torch.ones_like(squared[:, :1], dtype=torch.bool)
    counts = visible.sum(dim=(1, 2, 3)) * channels
    sums = (squared * visible).sum(dim=(1, 2, 3))
    has_pixels = (counts > 0).view(batch, time - 1)
    pair_errors = (sums / counts.clamp(min=1)).view(batch, time - 1)
    pairs = has_pixels.sum(dim=1)
    return (pair_errors * has_pixels).sum(dim=1) / pairs.clamp(min=1), pairs > 0


def flow_warping_error(
    videos: Tensor,
    flows_fw: Tensor,
    flows_bw: Optional[Tensor] = None,
    occlusion: str = "lai",
    layout: str = "BTCHW",
) -> Tensor:
    r"""The flow warping error of Lai et al. (ECCV 2018) of videos, given their optical flows.

    For each pair of consecutive frames :math:`(V_t, V_{t+1})` with forward flow :math:`F_{t \to t+1}` and
    non-occluded mask :math:`M_t` (:func:`occlusion_mask`),

    .. math::
        E_t = \frac{\sum M_t \, \lVert V_t - \operatorname{warp}(V_{t+1}, F_{t \to t+1}) \rVert^2}{\sum M_t}

    over pixels and channels, on the [0, 1] value scale (uint8 videos are divided by 255). :math:`E_t` is averaged
    over the :math:`T - 1` pairs of a video, then over the videos. A pair whose pixels are all occluded is left
    out of its video's mean (Lai et al.'s script counts it as 0); a video with no visible pixel is left out (NaN,
    with a warning, when none is left).

    In Lai et al.'s protocol the flows come from the input video and the error is measured on the processed one:
    pass the flows of the source with the frames of the output.

    Args:
        videos: ``[B, T, C, H, W]`` (``[B, C, T, H, W]`` with ``layout="BCTHW"``), uint8 in [0, 255] or floating
            point in [0, 1], at least 2 frames.
        flows_fw: ``[B, T - 1, 2, H, W]``, the flow from frame :math:`t` to :math:`t + 1` in pixels (channel 0 the x
            displacement, torchvision's convention).
        flows_bw: ``[B, T - 1, 2, H, W]``, the flow from frame :math:`t + 1` to :math:`t`; needed by
            ``occlusion="lai"``.
        occlusion: ``"lai"`` for the occlusion masks of Lai et al., ``"none"`` to count every pixel.
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos`` (the flows are always
            ``[B, T - 1, 2, H, W]``).

    Returns:
        The mean warping error, a float32 scalar computed in float64.

    Raises:
        ValueError: on videos that are not 5-d in ``layout``, have fewer than 2 frames or values out of range; flows
            of the wrong shape or not finite; ``flows_bw=None`` with ``occlusion="lai"``; or an unknown
            ``occlusion``. When no video has a visible pixel the result is NaN, with a warning.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import flow_warping_error
        >>> _ = torch.manual_seed(0)
        >>> first = torch.rand(1, 3, 16, 16)
        >>> video = torch.stack([first, first.roll(1, dims=-1)], dim=1)  # [1, 2, 3, 16, 16]: moves 1 pixel right
        >>> still = torch.zeros(1, 1, 2, 16, 16)
        >>> moving = still.clone()
        >>> moving[:, :, 0] = 1.0
        >>> round(flow_warping_error(video, moving, -moving).item(), 6)  # the true flow: only the wrapped column errs
        0.012269
        >>> round(flow_warping_error(video, still, still).item(), 4)  # no motion compensation
        0.1709

    """
    _check_warping_inputs(videos, flows_fw, flows_bw, occlusion, layout)
    errors, valid = _warping_errors(videos, flows_fw, flows_bw, occlusion, layout)
    return _mean_over_videos(
        errors[valid].sum(), valid.sum(), "flow_warping_error", "every pair of frames was fully occluded"
    )

"""Backward warping of frames by optical flow, and the occlusion masks of Lai et al. (ECCV 2018)."""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

# Lai et al.'s forward-backward consistency (after Sundaram et al., ECCV 2010): occluded where the round trip misses
# by more than 1 % of the motion plus half a pixel squared, or where the flow changes sharply (motion boundaries).
CONSISTENCY_SCALE, CONSISTENCY_OFFSET = 0.01, 0.5
BOUNDARY_SCALE, BOUNDARY_OFFSET = 0.01, 0.002


def _check_flow(flow: Tensor, name: str, like: Tensor, like_name: str) -> None:
    """``flow`` must be a floating point ``[N, 2, H, W]`` with the N, H and W of ``like``."""
    expected = [like.shape[0], 2, *like.shape[-2:]]
    if not isinstance(flow, Tensor) or list(flow.shape) != expected or not flow.is_floating_point():
        seen = f"shape {list(flow.shape)} and dtype {flow.dtype}" if isinstance(flow, Tensor) else type(flow).__name__
        raise ValueError(
            f"Argument `{name}` expected a floating point flow of shape {expected} (the N, H, W of `{like_name}`),"
            f" but got {seen}."
        )


def _sample(images: Tensor, flow: Tensor) -> Tensor:
    """``images`` sampled at ``x + flow(x)``: bilinear, border pixels repeated outside, pixel centres at integers."""
    n, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype, device=flow.device),
        torch.arange(width, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x = xs + flow[:, 0]  # [N, H, W]
    y = ys + flow[:, 1]
    # align_corners=True maps -1 and 1 to the centres of the first and last pixels
    grid = torch.stack((2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp(frames: Tensor, flow: Tensor) -> Tensor:
    r"""Backward-warp ``frames`` by ``flow``: the output at pixel :math:`x` is ``frames`` at :math:`x + F(x)`.

    With the flow :math:`F_{t \to t+1}` of torchvision's convention (channel 0 the x displacement, from frame
    :math:`t` to frame :math:`t+1`), ``warp(frame_{t+1}, F_{t->t+1})`` approximates frame :math:`t`. Sampling is
    bilinear (``grid_sample`` with ``align_corners=True``: pixel :math:`x` normalised as :math:`2x/(W-1) - 1`, so
    an integer flow moves whole pixels with no half-pixel shift) and points outside the frame take the value of
    the nearest border pixel, as the ``Resample2d`` layer of Lai et al.'s evaluation does.

    Args:
        frames: ``[N, C, H, W]`` floating point.
        flow: ``[N, 2, H, W]`` floating point, in pixels.

    Returns:
        The warped frames, ``[N, C, H, W]`` in the dtype of ``frames``.

    Raises:
        ValueError: if ``frames`` is not a floating point 4-d tensor or ``flow`` not ``[N, 2, H, W]`` of its size.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import warp
        >>> frame = torch.arange(12.0).view(1, 1, 3, 4)
        >>> flow = torch.zeros(1, 2, 3, 4)
        >>> flow[:, 0] = 1.0  # every pixel moved one to the right
        >>> warp(frame, flow)[0, 0]
        tensor([[ 1.,  2.,  3.,  3.],
                [ 5.,  6.,  7.,  7.],
                [ 9., 10., 11., 11.]])

    """
    if not isinstance(frames, Tensor) or frames.ndim != 4 or not frames.is_floating_point():
        seen = f"shape {list(frames.shape)} and dtype {frames.dtype}" if isinstance(frames, Tensor) else frames
        raise ValueError(f"Argument `frames` expected a floating point tensor [N, C, H, W], but got {seen}.")
    _check_flow(flow, "flow", frames, "frames")
    return _sample(frames, flow.to(frames.dtype))


def _squared_norm(flow: Tensor) -> Tensor:
    return flow.square().sum(dim=1)  # [N, H, W]


def occlusion_mask(flow_fw: Tensor, flow_bw: Tensor) -> Tensor:
    r"""Pixels of frame :math:`t` whose motion to frame :math:`t+1` cannot be trusted (Lai et al., ECCV 2018).

    With :math:`F` the forward flow (frame :math:`t` to :math:`t+1`) and :math:`\hat B(x) = B(x + F(x))` the backward
    flow warped onto frame :math:`t`, a pixel is occluded where the round trip does not come back,

    .. math::
        |F + \hat B|^2 > 0.01\,(|F|^2 + |\hat B|^2) + 0.5,

    or where it lies on a motion boundary,

    .. math::
        |\nabla u|^2 + |\nabla v|^2 > 0.01\,|F|^2 + 0.002,

    with :math:`(u, v) = F` and the gradients taken as forward differences (zero on the last row and column), as
    in Lai et al.'s evaluation code. Flows are in pixels; the computation runs in float32 or float64.

    Args:
        flow_fw: ``[N, 2, H, W]`` flow from frame :math:`t` to :math:`t+1`.
        flow_bw: ``[N, 2, H, W]`` flow from frame :math:`t+1` to :math:`t`.

    Returns:
        A bool ``[N, H, W]`` tensor, ``True`` where occluded.

    Raises:
        ValueError: if the flows are not floating point ``[N, 2, H, W]`` of one shape.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import occlusion_mask
        >>> forward = torch.full((1, 2, 4, 4), 1.0)  # everything moves by (1, 1)
        >>> occlusion_mask(forward, -forward).any().item()  # and comes back: nothing occluded
        False
        >>> occlusion_mask(forward, forward).all().item()  # goes on by (1, 1) instead: everything occluded
        True

    """
    if not isinstance(flow_fw, Tensor) or flow_fw.ndim != 4:
        seen = f"shape {list(flow_fw.shape)}" if isinstance(flow_fw, Tensor) else type(flow_fw).__name__
        raise ValueError(f"Argument `flow_fw` expected a floating point flow [N, 2, H, W], but got {seen}.")
    _check_flow(flow_fw, "flow_fw", flow_fw, "flow_fw")
    _check_flow(flow_bw, "flow_bw", flow_fw, "flow_fw")
    dtype = torch.float64 if torch.float64 in (flow_fw.dtype, flow_bw.dtype) else torch.float32
    forward, backward = flow_fw.to(dtype), flow_bw.to(dtype)
    backward_at_target = _sample(backward, forward)  # B(x + F(x))
    round_trip = _squared_norm(forward + backward_at_target)
    inconsistent = round_trip > CONSISTENCY_SCALE * (_squared_norm(forward) + _squared_norm(backward_at_target)) + (
        CONSISTENCY_OFFSET
    )
    gradient = torch.zeros_like(forward[:, 0])
    gradient[:, :, :-1] += _squared_norm(forward[:, :, :, :-1] - forward[:, :, :, 1:])  # d/dx of u and v
    gradient[:, :-1, :] += _squared_norm(forward[:, :, :-1, :] - forward[:, :, 1:, :])  # d/dy of u and v
    boundary = gradient > BOUNDARY_SCALE * _squared_norm(forward) + BOUNDARY_OFFSET
    return inconsistent | boundary

"""Flow warping error (Lai et al., ECCV 2018), as a ``torchmetrics.Metric``."""

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from torchmetrics_ext.functional.video._frames import _as_btchw, _unit_float
from torchmetrics_ext.functional.video.warping_error import (
    _check_occlusion,
    _check_warping_inputs,
    _warping_errors,
)
from torchmetrics_ext.functional.video._reduction import _mean_over_videos
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.models.raft import RAFT_MODELS, load_raft
from torchmetrics_ext.utilities.checks import _check_video_layout, _check_videos
from torchmetrics_ext.utilities.modules import _freeze, _module_device_and_dtype

FlowEstimator = Callable[[Tensor, Tensor], Tensor]


def _build_flow(
    flow: Union[str, FlowEstimator, None], weights: Optional[Union[str, Path]], num_flow_updates: int
) -> Optional[FlowEstimator]:
    """The flow estimator: a RAFT of torchvision by name, the user's callable, or None (flows given to ``update``)."""
    if isinstance(flow, str):
        if flow not in RAFT_MODELS:
            raise ValueError(f"Argument `flow` expected one of {RAFT_MODELS}, a callable or None, but got {flow!r}.")
        return load_raft(flow, weights, num_flow_updates=num_flow_updates)
    if weights is not None:
        raise ValueError(
            f"Argument `weights` expected `None` unless `flow` names a RAFT model, but got {weights!r} with"
            f" flow={flow!r}."
        )
    if flow is not None and not callable(flow):
        raise ValueError(
            f"Argument `flow` expected one of {RAFT_MODELS}, a callable or None, but got {type(flow).__name__}."
        )
    if isinstance(flow, nn.Module):
        _freeze(flow)
    return flow


class FlowWarpingError(StateSafeMetric):
    r"""The flow warping error of Lai et al. (ECCV 2018): how far each frame is from the next one warped back by flow.

    For each pair of consecutive frames :math:`(V_t, V_{t+1})` of a video,

    .. math::
        E_t = \frac{\sum M_t \, \lVert V_t - \operatorname{warp}(V_{t+1}, F_{t \to t+1}) \rVert^2}{\sum M_t}

    over pixels and channels on the [0, 1] value scale, where :math:`F_{t \to t+1}` is the optical flow and
    :math:`M_t` masks out the occluded pixels (Lai et al.'s forward-backward check, ``occlusion="lai"``). It is
    averaged over the :math:`T - 1` pairs of a video, then over the videos. Warping is bilinear with
    ``align_corners=True`` and border padding (:func:`~torchmetrics_ext.functional.video.warp`); the mask is
    :func:`~torchmetrics_ext.functional.video.occlusion_mask`. A pair whose pixels are all occluded is left out of
    its video's mean rather than counted as 0 or NaN.

    The flow comes from the videos themselves, or from ``source``: in Lai et al.'s protocol the flow of the input
    video scores the output of a video-processing model. Errors from different flow networks are not comparable:
    report the network (``raft_large`` with torchvision's ``C_T_SKHT_V2`` weights by default) with the number.

    As input to ``update`` the metric accepts:

    - ``videos`` (:class:`~torch.Tensor`): ``[B, T, C, H, W]`` (or ``[B, C, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least 2 frames (3 channels for RAFT)
    - ``flows`` (:class:`tuple`, optional): ``(forward, backward)`` flows, each ``[B, T - 1, 2, H, W]`` in
      pixels (channel 0 the x displacement); the estimator is not run. ``backward`` may be None with
      ``occlusion="none"``
    - ``source`` (:class:`~torch.Tensor`, optional): a video of the shape of ``videos`` whose flow is used

    As output of ``compute`` the metric returns:

    - ``warping_error`` (:class:`~torch.Tensor`): a float32 scalar, computed in float64; lower is better

    The states are the float64 sum of the per-video errors and the int64 number of videos, summed across
    processes. A flow network is frozen in place (eval mode, no gradients), kept out of ``state_dict``, follows the
    metric's device but not its dtype, gets the frames on its own device and runs outside autocast (RAFT in
    float32). ``num_flow_updates`` applies to the RAFT names only.

    Args:
        flow: ``"raft_large"`` or ``"raft_small"`` (torchvision's RAFT, see :func:`~torchmetrics_ext.models.load_raft`
            for the input handling), any callable ``flow(frames_a, frames_b) -> [N, 2, H, W]`` taking float32 frames
            ``[N, C, H, W]`` in [0, 1], or ``None`` when every ``update`` passes ``flows``.
        occlusion: ``"lai"`` for the occlusion masks of Lai et al., ``"none"`` to count every pixel.
        weights: with a RAFT name, ``None`` for torchvision's ``DEFAULT`` weights (downloaded once into torch hub's
            folder), a member of its weights enum or that member's name, or the path of a saved state dict; must be
            ``None`` otherwise.
        num_flow_updates: the number of RAFT's recurrent refinements (12, torchvision's default).
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos`` and ``source``.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an argument above of the wrong type or value; in ``update``, on videos that are not 5-d in
            ``layout``, have fewer than 2 frames or values out of range; ``source`` of another shape or given
            with ``flows``; flows of the wrong shape or not finite; no flow at all (``flow=None`` without
            ``flows``); a flow estimator returning the wrong shape or non-finite values. ``compute`` returns NaN,
            with a warning, when no video with a visible pixel was seen.
        RuntimeError: if RAFT's weights cannot be downloaded.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.video import FlowWarpingError
        >>> _ = torch.manual_seed(0)
        >>> first = torch.rand(2, 1, 3, 16, 16)
        >>> videos = torch.cat([first, first.roll(1, dims=-1), first.roll(2, dims=-1)], dim=1)  # 1 pixel right a frame
        >>> flows = torch.zeros(2, 2, 2, 16, 16)
        >>> flows[:, :, 0] = 1.0
        >>> metric = FlowWarpingError(flow=None)
        >>> metric.update(videos, flows=(flows, -flows))
        >>> round(metric.compute().item(), 6)
        0.010962

    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    error_sum: Tensor
    num_videos: Tensor

    def __init__(
        self,
        flow: Union[str, FlowEstimator, None] = "raft_large",
        occlusion: str = "lai",
        weights: Optional[Union[str, Path]] = None,
        num_flow_updates: int = 12,
        layout: str = "BTCHW",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_occlusion(occlusion)
        _check_video_layout(layout)
        self.occlusion = occlusion
        self.layout = layout
        self._hold("_flow", _build_flow(flow, weights, num_flow_updates))
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def flow(self) -> Optional[FlowEstimator]:
        """The flow estimator, or None when the flows are given to ``update``."""
        return self._flow

    def update(
        self, videos: Tensor, flows: Optional[Sequence[Optional[Tensor]]] = None, source: Optional[Tensor] = None
    ) -> None:
        """Add the warping errors of a batch of videos; nothing is added when the batch is rejected."""
        _check_videos(videos, self.layout, min_frames=2, channels=None)
        if flows is None:
            flows_fw, flows_bw = self._estimate_flows(
                videos if source is None else self._checked_source(source, videos)
            )
        elif source is not None:
            raise ValueError("Arguments `flows` and `source` expected one of them at most, but got both.")
        elif not isinstance(flows, (tuple, list)) or len(flows) != 2:
            raise ValueError(f"Argument `flows` expected a pair (forward, backward) of flows, but got {flows!r}.")
        else:
            flows_fw, flows_bw = flows
        _check_warping_inputs(videos, flows_fw, flows_bw, self.occlusion, self.layout)
        errors, valid = _warping_errors(videos, flows_fw, flows_bw, self.occlusion, self.layout)
        self.error_sum = self.error_sum + errors[valid].sum().to(self.error_sum.device)
        self.num_videos = self.num_videos + valid.sum().to(self.num_videos.device)

    def _checked_source(self, source: Tensor, videos: Tensor) -> Tensor:
        _check_videos(source, self.layout, min_frames=2, channels=None, name="source")
        if source.shape != videos.shape:
            raise ValueError(
                f"Argument `source` expected the shape of `videos` {list(videos.shape)}, but got {list(source.shape)}."
            )
        return source

    def _estimate_flows(self, videos: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """Forward and backward flows ``[B, T - 1, 2, H, W]`` of every pair of consecutive frames, in one call."""
        if self._flow is None:
            raise ValueError("Argument `flows` expected (forward, backward) flows with `flow=None`, but got None.")
        frames = _unit_float(_as_btchw(videos, self.layout))  # [B, T, C, H, W]
        batch, time, channels, height, width = frames.shape
        current = frames[:, :-1].reshape(-1, channels, height, width)  # [B * (T - 1), C, H, W]
        following = frames[:, 1:].reshape(-1, channels, height, width)
        both = self.occlusion == "lai"  # the backward flow is needed by the occlusion mask only
        frames_a = torch.cat([current, following]) if both else current
        frames_b = torch.cat([following, current]) if both else following
        device = frames_a.device
        if isinstance(self._flow, nn.Module):  # a network runs where its parameters are, outside autocast
            flow_device, _ = _module_device_and_dtype(self._flow)
            frames_a, frames_b = frames_a.to(flow_device), frames_b.to(flow_device)
        with torch.no_grad(), torch.autocast(frames_a.device.type, enabled=False):
            estimated = self._flow(frames_a, frames_b)
        if isinstance(estimated, Tensor):
            estimated = estimated.to(device)
        if not isinstance(estimated, Tensor) or list(estimated.shape) != [frames_a.shape[0], 2, height, width]:
            seen = f"shape {list(estimated.shape)}" if isinstance(estimated, Tensor) else type(estimated).__name__
            raise ValueError(
                f"Argument `flow` expected an estimator returning flows [{frames_a.shape[0]}, 2, {height}, {width}]"
                f" for {frames_a.shape[0]} frame pairs, but it returned {seen}."
            )
        if not torch.isfinite(estimated).all():
            raise ValueError("Argument `flow` returned non-finite flows (NaN or infinity).")
        estimated = estimated.view(-1, batch, time - 1, 2, height, width)
        return estimated[0], (estimated[1] if both else None)

    def compute(self) -> Tensor:
        """Return the mean warping error of the videos seen since the last reset, as a float32 scalar."""
        return _mean_over_videos(
            self.error_sum,
            self.num_videos,
            type(self).__name__,
            "nothing was passed to `update`, or every pair of frames was fully occluded",
        )

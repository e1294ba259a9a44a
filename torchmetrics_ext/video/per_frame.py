"""An image metric (PSNR, SSIM, LPIPS, ...) applied to every frame pair of two videos, as a ``torchmetrics.Metric``."""

import copy
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor
from torchmetrics import Metric

from torchmetrics_ext.functional.video._frames import _as_btchw, _unit_float
from torchmetrics_ext.functional.video._reduction import _mean_over_videos
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.utilities.checks import _check_video_layout, _check_videos


def _check_metric(metric: Any) -> None:
    if isinstance(metric, Metric):
        return
    if isinstance(metric, type):  # a class is callable, but calling it builds an object rather than values
        raise ValueError(
            "Argument `metric` expected a `torchmetrics.Metric` or a callable returning one value per image, but got"
            f" the class {metric.__name__}: pass an instance, e.g. `{metric.__name__}(...)`."
        )
    if not callable(metric):
        raise ValueError(
            "Argument `metric` expected a `torchmetrics.Metric` or a callable returning one value per image, but got"
            f" {type(metric).__name__}."
        )


def _metric_name(metric: Any) -> str:
    if isinstance(metric, Metric):
        return type(metric).__name__
    func = getattr(metric, "func", metric)  # functools.partial
    return getattr(func, "__name__", type(func).__name__)


class PerFrameImageMetric(StateSafeMetric):
    r"""An image metric on every frame pair of two videos, averaged over the frames of a video, then over videos.

    .. math::
        \mathrm{value} = \frac{1}{B} \sum_{b=1}^{B} \frac{1}{T} \sum_{t=1}^{T} m\big(\hat{x}_{b,t},\, x_{b,t}\big)

    where :math:`m` is the image metric, :math:`\hat{x}_{b,t}` and :math:`x_{b,t}` the frame :math:`t` of the
    predicted and of the target video :math:`b`, and :math:`B` the number of videos seen since the last reset. This
    is the protocol of video restoration (Lai et al., ECCV 2018; BasicSR): a value per frame, the mean over the
    :math:`T` frames of a video, the mean over the videos. Every video weighs the same, whatever its length.

    The value of a frame pair is the metric of that frame alone: a ``torchmetrics.Metric`` is reset, updated with
    the one-frame batch ``[1, C, H, W]`` and computed for every frame. It is not the metric of a batch of frames:
    PSNR over a batch is the PSNR of the pooled mean squared error, which is not the mean of per-frame PSNRs. A
    callable returning one value per image is called once on all the ``B * T`` frame pairs of a batch instead,
    which is faster, e.g. ``functools.partial(peak_signal_noise_ratio, data_range=1.0, reduction="none",
    dim=(1, 2, 3))`` from ``torchmetrics.functional.image``.

    The frames are given to the image metric as float32 in [0, 1] (uint8 divided by 255): build PSNR and SSIM with
    ``data_range=1.0`` and LPIPS with ``normalize=True``.

    As input to ``update`` the metric accepts:

    - ``preds`` (:class:`~torch.Tensor`): ``[B, T, C, H, W]`` (or ``[B, C, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least one frame
    - ``target`` (:class:`~torch.Tensor`): the reference videos, of the shape of ``preds``, uint8 in [0, 255] or
      floating point in [0, 1]

    As output of ``compute`` the metric returns:

    - ``value`` (:class:`~torch.Tensor`): a float32 scalar, the mean over the videos of their mean over the frames

    The states are the float64 sum over the videos of their per-frame mean and the int64 number of videos, summed
    across processes (DDP gives the single-process value) and kept in their dtype when the module is cast. The
    wrapper computes with a deep copy of a ``Metric`` (the object given is never changed); the copy is scratch,
    reset for every frame, never synchronized across processes, kept out of ``state_dict`` and follows the
    wrapper's device but not its dtype. ``higher_is_better`` and ``is_differentiable`` are those of the ``Metric``
    (``None`` with a callable).

    Args:
        metric: a ``torchmetrics.Metric`` whose ``update(preds, target)`` takes images ``[N, C, H, W]`` and whose
            ``compute`` returns a scalar, such as ``PeakSignalNoiseRatio(data_range=1.0)``; or a callable
            ``fn(preds, target)`` returning one value per image, a tensor ``[N]``.
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``preds`` and ``target``.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on a ``metric`` that is neither a ``Metric`` nor a callable (a class included), or a ``layout``
            other than above; in ``update``, on videos that are not 5-d in ``layout``, are empty or out of range
            (floating point outside [0, 1]), on ``preds`` and ``target`` of different shapes, on a ``Metric`` that
            does not compute one value for a frame pair, on a callable that does not return a tensor ``[N]``, and on
            a NaN value of a frame pair; nothing is accumulated then. An infinite value is kept (PSNR of identical
            frames is +inf, and so is then the mean, as in torchmetrics and BasicSR). ``compute`` returns NaN,
            with a warning, when no video was seen.

    Example:
        >>> import torch
        >>> from torchmetrics.image import PeakSignalNoiseRatio
        >>> from torchmetrics_ext.video import PerFrameImageMetric
        >>> _ = torch.manual_seed(0)
        >>> target = torch.rand(2, 4, 3, 8, 8)
        >>> preds = (target + 0.1 * torch.randn(2, 4, 3, 8, 8)).clamp(0, 1)
        >>> metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
        >>> metric.update(preds, target)
        >>> round(metric.compute().item(), 4)
        20.7756

    """

    full_state_update = False

    sum_value: Tensor
    num_videos: Tensor

    def __init__(self, metric: Union[Metric, Callable[[Tensor, Tensor], Tensor]], layout: str = "BTCHW", **kwargs: Any):
        super().__init__(**kwargs)
        _check_metric(metric)
        _check_video_layout(layout)
        self.layout = layout
        if isinstance(metric, Metric):
            inner = copy.deepcopy(metric)
            inner.reset()
            # scratch, computed once per frame: never gathered across processes (that would hang or mix ranks)
            inner.sync_on_compute = False
            inner.dist_sync_on_step = False
            inner._to_sync = False
            inner.to(device=self.device)
        else:
            inner = metric
        self._hold("_metric", inner)  # out of state_dict, never cast to another dtype
        self.add_state("sum_value", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def metric(self) -> Union[Metric, Callable[[Tensor, Tensor], Tensor]]:
        """The image metric: the wrapper's own copy of a ``Metric``, or the callable given."""
        return self._metric

    @property
    def higher_is_better(self) -> Optional[bool]:  # type: ignore[override]
        """Whether a higher value is better: that of the wrapped ``Metric``, ``None`` for a callable."""
        return self._metric.higher_is_better if isinstance(self._metric, Metric) else None

    @property
    def is_differentiable(self) -> Optional[bool]:  # type: ignore[override]
        """Whether the metric is differentiable: that of the wrapped ``Metric``, ``None`` for a callable."""
        return self._metric.is_differentiable if isinstance(self._metric, Metric) else None

    def extra_repr(self) -> str:
        return f"metric={_metric_name(self._metric)}, layout={self.layout!r}"

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the per-frame mean of every video of the batch; nothing is added when the batch is rejected."""
        _check_videos(preds, self.layout, min_frames=1, channels=None, name="preds")
        _check_videos(target, self.layout, min_frames=1, channels=None, name="target")
        if preds.shape != target.shape:
            raise ValueError(
                f"Arguments `preds` and `target` expected the same shape, but got {tuple(preds.shape)} and"
                f" {tuple(target.shape)}."
            )
        preds, target = _as_btchw(preds, self.layout), _as_btchw(target, self.layout)
        videos, frames = preds.shape[:2]
        preds = _unit_float(preds.to(self.device)).reshape(videos * frames, *preds.shape[2:])
        target = _unit_float(target.to(self.device)).reshape(videos * frames, *target.shape[2:])
        values = self._frame_values(preds, target, frames).reshape(videos, frames)  # [B, T] float64
        self.sum_value = self.sum_value + values.mean(dim=1).sum()
        self.num_videos = self.num_videos + videos

    def _frame_values(self, preds: Tensor, target: Tensor, frames: int) -> Tensor:
        """The float64 value [N] of every frame pair of ``preds`` and ``target`` [N = B * T, C, H, W]; no state is
        touched."""
        count = preds.shape[0]
        if isinstance(self._metric, Metric):
            values = torch.stack([self._one_frame(preds[i : i + 1], target[i : i + 1]) for i in range(count)])
        else:
            values = self._metric(preds, target)
            if not isinstance(values, Tensor) or values.shape != (count,):
                seen = f"shape {list(values.shape)}" if isinstance(values, Tensor) else type(values).__name__
                raise ValueError(
                    f"Argument `metric` expected a callable returning one value per image, a tensor of shape [{count}]"
                    f" for {count} frame pairs, but {_metric_name(self._metric)} returned {seen}."
                )
        values = values.to(device=self.device, dtype=torch.float64)
        bad = values.isnan()  # infinities are values: PSNR of identical frames is +inf, as torchmetrics and BasicSR say
        if bad.any():
            index = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"Argument `metric` expected a value for every frame pair, but {_metric_name(self._metric)}"
                f" gave NaN for frame {index % frames} of video {index // frames} of the batch."
            )
        return values

    def _one_frame(self, preds: Tensor, target: Tensor) -> Tensor:
        """The ``Metric`` of one frame pair [1, C, H, W] alone, as a scalar; gradients follow the caller's grad mode."""
        metric = self._metric
        metric.reset()
        metric._enable_grad = torch.is_grad_enabled()  # Metric.update would otherwise run without gradients
        try:
            metric.update(preds, target)
            value = metric.compute()
        finally:
            metric._enable_grad = False
            metric.reset()
        if not isinstance(value, Tensor) or value.numel() != 1:
            seen = f"shape {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"Argument `metric` expected a `Metric` computing one value for a frame pair, but"
                f" {type(metric).__name__} computed {seen}."
            )
        return value.reshape(())

    def compute(self) -> Tensor:
        """Return the mean over the videos seen since the last reset of their per-frame mean, as a float32 scalar."""
        return _mean_over_videos(self.sum_value, self.num_videos, type(self).__name__)

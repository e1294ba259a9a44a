"""VBench's temporal flickering, as a ``torchmetrics.Metric``."""

from typing import Any

import torch
from torch import Tensor

from torchmetrics_ext.functional.video.flickering import _flickering_scores
from torchmetrics_ext.functional.video._reduction import _mean_over_videos
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.utilities.checks import _check_video_layout, _check_videos


class TemporalFlickering(StateSafeMetric):
    r"""VBench's temporal flickering: one minus the mean absolute change between consecutive frames, per video.

    For a video of frames :math:`f_1, \dots, f_T` on the 0..255 value scale,

    .. math::
        s = \frac{1}{255}\Big(255 - \frac{1}{T - 1} \sum_{t=1}^{T-1} \operatorname{mean}_{c,h,w}
            \lvert f_t - f_{t+1} \rvert\Big)

    and the metric is the mean of :math:`s` over the videos, as VBench's ``vbench/temporal_flickering.py``
    computes it. It lies in [0, 1], higher is better: 1 for static videos, 0 for videos alternating between
    black and white frames. uint8 videos are used as they are, which is exact (VBench reads uint8 frames and
    takes ``cv2.absdiff``); floating point videos in [0, 1] are multiplied by 255 without rounding, so they match
    VBench only when they are uint8 frames divided by 255. VBench scores static-camera videos with this
    dimension: camera or object motion counts as flicker.

    As input to ``update`` the metric accepts:

    - ``videos`` (:class:`~torch.Tensor`): ``[B, T, C, H, W]`` (or ``[B, C, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least 2 frames, any number of channels

    As output of ``compute`` the metric returns:

    - ``temporal_flickering`` (:class:`~torch.Tensor`): a float32 scalar, computed in float64

    The states are the float64 sum of the per-video scores and the int64 number of videos, summed across processes
    (DDP gives the single-process value) and kept in their dtype when the module is cast.

    Args:
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos``.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an unknown ``layout``; in ``update``, on videos that are not 5-d in ``layout``, have fewer
            than 2 frames, are empty, are neither uint8 nor floating point, or have floating point values outside
            [0, 1]. ``compute`` returns NaN, with a warning, when no video was seen.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.video import TemporalFlickering
        >>> _ = torch.manual_seed(0)
        >>> metric = TemporalFlickering()
        >>> metric.update(torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8))
        >>> metric.update(torch.zeros(2, 4, 3, 8, 8))  # static videos score 1
        >>> round(metric.compute().item(), 6)
        0.83431

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    flickering_sum: Tensor
    num_videos: Tensor

    def __init__(self, layout: str = "BTCHW", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_video_layout(layout)
        self.layout = layout
        self.add_state("flickering_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, videos: Tensor) -> None:
        """Add the scores of a batch of videos; nothing is added when the batch is rejected."""
        _check_videos(videos, self.layout, min_frames=2, channels=None)
        scores = _flickering_scores(videos, self.layout)
        self.flickering_sum = self.flickering_sum + scores.sum().to(self.flickering_sum.device)
        self.num_videos = self.num_videos + scores.shape[0]

    def compute(self) -> Tensor:
        """Return the mean score of the videos seen since the last reset, as a float32 scalar."""
        return _mean_over_videos(self.flickering_sum, self.num_videos, type(self).__name__)

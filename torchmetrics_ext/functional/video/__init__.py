"""Stateless video metrics: the math behind the classes of :mod:`torchmetrics_ext.video`."""

from torchmetrics_ext.functional.video.consistency import temporal_consistency
from torchmetrics_ext.functional.video.flickering import temporal_flickering
from torchmetrics_ext.functional.video.frechet import frechet_distance
from torchmetrics_ext.functional.video.kernel import kernel_distance
from torchmetrics_ext.functional.video.preprocess import preprocess_videos
from torchmetrics_ext.functional.video.warp import occlusion_mask, warp
from torchmetrics_ext.functional.video.warping_error import flow_warping_error

__all__ = [
    "flow_warping_error",
    "frechet_distance",
    "kernel_distance",
    "occlusion_mask",
    "preprocess_videos",
    "temporal_consistency",
    "temporal_flickering",
    "warp",
]

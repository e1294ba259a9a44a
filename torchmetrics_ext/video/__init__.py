"""Metrics for videos: distances between sets of real and generated videos."""

from torchmetrics_ext.video.consistency import TemporalConsistency
from torchmetrics_ext.video.flickering import TemporalFlickering
from torchmetrics_ext.video.fvd import FrechetVideoDistance
from torchmetrics_ext.video.kvd import KernelVideoDistance
from torchmetrics_ext.video.per_frame import PerFrameImageMetric
from torchmetrics_ext.video.warping_error import FlowWarpingError

__all__ = [
    "FlowWarpingError",
    "FrechetVideoDistance",
    "KernelVideoDistance",
    "PerFrameImageMetric",
    "TemporalConsistency",
    "TemporalFlickering",
]

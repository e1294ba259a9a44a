"""Metrics for videos: distances between sets of real and generated videos."""

from torchmetrics_ext.video.fvd import FrechetVideoDistance
from torchmetrics_ext.video.kvd import KernelVideoDistance
from torchmetrics_ext.video.per_frame import PerFrameImageMetric
from torchmetrics_ext.video.warping_error import FlowWarpingError

__all__ = ["FlowWarpingError", "FrechetVideoDistance", "KernelVideoDistance", "PerFrameImageMetric"]

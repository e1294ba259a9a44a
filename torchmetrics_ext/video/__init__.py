"""Metrics for videos: distances between sets of real and generated videos."""

from torchmetrics_ext.video.fvd import FrechetVideoDistance
from torchmetrics_ext.video.kvd import KernelVideoDistance

__all__ = ["FrechetVideoDistance", "KernelVideoDistance"]

"""Stateless video metrics: the math behind the classes of :mod:`torchmetrics_ext.video`."""

from torchmetrics_ext.functional.video.frechet import frechet_distance
from torchmetrics_ext.functional.video.kernel import kernel_distance
from torchmetrics_ext.functional.video.preprocess import preprocess_videos

__all__ = ["frechet_distance", "kernel_distance", "preprocess_videos"]

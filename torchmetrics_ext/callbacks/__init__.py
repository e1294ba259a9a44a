"""Lightning callbacks: attach metrics to the validation loop, keep the best checkpoint, watch training health."""

from torchmetrics_ext.callbacks.checkpoint import BestMetricCheckpoint
from torchmetrics_ext.callbacks.health import TrainingHealthMonitor, TrainingHealthWarning
from torchmetrics_ext.callbacks.validation import ValidationMetrics

__all__ = ["BestMetricCheckpoint", "TrainingHealthMonitor", "TrainingHealthWarning", "ValidationMetrics"]

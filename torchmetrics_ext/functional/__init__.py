"""Stateless forms of the metrics of :mod:`torchmetrics_ext`, one function per metric."""

from torchmetrics_ext.functional.text import causal_lm_cross_entropy, causal_lm_perplexity, causal_lm_token_accuracy
from torchmetrics_ext.functional.video import (
    flow_warping_error,
    frechet_distance,
    kernel_distance,
    occlusion_mask,
    temporal_consistency,
    temporal_flickering,
    warp,
)

__all__ = [
    "causal_lm_cross_entropy",
    "causal_lm_perplexity",
    "causal_lm_token_accuracy",
    "flow_warping_error",
    "frechet_distance",
    "kernel_distance",
    "occlusion_mask",
    "temporal_consistency",
    "temporal_flickering",
    "warp",
]

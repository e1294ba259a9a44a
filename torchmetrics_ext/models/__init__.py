"""Pretrained backbones of the video metrics, and loading their weights."""

from torchmetrics_ext.models.i3d import InceptionI3d, TorchScriptI3d, load_i3d
from torchmetrics_ext.models.inference import ExtractorOptions
from torchmetrics_ext.models.raft import RAFTFlow, load_raft
from torchmetrics_ext.models.weights import default_i3d, i3d_weights_path

__all__ = [
    "ExtractorOptions",
    "InceptionI3d",
    "RAFTFlow",
    "TorchScriptI3d",
    "default_i3d",
    "i3d_weights_path",
    "load_i3d",
    "load_raft",
]

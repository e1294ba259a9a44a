"""Pretrained backbones of the video metrics, and loading their weights from local files."""

from torchmetrics_ext.models.i3d import InceptionI3d, TorchScriptI3d, load_i3d

__all__ = ["InceptionI3d", "TorchScriptI3d", "load_i3d"]

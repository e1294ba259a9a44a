"""Reading videos for the command line: video files (PyAV), frame folders and tensor files, as clips."""

from torchmetrics_ext.io.clips import ClipSampling
from torchmetrics_ext.io.dataset import VideoClipDataset, collate_clips
from torchmetrics_ext.io.errors import VideoReadError
from torchmetrics_ext.io.reading import read_clip, read_video
from torchmetrics_ext.io.sources import (
    IMAGE_EXTENSIONS,
    TENSOR_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoSource,
    find_videos,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "TENSOR_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipSampling",
    "VideoClipDataset",
    "VideoReadError",
    "VideoSource",
    "collate_clips",
    "find_videos",
    "read_clip",
    "read_video",
]

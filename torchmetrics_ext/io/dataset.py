"""Clips of many videos for a ``DataLoader``: decoding runs in worker processes while the model runs."""

from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import Dataset

from torchmetrics_ext.io.clips import ClipSampling
from torchmetrics_ext.io.reading import read_clip
from torchmetrics_ext.io.sources import VideoReadError, VideoSource


class VideoClipDataset(Dataset):
    """The clip of each video, as ``{"source", "clip", "error"}``; a bad video gives its error, never an exception.

    Returning the error (instead of raising in a worker process) lets the caller stop on it or skip it without
    losing the clips of the other videos.

    Args:
        sources: the videos, from :func:`~torchmetrics_ext.io.find_videos`.
        sampling: which frames of each video.
        size: ``(H, W)`` to resize every frame to (bilinear, ``align_corners=False``, no antialias, rounded to
            uint8); None keeps each video's size.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import ClipSampling, VideoClipDataset, find_videos
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "clips.npy", np.zeros((2, 6, 8, 8, 3), dtype=np.uint8))
        ...     item = VideoClipDataset(find_videos(folder), ClipSampling(num_frames=4))[1]
        ...     item["source"].endswith("clips.npy[1]"), item["clip"].shape, item["error"]
        (True, torch.Size([4, 3, 8, 8]), None)

    """

    def __init__(
        self, sources: Sequence[VideoSource], sampling: ClipSampling, size: Optional[tuple[int, int]] = None
    ) -> None:
        self.sources, self.sampling, self.size = list(sources), sampling, size

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.sources[index]
        try:
            clip = read_clip(source, self.sampling)
        except VideoReadError as error:
            return {"source": str(source), "clip": None, "error": str(error)}
        if self.size is not None and tuple(clip.shape[-2:]) != tuple(self.size):
            resized = F.interpolate(clip.float(), size=self.size, mode="bilinear", align_corners=False)
            clip = resized.round().clamp(0, 255).to(torch.uint8)
        return {"source": str(source), "clip": clip, "error": None}


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch the items of :class:`VideoClipDataset`: clips of one shape stacked together, errors listed.

    Returns:
        ``{"sources": [str], "clips": [uint8 [B_i, T, 3, H, W]], "errors": [(source, message)], "indices": [[int]]}``
        with one stacked tensor per shape, in order of first appearance, and the positions of its clips.
    """
    groups: dict[tuple, list[int]] = {}
    for position, item in enumerate(items):
        if item["error"] is None:
            groups.setdefault(tuple(item["clip"].shape), []).append(position)
    return {
        "sources": [item["source"] for item in items],
        "clips": [torch.stack([items[i]["clip"] for i in positions]) for positions in groups.values()],
        "errors": [(item["source"], item["error"]) for item in items if item["error"] is not None],
        "indices": list(groups.values()),
    }

"""Clips of many videos for a ``DataLoader``: decoding runs in worker processes while the model runs."""

from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor
from torch.utils.data import Dataset

from torchmetrics_ext.io.clips import ClipSampling
from torchmetrics_ext.io.errors import VideoReadError
from torchmetrics_ext.io.reading import read_clip
from torchmetrics_ext.io.sources import VideoSource


def _resize(clip: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 ``[T, 3, H, W]`` resized to ``size`` (bilinear, ``align_corners=False``, no antialias), rounded."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    resized = F.interpolate(clip.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


class VideoClipDataset(Dataset):
    """The clip of each video, as ``{"source", "clip", "error"}``; a bad video gives its error, never an exception.

    Returning the error (instead of raising in a worker process, which would end the whole ``DataLoader``) lets
    the caller stop on it or skip the video without losing the clips of the others. Use
    :func:`collate_clips` as the ``collate_fn``: clips of different sizes are batched by shape.

    Args:
        sources: the videos, from :func:`~torchmetrics_ext.io.find_videos`.
        sampling: which frames of each video.
        size: ``(H, W)`` to resize every frame to (bilinear, ``align_corners=False``, no antialias, on float and
            rounded back to uint8); None keeps each video's size.

    Raises:
        ValueError: if ``sampling`` is not a :class:`ClipSampling` or ``size`` not two positive ints.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import ClipSampling, VideoClipDataset, find_videos
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "clips.npy", np.zeros((2, 6, 8, 8, 3), dtype=np.uint8))
        ...     (Path(folder) / "broken.mp4").write_bytes(b"not a video")
        ...     dataset = VideoClipDataset(find_videos(folder), ClipSampling(num_frames=4))
        ...     items = [dataset[i] for i in range(len(dataset))]
        11
        >>> [(Path(item["source"]).name, item["error"] is None) for item in items]
        [('broken.mp4', False), ('clips.npy[0]', True), ('clips.npy[1]', True)]
        >>> items[1]["clip"].shape
        torch.Size([4, 3, 8, 8])

    """

    def __init__(
        self, sources: Sequence[VideoSource], sampling: ClipSampling, size: Optional[tuple[int, int]] = None
    ) -> None:
        if not isinstance(sampling, ClipSampling):
            raise ValueError(f"Argument `sampling` expected a `ClipSampling` but got {type(sampling).__name__}.")
        if size is not None and not (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
        ):
            raise ValueError(f"Argument `size` expected None or (height, width), two positive ints, but got {size!r}.")
        self.sources, self.sampling = list(sources), sampling
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.sources[index]
        try:
            clip = read_clip(source, self.sampling)
            if self.size is not None:
                clip = _resize(clip, self.size)
        except VideoReadError as error:
            return {"source": str(source), "clip": None, "error": str(error)}
        except Exception as error:  # an unforeseen failure is still this video's, not the loader's
            return {"source": str(source), "clip": None, "error": f"{source}: {type(error).__name__}: {error}"}
        return {"source": str(source), "clip": clip, "error": None}


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch the items of :class:`VideoClipDataset`: the clips of one shape stacked together, errors listed.

    Args:
        items: ``{"source", "clip", "error"}`` dicts.

    Returns:
        ``{"sources": [str], "clips": [uint8 [B_i, T, 3, H, W]], "errors": [(source, message)], "indices": [[int]]}``:
        the sources of all items; one stacked tensor per clip shape, in order of first appearance, clips in item
        order; the bad videos; and, per stacked tensor, the positions of its clips in ``sources``.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.io import collate_clips
        >>> items = [
        ...     {"source": "a.mp4", "clip": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "error": None},
        ...     {"source": "b.mp4", "clip": None, "error": "b.mp4: cannot decode"},
        ...     {"source": "c.mp4", "clip": torch.zeros(4, 3, 6, 6, dtype=torch.uint8), "error": None},
        ...     {"source": "d.mp4", "clip": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "error": None},
        ... ]
        >>> batch = collate_clips(items)
        >>> [tuple(clips.shape) for clips in batch["clips"]], batch["indices"], batch["errors"]
        ([(2, 4, 3, 8, 8), (1, 4, 3, 6, 6)], [[0, 3], [2]], [('b.mp4', 'b.mp4: cannot decode')])

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

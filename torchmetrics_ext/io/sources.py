"""Which videos an input holds: a video file, a folder of videos or of frame folders, or a tensor file."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".gif", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
TENSOR_EXTENSIONS = (".npy", ".npz", ".pt")


class VideoReadError(ValueError):
    """A video that cannot be read; the message names the file (``path[index]`` in a tensor file) and why."""


@dataclass(frozen=True)
class VideoSource:
    """One video: a video file, a folder of frame images, or the video at ``index`` of a tensor file.

    Args:
        path: the file or folder.
        kind: ``"video"``, ``"frames"`` or ``"tensor"``.
        index: the position of the video in a tensor file.

    Example:
        >>> from torchmetrics_ext.io import VideoSource
        >>> str(VideoSource("clips.npy", "tensor", 3))
        'clips.npy[3]'

    """

    path: Path
    kind: str
    index: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"


def natural_key(path: Path) -> list:
    """Sort key that puts ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions), key=natural_key)


def _tensor_length(path: Path) -> int:
    """The number of videos in a tensor file, read without loading the frames where the format allows."""
    from torchmetrics_ext.io.reading import _load_tensor_file  # one place knows the tensor file formats

    return len(_load_tensor_file(path, lazy=True))


def _expand(path: Path) -> list[VideoSource]:
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix in VIDEO_EXTENSIONS:
            return [VideoSource(path, "video")]
        if suffix in TENSOR_EXTENSIONS:
            return [VideoSource(path, "tensor", i) for i in range(_tensor_length(path))]
        raise VideoReadError(
            f"{path}: unknown file type {suffix or '(none)'}; expected a video {VIDEO_EXTENSIONS} or a tensor file"
            f" {TENSOR_EXTENSIONS}"
        )
    videos = [VideoSource(p, "video") for p in _files(path, VIDEO_EXTENSIONS)]
    for tensor_file in _files(path, TENSOR_EXTENSIONS):
        videos += _expand(tensor_file)
    folders = sorted((p for p in path.iterdir() if p.is_dir() and _files(p, IMAGE_EXTENSIONS)), key=natural_key)
    videos += [VideoSource(folder, "frames") for folder in folders]
    if not videos and _files(path, IMAGE_EXTENSIONS):
        videos = [VideoSource(path, "frames")]  # a folder of images is one video
    if not videos:
        raise VideoReadError(
            f"{path}: no video found (looked for video files {VIDEO_EXTENSIONS}, tensor files {TENSOR_EXTENSIONS},"
            f" and folders of images {IMAGE_EXTENSIONS})"
        )
    return videos


def find_videos(paths: Union[str, Path, Sequence[Union[str, Path]]]) -> list[VideoSource]:
    """The videos of one or several inputs, in a deterministic order (natural sort by name within a folder).

    A video file is one video; a tensor file one video per entry of its first dimension; a folder holds video
    files, tensor files and folders of frame images (one video each), or is itself a folder of frame images.

    Args:
        paths: a file or folder, or a sequence of them.

    Returns:
        The videos, input by input.

    Raises:
        VideoReadError: for a path that does not exist, a file of an unknown type, or an input without a video.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import find_videos
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "clips.npy", np.zeros((2, 4, 8, 8, 3), dtype=np.uint8))
        ...     [str(source.index) for source in find_videos(folder)]
        ['0', '1']

    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [source for path in paths for source in _expand(Path(path))]

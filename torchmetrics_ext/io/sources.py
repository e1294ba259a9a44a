"""Which videos an input holds: a video file, a tensor file, a folder of them, or folders of frame images."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from torchmetrics_ext.io.errors import VideoReadError
from torchmetrics_ext.io.tensor_files import count_videos

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".gif", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
TENSOR_EXTENSIONS = (".npy", ".npz", ".pt")
SOURCE_KINDS = ("video", "frames", "tensor")


@dataclass(frozen=True)
class VideoSource:
    """One video: a video file, a folder of frame images, or the video at ``index`` of a tensor file.

    Args:
        path: the file or folder (a ``str`` is turned into a ``Path``).
        kind: ``"video"``, ``"frames"`` or ``"tensor"``.
        index: the position of the video in a tensor file; None for the other kinds.

    Raises:
        ValueError: on an unknown ``kind``, or an ``index`` missing for a tensor file or given for another kind.

    Example:
        >>> from torchmetrics_ext.io import VideoSource
        >>> str(VideoSource("clips.npy", "tensor", 3)), str(VideoSource("a.mp4", "video"))
        ('clips.npy[3]', 'a.mp4')

    """

    path: Path
    kind: str
    index: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"Argument `kind` expected to be one of {SOURCE_KINDS} but got {self.kind!r}.")
        index_ok = isinstance(self.index, int) and not isinstance(self.index, bool) and self.index >= 0
        if self.kind == "tensor" and not index_ok:
            raise ValueError(f"Argument `index` expected an int >= 0 for a tensor file but got {self.index!r}.")
        if self.kind != "tensor" and self.index is not None:
            raise ValueError(f"Argument `index` expected to be None for kind {self.kind!r} but got {self.index!r}.")

    def __str__(self) -> str:
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"


def natural_key(path: Path) -> tuple:
    """Sort key of a file name with its numbers compared as numbers: ``frame2`` before ``frame10``.

    Example:
        >>> from pathlib import Path
        >>> from torchmetrics_ext.io.sources import natural_key
        >>> [p.name for p in sorted(map(Path, ["f10.png", "f2.png", "F1.png"]), key=natural_key)]
        ['F1.png', 'f2.png', 'f10.png']

    """
    parts = [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
    return parts, path.name  # the name breaks ties ("a" and "A", "01" and "1"): the order never depends on the disk


def _entries(folder: Path) -> list[Path]:
    """The entries of a folder in natural order, hidden ones (``.name``) left out."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=natural_key)


def image_files(folder: Path) -> list[Path]:
    """The frame images of a folder in natural order."""
    return [p for p in _entries(folder) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]


def _tensor_sources(path: Path) -> list[VideoSource]:
    return [VideoSource(path, "tensor", i) for i in range(count_videos(path))]


def _expand(path: Path) -> list[VideoSource]:
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix in VIDEO_EXTENSIONS:
            return [VideoSource(path, "video")]
        if suffix in TENSOR_EXTENSIONS:
            videos = _tensor_sources(path)
            if not videos:
                raise VideoReadError(f"{path}: no video found (the tensor file holds 0 videos)")
            return videos
        raise VideoReadError(
            f"{path}: unknown file type {suffix or '(no extension)'}; expected a video file {VIDEO_EXTENSIONS} or a"
            f" tensor file {TENSOR_EXTENSIONS}"
        )
    videos = []
    for entry in _entries(path):
        kind = entry.suffix.lower()
        if entry.is_file() and kind in VIDEO_EXTENSIONS:
            videos.append(VideoSource(entry, "video"))
        elif entry.is_file() and kind in TENSOR_EXTENSIONS:
            videos += _tensor_sources(entry)
        elif entry.is_dir() and image_files(entry):
            videos.append(VideoSource(entry, "frames"))
    if not videos and image_files(path):
        videos = [VideoSource(path, "frames")]  # a folder of images is one video
    if not videos:
        raise VideoReadError(
            f"{path}: no video found (looked for video files {VIDEO_EXTENSIONS}, tensor files {TENSOR_EXTENSIONS},"
            f" sub-folders of images {IMAGE_EXTENSIONS}, or images in the folder itself)"
        )
    return videos


def find_videos(paths: Union[str, Path, Sequence[Union[str, Path]]]) -> list[VideoSource]:
    """The videos of one or several inputs, input by input, each in natural order of the names.

    - a video file (``VIDEO_EXTENSIONS``) is one video;
    - a tensor file (``TENSOR_EXTENSIONS``) is one video per entry of its first dimension (a 4-d array is one
      video); only its shape is read: ``.npy`` memory-mapped, the header of an ``.npz`` member (the only array or
      the one named ``videos``), a ``.pt`` tensor or dict with ``"videos"`` memory-mapped;
    - a folder gives its video files, the videos of its tensor files and one video per sub-folder that holds
      images (``IMAGE_EXTENSIONS``), all sorted together by name, without looking deeper; a folder with none of
      these but with images is one video. Hidden entries (``.name``) are ignored.

    Args:
        paths: a file or folder, or a sequence of them.

    Returns:
        The videos, as :class:`VideoSource`.

    Raises:
        VideoReadError: for a path that does not exist, a file of an unknown type, a tensor file that cannot be
            read, or an input without a video.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import find_videos
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "clips.npy", np.zeros((2, 4, 8, 8, 3), dtype=np.uint8))
        ...     [(source.path.name, source.kind, source.index) for source in find_videos(folder)]
        [('clips.npy', 'tensor', 0), ('clips.npy', 'tensor', 1)]

    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [source for path in paths for source in _expand(Path(path))]

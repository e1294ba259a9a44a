"""Videos stored as arrays: ``.npy``, ``.npz`` and ``.pt`` files of ``[N, T, H, W, C]`` or ``[N, T, C, H, W]``.

A 5-d array holds ``N`` videos; a 4-d array is one video. Listing a file reads its shape only (the ``.npy`` header,
the header of the ``.npz`` member, a memory-mapped ``.pt``); reading a video loads the file once per process and
keeps the last one loaded, so that the clips of a file's videos, read one by one, do not load it again each time.
"""

import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from torchmetrics_ext.io.errors import VideoReadError

_cache: dict[tuple, Any] = {}  # at most one entry: (path, mtime, size) -> the videos of the file last loaded


def _npz_member(names: list[str], path: Path) -> str:
    """The array of an ``.npz`` file that holds the videos: the one named ``videos``, or the only one."""
    if "videos" in names:
        return "videos"
    if len(names) == 1:
        return names[0]
    raise VideoReadError(f"{path}: an .npz file needs one array, or one named 'videos', but holds {sorted(names)}")


def _load_pt(path: Path) -> Any:
    try:  # memory-mapped: a video is read from disk when it is indexed
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # files of the legacy (non-zip) format cannot be memory-mapped
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict):
        if "videos" not in loaded:
            raise VideoReadError(f"{path}: a .pt dict needs the key 'videos', but has {sorted(map(str, loaded))}")
        loaded = loaded["videos"]
    return loaded


def _load(path: Path) -> Union[np.ndarray, Tensor]:
    """The array of a tensor file, 5-d ``[N, T, ...]`` (a 4-d array gets ``N = 1``)."""
    try:
        if path.suffix.lower() == ".npy":
            videos = np.load(path, mmap_mode="r", allow_pickle=False)
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                videos = archive[_npz_member(list(archive.keys()), path)]
        else:
            videos = _load_pt(path)
    except VideoReadError:
        raise
    except Exception as error:  # NumPy, zipfile, pickle and torch raise many kinds for a corrupt file
        raise VideoReadError(f"{path}: not a readable tensor file ({type(error).__name__}: {error})") from error
    if not isinstance(videos, (np.ndarray, Tensor)):
        raise VideoReadError(f"{path}: expected an array of videos, but got {type(videos).__name__}")
    _check_shape(tuple(videos.shape), path)
    return videos if videos.ndim == 5 else videos[None]


def _check_shape(shape: tuple, path: Path) -> None:
    if len(shape) not in (4, 5):
        raise VideoReadError(
            f"{path}: expected videos [N, T, H, W, C] or [N, T, C, H, W] (or one video without N), but got shape"
            f" {list(shape)}"
        )


def _npz_shape(path: Path) -> tuple:
    with zipfile.ZipFile(path) as archive:
        names = [name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
        with archive.open(_npz_member(names, path) + ".npy") as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return tuple(read(member)[0])


def count_videos(path: Union[str, Path]) -> int:
    """The number of videos in a tensor file, from its shape (the frames are not loaded where the format allows).

    Raises:
        VideoReadError: if the file cannot be read or its array is neither 4-d nor 5-d.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io.tensor_files import count_videos
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.savez(Path(folder) / "clips.npz", videos=np.zeros((3, 4, 8, 8, 3), dtype=np.uint8))
        ...     count_videos(Path(folder) / "clips.npz")
        3

    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            shape = _npz_shape(path)
        except VideoReadError:
            raise
        except Exception:  # an unusual header: load the array, which also explains a corrupt file
            return int(load_videos(path).shape[0])
        _check_shape(shape, path)
        return shape[0] if len(shape) == 5 else 1
    return int(load_videos(path).shape[0])  # .npy memory-mapped, .pt memory-mapped


def load_videos(path: Union[str, Path]) -> Union[np.ndarray, Tensor]:
    """The videos of a tensor file as a 5-d array ``[N, T, ...]`` indexable by video (memory-mapped where possible).

    The last file loaded is kept in this process until another is loaded or it changes on disk.

    Raises:
        VideoReadError: if the file cannot be read, holds no array (an ``.npz`` of several arrays needs one named
            ``videos``, a ``.pt`` dict the key ``videos``), or its array is neither 4-d nor 5-d.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise VideoReadError(f"{path}: cannot read ({error.strerror or error})") from error
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _cache:
        videos = _load(path)
        _cache.clear()
        _cache[key] = videos
    return _cache[key]

"""Decoding one video into uint8 RGB frames: PyAV for video files, Pillow for images, NumPy/torch for tensors."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import av
import numpy as np
import torch
from torch import Tensor

from torchmetrics_ext.io.clips import ClipSampling
from torchmetrics_ext.io.sources import IMAGE_EXTENSIONS, VideoReadError, VideoSource, _files, find_videos


def _load_tensor_file(path: Path, lazy: bool = False) -> Any:
    """The videos of a ``.npy`` (memory-mapped when ``lazy``), ``.npz`` (its one array or ``"videos"``) or ``.pt``
    (a tensor or a dict with ``"videos"``) file: something indexable by video."""
    try:
        if path.suffix == ".npy":
            videos = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                name = "videos" if "videos" in names else names[0] if len(names) == 1 else None
                if name is None:
                    raise VideoReadError(f"{path}: an .npz file needs one array or one named 'videos', got {names}")
                videos = archive[name]
        else:
            videos = torch.load(path, map_location="cpu", weights_only=True)
            videos = videos.get("videos") if isinstance(videos, dict) else videos
    except VideoReadError:
        raise
    except Exception as error:  # numpy, zipfile and torch raise many kinds for a corrupt file
        raise VideoReadError(f"{path}: not a readable tensor file ({type(error).__name__}: {error})") from error
    if not isinstance(videos, (np.ndarray, Tensor)) or videos.ndim not in (4, 5):
        seen = f"shape {tuple(videos.shape)}" if isinstance(videos, (np.ndarray, Tensor)) else type(videos).__name__
        raise VideoReadError(f"{path}: expected videos [N, T, H, W, C] or [N, T, C, H, W], got {seen}")
    return videos if videos.ndim == 5 else videos[None]


def _to_thw3(frames: Any, name: str) -> Tensor:
    """uint8 ``[T, H, W, 3]`` from ``[T, H, W, C]`` or ``[T, C, H, W]`` (C of 1 or 3), uint8 or float in [0, 1]."""
    frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, Tensor) else frames
    if frames.ndim != 4:
        raise VideoReadError(f"{name}: expected frames [T, H, W, C] or [T, C, H, W], got shape {tuple(frames.shape)}")
    if frames.shape[-1] not in (1, 3) and frames.shape[1] in (1, 3):
        frames = frames.permute(0, 2, 3, 1)
    if frames.shape[-1] not in (1, 3):
        raise VideoReadError(f"{name}: expected 1 or 3 channels, got shape {tuple(frames.shape)}")
    if frames.is_floating_point():
        if not ((frames >= 0) & (frames <= 1)).all():
            raise VideoReadError(f"{name}: floating point frames must lie in [0, 1]")
        frames = (frames * 255).round().to(torch.uint8)
    elif frames.dtype != torch.uint8:
        raise VideoReadError(f"{name}: expected uint8 or floating point frames, got {frames.dtype}")
    return frames.expand(*frames.shape[:3], 3).contiguous()


def _decode_video_file(path: Path, last: Optional[int]) -> list[np.ndarray]:
    """RGB frames 0..``last`` (all when None) of the first video stream, decoding no further than needed."""
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            for frame in container.decode(container.streams.video[0]):
                frames.append(frame.to_ndarray(format="rgb24"))
                if last is not None and len(frames) > last:
                    break
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as error:
        raise VideoReadError(f"{path}: cannot decode ({type(error).__name__}: {error})") from error
    if not frames:
        raise VideoReadError(f"{path}: no frame could be decoded")
    return frames


def _frame_count(source: VideoSource) -> int:
    """The number of frames, from the container's header when it has one, else by decoding."""
    if source.kind == "frames":
        return len(_files(source.path, IMAGE_EXTENSIONS))
    if source.kind == "tensor":
        return int(_load_tensor_file(source.path, lazy=True)[source.index].shape[0])
    try:
        with av.open(str(source.path)) as container:
            count = container.streams.video[0].frames if container.streams.video else 0
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as error:
        raise VideoReadError(f"{source}: cannot decode ({type(error).__name__}: {error})") from error
    return count if count > 0 else len(_decode_video_file(source.path, None))


def _read_frames(source: VideoSource, indices: Optional[Sequence[int]]) -> Tensor:
    """uint8 ``[T, H, W, 3]`` of the frames at ``indices`` (all when None)."""
    if source.kind == "video":
        frames = _decode_video_file(source.path, None if indices is None else max(indices))
        if indices is not None and max(indices) >= len(frames):
            raise VideoReadError(f"{source}: has {len(frames)} frames, the clip needs {max(indices) + 1}")
        chosen = frames if indices is None else [frames[i] for i in indices]
        return _to_thw3(np.stack(chosen), str(source))
    if source.kind == "tensor":
        video = _load_tensor_file(source.path, lazy=True)[source.index]
        chosen = video if indices is None else video[list(indices)]
        return _to_thw3(np.array(chosen) if isinstance(chosen, np.ndarray) else chosen, str(source))
    from PIL import Image, UnidentifiedImageError

    images = _files(source.path, IMAGE_EXTENSIONS)
    chosen = images if indices is None else [images[i] for i in indices]
    frames = []
    for image in chosen:
        try:
            with Image.open(image) as picture:
                frames.append(torch.from_numpy(np.array(picture.convert("RGB"))))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise VideoReadError(f"{image}: cannot decode the image ({error})") from error
    sizes = {tuple(frame.shape[:2]) for frame in frames}
    if len(sizes) > 1:
        raise VideoReadError(f"{source}: frames of different sizes {sorted(sizes)}")
    return torch.stack(frames)


def _as_source(source: Union[VideoSource, str, Path]) -> VideoSource:
    if isinstance(source, VideoSource):
        return source
    found = find_videos(source)
    if len(found) != 1:
        raise VideoReadError(f"{source}: holds {len(found)} videos; read them through find_videos")
    return found[0]


def read_video(source: Union[VideoSource, str, Path]) -> Tensor:
    """Every frame of a video as uint8 RGB ``[T, H, W, 3]``.

    Args:
        source: a :class:`VideoSource`, or the path of a video file, a frame folder or a one-video tensor file.

    Returns:
        The frames, uint8 ``[T, H, W, 3]``.

    Raises:
        VideoReadError: if the file is missing, empty, corrupt or not a video, naming it and the reason.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import read_video
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "one.npy", np.zeros((1, 5, 8, 6, 3), dtype=np.uint8))
        ...     read_video(Path(folder) / "one.npy").shape
        torch.Size([5, 8, 6, 3])

    """
    return _read_frames(_as_source(source), None)


def read_clip(source: Union[VideoSource, str, Path], sampling: ClipSampling) -> Tensor:
    """The clip ``sampling`` takes from a video, uint8 ``[T, 3, H, W]`` (the layout of the video metrics).

    A video file is decoded only up to the clip's last frame unless the start is random (then its length is read
    from the container, or counted).

    Args:
        source: a :class:`VideoSource`, or the path of one video.
        sampling: which frames: count, stride and start.

    Returns:
        The clip, uint8 ``[T, 3, H, W]``.

    Raises:
        VideoReadError: if the video cannot be read or is too short for the clip.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import ClipSampling, read_clip
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "one.npy", np.arange(10, dtype=np.uint8).reshape(1, 10, 1, 1, 1))
        ...     read_clip(Path(folder) / "one.npy", ClipSampling(num_frames=3, stride=2, start=1))[:, 0, 0, 0]
        tensor([1, 3, 5], dtype=torch.uint8)

    """
    source = _as_source(source)
    known = sampling.start != "random" and sampling.num_frames is not None
    total = None if known and source.kind == "video" else _frame_count(source)  # a video file: decode once
    indices = sampling.frame_indices(total, str(source))
    return _read_frames(source, indices).permute(0, 3, 1, 2).contiguous()

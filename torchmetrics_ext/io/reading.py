"""Decoding one video into uint8 RGB frames: PyAV for video files, Pillow for images, arrays for tensor files."""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np
import torch
from torch import Tensor
from PIL import Image, UnidentifiedImageError

from torchmetrics_ext.io.clips import ClipSampling
from torchmetrics_ext.io.errors import VideoReadError
from torchmetrics_ext.io.sources import IMAGE_EXTENSIONS, VideoSource, find_videos, image_files
from torchmetrics_ext.io.tensor_files import load_videos

_AV_ERRORS = (av.FFmpegError, OSError, ValueError, RuntimeError, EOFError)


class _ShortVideo(VideoReadError):
    """A video file that ended before a frame of the clip: ``frames`` is how many it has."""

    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def _reason(error: BaseException) -> str:
    """``Type: message`` of a library error."""
    return f"{type(error).__name__}: {str(error).strip()}"


def _to_thw3(frames: Union[np.ndarray, Tensor], name: str) -> Tensor:
    """uint8 ``[T, H, W, 3]`` from ``[T, H, W, C]`` or ``[T, C, H, W]`` (C of 1 or 3), uint8 or float in [0, 1].

    The channel axis is the last one when its size is 1 or 3, else the second; one channel is repeated to three.
    Floating point values become ``round(x * 255)``.
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 and frames.dtype.kind != "f":
            raise VideoReadError(f"{name}: expected uint8 or floating point frames in [0, 1], but got {frames.dtype}")
        frames = torch.from_numpy(np.array(frames))  # a copy: memory-mapped arrays are read-only
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise VideoReadError(f"{name}: expected uint8 or floating point frames in [0, 1], but got {frames.dtype}")
    if frames.ndim != 4:
        raise VideoReadError(f"{name}: expected frames [T, H, W, C] or [T, C, H, W], but got {list(frames.shape)}")
    if frames.shape[-1] not in (1, 3):
        if frames.shape[1] not in (1, 3):
            raise VideoReadError(
                f"{name}: expected 1 or 3 channels, on the last axis [T, H, W, C] or the second [T, C, H, W], but got"
                f" shape {list(frames.shape)}"
            )
        frames = frames.permute(0, 2, 3, 1)
    if frames.shape[0] == 0:
        raise VideoReadError(f"{name}: the video has 0 frames")
    if frames.is_floating_point():
        frames = frames.float() if frames.dtype in (torch.float16, torch.bfloat16) else frames
        if not bool(((frames >= 0) & (frames <= 1)).all()):  # NaN fails too
            low, high = float(frames.min()), float(frames.max())
            raise VideoReadError(f"{name}: floating point frames must lie in [0, 1], but range over [{low}, {high}]")
        frames = (frames * 255).round().to(torch.uint8)
    return frames.expand(*frames.shape[:3], 3).contiguous()


def _decode_video_file(path: Path, last: Optional[int]) -> Iterator[av.VideoFrame]:
    """The decoded frames of the first video stream, lazily, up to frame ``last`` (to the end when None).

    Stopping the iteration stops decoding: a clip at the start of a long video decodes only its first frames.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            for position, frame in enumerate(container.decode(container.streams.video[0])):
                yield frame
                if last is not None and position >= last:
                    return
    except VideoReadError:
        raise
    except _AV_ERRORS as error:
        raise VideoReadError(f"{path}: cannot decode ({_reason(error)})") from error


def _video_file_frames(path: Path, keep: Callable[[int], bool], last: Optional[int]) -> tuple[list[np.ndarray], int]:
    """The RGB frames whose position ``keep`` accepts, and how many frames were decoded (up to ``last``).

    Only the kept frames are converted to RGB and held in memory.
    """
    kept, count = [], 0
    try:
        for frame in _decode_video_file(path, last):
            if keep(count):
                kept.append(frame.to_ndarray(format="rgb24"))
            count += 1
    except VideoReadError:
        raise
    except _AV_ERRORS as error:  # the conversion to RGB
        raise VideoReadError(f"{path}: cannot decode frame {count} ({_reason(error)})") from error
    if count == 0:
        raise VideoReadError(f"{path}: no frame could be decoded (an empty or truncated video)")
    sizes = sorted({image.shape[:2] for image in kept})
    if len(sizes) > 1:
        raise VideoReadError(f"{path}: frames of different sizes {sizes} (the resolution changes)")
    return kept, count


def _video_file_count(path: Path) -> int:
    """The number of frames of a video file: from the container's header, else by counting the packets.

    Either can differ from the frames decoded; :func:`read_clip` corrects a count that is too high.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.frames > 0:
                return stream.frames
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except VideoReadError:
        raise
    except _AV_ERRORS as error:
        raise VideoReadError(f"{path}: cannot decode ({_reason(error)})") from error


def _read_image(path: Path) -> Tensor:
    """One frame image as uint8 RGB ``[H, W, 3]`` (Pillow: grayscale, palette and alpha images become RGB; 16-bit
    grayscale is scaled to 8 bits)."""
    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16") or image.mode == "I":
                gray = np.asarray(image).astype(np.float64)
                peak = 65535 if image.mode.startswith("I;16") or gray.max() > 255 else 255
                array = np.repeat((gray * (255 / peak)).round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=-1)
            else:
                array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:  # Pillow's errors of a bad file
        raise VideoReadError(f"{path}: cannot decode the image ({_reason(error)})") from error
    return torch.from_numpy(np.array(array))


def _images(source: VideoSource) -> list[Path]:
    try:
        return image_files(source.path)
    except OSError as error:
        raise VideoReadError(f"{source}: cannot list the frame images ({_reason(error)})") from error


def _frame_count(source: VideoSource) -> int:
    if source.kind == "frames":
        return len(_images(source))
    if source.kind == "tensor":
        return int(_tensor_video(source).shape[0])
    return _video_file_count(source.path)


def _tensor_video(source: VideoSource) -> Union[np.ndarray, Tensor]:
    videos = load_videos(source.path)
    if source.index >= len(videos):
        raise VideoReadError(f"{source}: the file holds {len(videos)} videos")
    return videos[source.index]


def _read_frames(source: VideoSource, indices: Optional[Sequence[int]]) -> Tensor:
    """uint8 ``[T, H, W, 3]`` of the frames at ``indices`` (every frame when None)."""
    if source.kind == "video":
        wanted = None if indices is None else set(indices)
        keep = (lambda position: True) if wanted is None else wanted.__contains__
        frames, count = _video_file_frames(source.path, keep, None if indices is None else max(indices))
        if indices is not None and max(indices) >= count:
            raise _ShortVideo(f"{source}: has {count} frames, the clip needs {max(indices) + 1}", count)
        return torch.from_numpy(np.stack(frames))  # the indices are increasing, as decoded
    if source.kind == "tensor":
        video = _tensor_video(source)
        if indices is not None and len(video) <= max(indices):
            raise VideoReadError(f"{source}: has {len(video)} frames, the clip needs {max(indices) + 1}")
        return _to_thw3(video if indices is None else video[list(indices)], str(source))
    images = _images(source)
    if not images:
        raise VideoReadError(f"{source}: no frame images {IMAGE_EXTENSIONS} in the folder")
    if indices is not None and len(images) <= max(indices):
        raise VideoReadError(f"{source}: has {len(images)} frames, the clip needs {max(indices) + 1}")
    frames = [_read_image(images[i]) for i in (range(len(images)) if indices is None else indices)]
    sizes = sorted({tuple(frame.shape[:2]) for frame in frames})
    if len(sizes) > 1:
        raise VideoReadError(f"{source}: frames of different sizes {sizes}")
    return torch.stack(frames)


def _as_source(source: Union[VideoSource, str, Path]) -> VideoSource:
    if isinstance(source, VideoSource):
        return source
    found = find_videos(source)
    if len(found) != 1:
        raise VideoReadError(f"{source}: holds {len(found)} videos; list them with find_videos and read each")
    return found[0]


def read_video(source: Union[VideoSource, str, Path]) -> Tensor:
    """Every frame of a video as uint8 RGB ``[T, H, W, 3]``.

    Video files are decoded with PyAV (the first video stream); frame folders are read in natural order (``frame2``
    before ``frame10``) with Pillow and must hold images of one size; a tensor file gives its video at
    ``source.index``, stored as uint8 or floating point in [0, 1] (``round(x * 255)``), ``[T, H, W, C]`` or
    ``[T, C, H, W]`` with C of 3 or 1 (repeated to 3).

    Args:
        source: a :class:`VideoSource`, or the path of a video file, a frame folder or a one-video tensor file.

    Returns:
        The frames, uint8 ``[T, H, W, 3]``.

    Raises:
        VideoReadError: if the video is missing, empty, corrupt, of frames of mixed sizes, or not a video,
            naming the file and the reason.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from torchmetrics_ext.io import read_video
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "one.npy", np.ones((1, 5, 3, 8, 6), dtype=np.float32))  # [N, T, C, H, W]
        ...     video = read_video(Path(folder) / "one.npy")
        >>> video.shape, video.dtype, video.max().item()
        (torch.Size([5, 8, 6, 3]), torch.uint8, 255)

    """
    return _read_frames(_as_source(source), None)


def read_clip(source: Union[VideoSource, str, Path], sampling: ClipSampling) -> Tensor:
    """The clip ``sampling`` takes from a video, uint8 ``[T, 3, H, W]`` (the layout of the video metrics).

    A video file is decoded only up to the clip's last frame (with a random start, its length is read from the
    container's header or counted from its packets first), and only the clip's frames are converted to RGB and
    kept; a frame folder reads only the clip's images; a tensor file indexes its memory-mapped array.

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
        ...     clip = read_clip(Path(folder) / "one.npy", ClipSampling(num_frames=3, stride=2, start=1))
        >>> clip.shape, clip[:, 0, 0, 0].tolist()
        (torch.Size([3, 3, 1, 1]), [1, 3, 5])

    """
    source = _as_source(source)
    name = str(source)
    if source.kind == "video" and sampling.num_frames is None:  # every stride-th frame: decode to the end once
        start, stride = (0 if sampling.start == "random" else sampling.start), sampling.stride
        frames, count = _video_file_frames(
            source.path, lambda position: position >= start and (position - start) % stride == 0, None
        )
        sampling.frame_indices(count, name)  # too short: the error of the other kinds
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    fixed = sampling.start != "random"
    total = None if fixed and source.kind == "video" else _frame_count(source)
    indices = sampling.frame_indices(total, name)
    try:
        frames = _read_frames(source, indices)
    except _ShortVideo as short:
        if fixed or short.frames >= total:
            sampling.frame_indices(short.frames, name)  # raises the error that says what the clip needs
            raise VideoReadError(str(short)) from None
        # the header promised more frames than the file has: draw again among the frames that exist
        frames = _read_frames(source, sampling.frame_indices(short.frames, name))
    return frames.permute(0, 3, 1, 2).contiguous()

"""Small videos the tests encode themselves: video files with PyAV, frame folders with Pillow.

Usage::

    frames = smooth_frames(12, 32, 48)                      # uint8 [T, H, W, 3]
    write_video(tmp_path / "a.mp4", frames, "libx264")      # codecs: the keys of CODECS
    write_frame_folder(tmp_path / "frames" / "a", frames)   # frame_0.png, frame_1.png, ...
"""

from pathlib import Path

import av
import numpy as np
from PIL import Image

# codec -> (container suffix, pixel format); all are in PyAV's wheels. libx264 needs even sizes; the others take odd.
CODECS = {
    "libx264": (".mp4", "yuv420p"),
    "mpeg4": (".avi", "yuv420p"),
    "libvpx-vp9": (".webm", "yuv420p"),
    "mjpeg": (".avi", "yuvj420p"),
    "gif": (".gif", "rgb8"),
}

# high quality, so that lossy round trips stay close to what was written
_QUALITY = {"libx264": {"crf": "12"}, "mpeg4": {"qscale": "2"}, "mjpeg": {"qscale": "2"}}


def smooth_frames(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``: smooth gradients drifting over time (what lossy codecs keep well)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, 3)
    video = [
        np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (xs + 0.5 * ys) + phase[c] + 0.3 * t) for c in range(3)], axis=-1)
        for t in range(frames)
    ]
    return (np.stack(video) * 255).round().astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264", fps: int = 8) -> Path:
    """Encode uint8 ``[T, H, W, 3]`` frames into ``path`` with ``codec`` (a key of ``CODECS``) at ``fps``.

    The container is chosen by the suffix of ``path`` (``CODECS[codec][0]`` is one that works). Returns ``path``.
    """
    _, pixel_format = CODECS[codec]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        if codec == "libvpx-vp9":
            stream.bit_rate = 4_000_000
        stream.options = _QUALITY.get(codec, {})
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray, pattern: str = "frame_{}.png") -> Path:
    """Write uint8 ``[T, H, W, 3]`` frames as ``frame_0.png``, ``frame_1.png``, ... in ``folder`` (created).

    ``pattern`` names frame ``i``; its suffix picks the format (``"img{}.jpg"`` for JPEG). Returns ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(image)).save(folder / pattern.format(index))
    return folder

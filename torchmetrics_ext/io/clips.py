"""Which frames of a video make its clip: the clip protocol of the command line (16 frames, stride, start)."""

import random
from dataclasses import dataclass
from typing import Optional, Union

from torchmetrics_ext.io.errors import VideoReadError


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClipSampling:
    """``num_frames`` frames, ``stride`` apart, from a fixed first frame or a random one.

    A random start is drawn uniformly among the starts where the clip fits, by ``random.Random(f"{seed}:{source}")``:
    it depends on the seed and the video's name (``str(source)``, the path as given) only, so it is the same in every
    run, whatever the order of the videos or the worker process that reads them, and differs between videos.

    Args:
        num_frames: frames per clip; None for every ``stride``-th frame from ``start`` to the end (a ``"random"``
            start is then 0).
        stride: take every ``stride``-th frame.
        start: the index of the first frame, or ``"random"``.
        seed: the seed of the random starts.

    Raises:
        ValueError: on a ``num_frames`` or ``stride`` that is not a positive int, a ``start`` that is neither an int
            >= 0 nor ``"random"``, or a ``seed`` that is not an int.

    Example:
        >>> from torchmetrics_ext.io import ClipSampling
        >>> ClipSampling(num_frames=4, stride=2, start=1).frame_indices(20)
        [1, 3, 5, 7]
        >>> ClipSampling(num_frames=None, stride=3).frame_indices(10)
        [0, 3, 6, 9]
        >>> sampling = ClipSampling(num_frames=4, start="random", seed=1)
        >>> sampling.frame_indices(100, "a.mp4") == sampling.frame_indices(100, "a.mp4")
        True

    """

    num_frames: Optional[int] = 16
    stride: int = 1
    start: Union[int, str] = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_frames is not None and not (_is_int(self.num_frames) and self.num_frames >= 1):
            raise ValueError(f"Argument `num_frames` expected a positive int or None but got {self.num_frames!r}.")
        if not (_is_int(self.stride) and self.stride >= 1):
            raise ValueError(f"Argument `stride` expected a positive int but got {self.stride!r}.")
        if self.start != "random" and not (_is_int(self.start) and self.start >= 0):
            raise ValueError(f"Argument `start` expected an int >= 0 or 'random' but got {self.start!r}.")
        if not _is_int(self.seed):
            raise ValueError(f"Argument `seed` expected an int but got {self.seed!r}.")

    @property
    def span(self) -> Optional[int]:
        """Frames from the clip's first to its last, both included: ``(num_frames - 1) * stride + 1``."""
        return None if self.num_frames is None else (self.num_frames - 1) * self.stride + 1

    def frame_indices(self, total: Optional[int], source: str = "") -> list[int]:
        """Indices of the clip's frames in a video of ``total`` frames.

        Args:
            total: the number of frames of the video; None when unknown, only for a fixed start and ``num_frames``
                (the reader then finds out whether the video is long enough).
            source: the video's name: the random start depends on it, and the error names it.

        Raises:
            VideoReadError: if the video is too short for the clip.
            ValueError: if ``total`` is None while the clip needs it.
        """
        name = f"{source}: " if source else ""
        if self.num_frames is None:
            start = 0 if self.start == "random" else self.start
            if total is None:
                raise ValueError("`frame_indices` needs the number of frames to take every frame of a video.")
            if total <= start:
                raise VideoReadError(f"{name}has {total} frames, the clip starts at frame {start}")
            return list(range(start, total, self.stride))
        if self.start == "random":
            if total is None:
                raise ValueError("`frame_indices` needs the number of frames to draw a random start.")
            if total < self.span:
                raise VideoReadError(
                    f"{name}has {total} frames, the clip needs {self.span} = ({self.num_frames} - 1) * {self.stride}"
                    " + 1"
                )
            start = random.Random(f"{self.seed}:{source}").randrange(total - self.span + 1)
        else:
            start = self.start
            if total is not None and total < start + self.span:
                raise VideoReadError(
                    f"{name}has {total} frames, the clip needs {start + self.span} = start {start} +"
                    f" ({self.num_frames} - 1) * {self.stride} + 1"
                )
        return [start + i * self.stride for i in range(self.num_frames)]

"""Which frames of a video make its clip: the clip protocol of the command line (fvd2048_16f and the like)."""

import random
from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class ClipSampling:
    """``num_frames`` frames, ``stride`` apart, from a fixed or a random first frame.

    The random start of a video depends on ``seed`` and the video's name only: the same in every run, whatever the
    order or the worker process that reads it.

    Args:
        num_frames: frames per clip; None for every frame from the start.
        stride: take every ``stride``-th frame.
        start: the first frame, or ``"random"`` for a uniform draw among the starts that fit.
        seed: the seed of the random starts.

    Raises:
        ValueError: on a non-positive ``num_frames`` or ``stride``, or a ``start`` that is neither an index nor
            ``"random"``.

    Example:
        >>> from torchmetrics_ext.io import ClipSampling
        >>> ClipSampling(num_frames=4, stride=2, start=1).frame_indices(20)
        [1, 3, 5, 7]

    """

    num_frames: Optional[int] = 16
    stride: int = 1
    start: Union[int, str] = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_frames", "stride"):
            value = getattr(self, name)
            if (value is not None or name == "stride") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"Argument `{name}` expected a positive int but got {value!r}.")
        if self.start != "random" and (
            isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0
        ):
            raise ValueError(f"Argument `start` expected a frame index >= 0 or 'random' but got {self.start!r}.")

    def frame_indices(self, total: Optional[int], source: str = "") -> list[int]:
        """Indices of the clip's frames in a video of ``total`` frames (None: unknown, for a fixed clip).

        Raises:
            VideoReadError: if the video is too short for the clip.
        """
        from torchmetrics_ext.io.sources import VideoReadError

        if self.num_frames is None:
            start = 0 if self.start == "random" else self.start
            if total is None or total <= start:
                raise VideoReadError(f"{source}: has {total} frames, the clip starts at frame {start}")
            return list(range(start, total, self.stride))
        span = (self.num_frames - 1) * self.stride + 1
        if self.start == "random":
            if total < span:
                raise VideoReadError(f"{source}: has {total} frames, the clip needs {span}")
            start = random.Random(f"{self.seed}:{source}").randrange(total - span + 1)
        else:
            start = self.start
            if total is not None and total < start + span:
                raise VideoReadError(
                    f"{source}: has {total} frames, the clip needs {start + span} = start {start} + ({self.num_frames}"
                    f" - 1) * {self.stride} + 1"
                )
        return [start + i * self.stride for i in range(self.num_frames)]

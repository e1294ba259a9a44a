"""Optical flow for the warping error: torchvision's RAFT behind the ``flow(frames_a, frames_b)`` interface.

torchvision's RAFT wants images in [-1, 1] whose height and width are multiples of 8, and returns NaN (or fails)
below about 128x128 pixels, where its correlation pyramid runs out of pixels. :class:`RAFTFlow` takes frames in
[0, 1] of any size, upsamples the small ones, pads to a multiple of 8, and gives back the flow in the frames' own
pixels.
"""

import math
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from torchmetrics_ext.utilities.modules import _freeze

RAFT_MODELS = ("raft_large", "raft_small")
RAFT_MIN_SIZE = 128  # the 1/8 feature map must survive RAFT's 3 halvings of the correlation pyramid


class RAFTFlow(nn.Module):
    """Optical flow from ``frames_a`` to ``frames_b`` with a torchvision RAFT, in the frames' pixels.

    The frames are mapped to [-1, 1]; when the shorter side is under 128 pixels they are upsampled (bilinear) so that
    it is 128, and padded (replicating the border) to a multiple of 8 evenly on both sides. RAFT runs in float32 in
    eval mode without autocast or gradients, ``batch_size`` pairs at a time; the last of its refinements is cropped
    back, resized to the frames' size and its vectors rescaled by the same factors.

    The flow follows torchvision's convention: channel 0 is the x (width) displacement, channel 1 the y one, from a
    pixel of ``frames_a`` to where it moved in ``frames_b``.

    Args:
        model: a torchvision ``RAFT`` (``raft_large(...)`` or ``raft_small(...)``); it is put in eval mode and frozen.
        num_flow_updates: the number of RAFT's recurrent refinements (torchvision's default is 12).
        batch_size: the number of frame pairs given to RAFT at once.

    Raises:
        ValueError: on arguments of the wrong type or value; in ``forward``, on frames that are not two float tensors
            ``[N, 3, H, W]`` of one shape.

    Example:
        >>> import torch
        >>> from torchvision.models.optical_flow import raft_small
        >>> from torchmetrics_ext.models import RAFTFlow
        >>> _ = torch.manual_seed(0)
        >>> flow = RAFTFlow(raft_small(weights=None), num_flow_updates=2)  # random weights: a shape demo only
        >>> flow(torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)).shape
        torch.Size([1, 2, 40, 56])

    """

    def __init__(self, model: nn.Module, num_flow_updates: int = 12, batch_size: int = 16) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"Argument `model` expected a torchvision RAFT module, but got {type(model).__name__}.")
        for name, value in (("num_flow_updates", num_flow_updates), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Argument `{name}` expected to be a positive `int` but got {value!r}.")
        self.model = _freeze(model)
        self.num_flow_updates = num_flow_updates
        self.batch_size = batch_size
        self.eval()

    def train(self, mode: bool = True) -> "RAFTFlow":
        """Keep RAFT in eval mode whatever a parent module asks: its BatchNorm statistics are part of the weights."""
        return super().train(False)

    def forward(self, frames_a: Tensor, frames_b: Tensor) -> Tensor:
        """The float32 flow ``[N, 2, H, W]`` from ``frames_a`` to ``frames_b``, float ``[N, 3, H, W]`` in [0, 1]."""
        for name, frames in (("frames_a", frames_a), ("frames_b", frames_b)):
            if (
                not isinstance(frames, Tensor)
                or frames.ndim != 4
                or frames.shape[1] != 3
                or not frames.is_floating_point()
            ):
                seen = (
                    f"shape {list(frames.shape)} {frames.dtype}"
                    if isinstance(frames, Tensor)
                    else type(frames).__name__
                )
                raise ValueError(f"Argument `{name}` expected float frames [N, 3, H, W] in [0, 1], but got {seen}.")
        if frames_a.shape != frames_b.shape:
            raise ValueError(
                f"Arguments `frames_a` and `frames_b` expected one shape, but got {list(frames_a.shape)} and"
                f" {list(frames_b.shape)}."
            )
        height, width = frames_a.shape[-2:]
        scale = max(1.0, RAFT_MIN_SIZE / min(height, width))
        size = (math.ceil(height * scale), math.ceil(width * scale))
        device = next(self.model.parameters()).device
        flows = []
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            for a, b in zip(frames_a.split(self.batch_size), frames_b.split(self.batch_size)):
                a, b = (_raft_input(x.to(device), size) for x in (a, b))
                flow = self.model(a, b, num_flow_updates=self.num_flow_updates)[-1]  # the last refinement
                flows.append(_crop_and_resize_flow(flow, size, (height, width)))
        return torch.cat(flows).to(frames_a.device)


def _padding(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that brings ``size`` to multiples of 8, split evenly as RAFT's own padder."""
    pad_h, pad_w = (-size[0]) % 8, (-size[1]) % 8
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def _raft_input(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Frames in [0, 1] to RAFT's input: float32 in [-1, 1], resized to ``size``, padded to multiples of 8."""
    x = frames.float() * 2 - 1
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return F.pad(x, _padding(size), mode="replicate")


def _crop_and_resize_flow(flow: Tensor, size: tuple[int, int], target: tuple[int, int]) -> Tensor:
    """Undo ``_raft_input`` on a flow: crop the padding, resize to ``target``, rescale the vectors to its pixels."""
    left, _, top, _ = _padding(size)
    flow = flow[:, :, top : top + size[0], left : left + size[1]]
    if size == target:
        return flow
    flow = F.interpolate(flow, size=target, mode="bilinear", align_corners=False)
    factors = torch.tensor([target[1] / size[1], target[0] / size[0]], dtype=flow.dtype, device=flow.device)
    return flow * factors.view(1, 2, 1, 1)


def load_raft(
    name: str = "raft_large",
    weights: Optional[Union[str, Path]] = None,
    num_flow_updates: int = 12,
    batch_size: int = 16,
    progress: bool = True,
) -> RAFTFlow:
    """Build a frozen :class:`RAFTFlow` from torchvision's RAFT and its pretrained weights.

    Args:
        name: ``"raft_large"`` or ``"raft_small"``.
        weights: ``None`` for the model's ``DEFAULT`` weights of torchvision (``Raft_Large_Weights.C_T_SKHT_V2``,
            ``Raft_Small_Weights.C_T_V2``), a member of its weights enum or that member's name (``"C_T_V2"``),
            downloaded once into torch hub's checkpoint folder with their hash checked; or the path of a state dict
            saved from a torchvision RAFT of the same size. Never random weights: for those, build
            ``RAFTFlow(raft_small(weights=None))`` yourself.
        num_flow_updates: the number of RAFT's recurrent refinements.
        batch_size: the number of frame pairs given to RAFT at once.
        progress: whether to show a progress bar while downloading.

    Returns:
        The frozen :class:`RAFTFlow`, on the CPU.

    Raises:
        ValueError: on an unknown ``name``, weights of the other model, a weights name that is neither a member of
            the enum nor an existing file, or a file that does not hold the model's state dict.
        RuntimeError: if the weights cannot be downloaded (offline, say); the message says what to download and
            where to put it.

    Example:
        >>> from torchmetrics_ext.models.raft import RAFT_MODELS
        >>> RAFT_MODELS
        ('raft_large', 'raft_small')

    """
    from torchvision.models import optical_flow

    if name not in RAFT_MODELS:
        raise ValueError(f"Argument `name` expected to be one of {RAFT_MODELS} but got {name!r}.")
    builder = getattr(optical_flow, name)
    enum = optical_flow.Raft_Large_Weights if name == "raft_large" else optical_flow.Raft_Small_Weights
    if weights is None:
        weights = enum.DEFAULT
    if isinstance(weights, str) and weights in enum.__members__:
        weights = enum[weights]
    if isinstance(weights, enum):
        from torchmetrics_ext.models.weights import build_with_torchvision_weights

        otherwise = "or pass the path of a saved state dict as `weights`"
        model = build_with_torchvision_weights(builder, name, weights, otherwise, progress=progress)
    elif isinstance(weights, (str, Path)) and Path(weights).is_file():
        model = builder(weights=None)
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state_dict)
        except (RuntimeError, TypeError, AttributeError) as error:
            raise ValueError(
                f"Argument `weights` expected a state dict of torchvision's {name}, but {weights} does not load:"
                f" {error}"
            ) from error
    else:
        raise ValueError(
            f"Argument `weights` expected `None`, a member of {enum.__name__} or its name {list(enum.__members__)},"
            f" or the path of a state dict file, but got {weights!r}."
        )
    return RAFTFlow(model, num_flow_updates=num_flow_updates, batch_size=batch_size)

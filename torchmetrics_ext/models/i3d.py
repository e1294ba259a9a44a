"""Inflated Inception-v1 (I3D) in plain PyTorch: the Kinetics-400 backbone of the Fréchet Video Distance.

The module and parameter names follow the layout of the public ``pytorch-i3d`` port (also used by TATS and
cd-fvd), so ``i3d_pretrained_400.pt`` loads as it is with ``load_state_dict(strict=True)``. Convolutions and max
pools pad like TensorFlow's ``"SAME"``: the padding is worked out from the input size in ``forward``, and the
extra pixel of an odd total goes after (bottom, right, later frames).

Sizes through the network: three stride-2 stages act on time (``Conv3d_1a_7x7``, ``MaxPool3d_4a_3x3``,
``MaxPool3d_5a_2x2``) and five on height and width (those three plus ``MaxPool3d_2a_3x3`` and
``MaxPool3d_3a_3x3``). With "SAME" padding each divides its size by the stride, rounding up, so ``Mixed_5c``
sees ``ceil(T / 8)`` frames and ``ceil(H / 32) x ceil(W / 32)`` pixels. The average pool that follows has no
padding and a (2, 7, 7) window: it needs ``ceil(T / 8) >= 2`` (T >= 9) and ``ceil(H / 32) >= 7`` (H >= 193).
A 16-frame 224x224 clip, the FVD protocol, leaves one time step and one pixel after the pool.
"""

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InceptionI3d", "TorchScriptI3d", "load_i3d"]

Triple = tuple[int, int, int]
_FrozenT = TypeVar("_FrozenT", bound="_Frozen")

# Output channels of each Inception block's branches, in the order
# (b0 1x1, b1a 1x1 reduce, b1b 3x3, b2a 1x1 reduce, b2b 3x3, b3b 1x1 after the 3x3 max pool).
_MIXED_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) of one dimension that makes the output ``ceil(size / stride)`` long, as TensorFlow.

    Example:
        >>> _same_padding(224, kernel=7, stride=2)  # 5 in all, the odd one after
        (2, 3)
        >>> _same_padding(7, kernel=2, stride=2)
        (0, 1)
    """
    remainder = size % stride
    total = max(kernel - (stride if remainder == 0 else remainder), 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: Triple, stride: Triple) -> Tensor:
    """Zero-pad ``x`` [B, C, T, H, W] so that a (kernel, stride) window gives ``ceil(size / stride)`` outputs."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):  # F.pad wants W first
        pads.extend(_same_padding(size, k, s))
    return F.pad(x, pads)


class _Unit3d(nn.Module):
    """A "SAME"-padded 3D convolution, then BatchNorm and ReLU (the logits unit: a biased convolution alone)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        bn_eps: float = 1e-5,
        head: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.head = kernel, stride, head
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=head)
        if not head:
            self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.head else F.relu(self.bn(x))


class _MaxPool3dSame(nn.MaxPool3d):
    """Max pool with "SAME" zero padding.

    Zeros instead of TensorFlow's ignored border change nothing here: every pool follows a ReLU, so its input is
    non-negative and a zero never wins over a real value.
    """

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__(kernel, stride=stride, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))


class _Mixed(nn.Module):
    """Inception block: four parallel branches concatenated along the channels."""

    def __init__(self, in_channels: int, channels: Sequence[int], bn_eps: float) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = channels
        self.b0 = _Unit3d(in_channels, c0, bn_eps=bn_eps)
        self.b1a = _Unit3d(in_channels, c1a, bn_eps=bn_eps)
        self.b1b = _Unit3d(c1a, c1b, (3, 3, 3), bn_eps=bn_eps)
        self.b2a = _Unit3d(in_channels, c2a, bn_eps=bn_eps)
        self.b2b = _Unit3d(c2a, c2b, (3, 3, 3), bn_eps=bn_eps)
        self.b3a = _MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = _Unit3d(in_channels, c3b, bn_eps=bn_eps)
        self.out_channels = c0 + c1b + c2b + c3b

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class _Frozen(nn.Module):
    """A module that can be frozen: then it stays in eval mode whatever ``train()`` its parent calls, and none of
    its parameters requires a gradient."""

    frozen: bool = False

    def freeze(self: _FrozenT) -> _FrozenT:
        """Switch to eval mode for good and stop gradients to the parameters; returns the module itself."""
        self.requires_grad_(False)
        self.frozen = True
        return self.train(False)

    def train(self: _FrozenT, mode: bool = True) -> _FrozenT:
        return super().train(mode and not self.frozen)


def _check_video(x: Tensor, in_channels: int) -> None:
    if not isinstance(x, Tensor) or x.ndim != 5:
        seen = f"{x.ndim} dimensions" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"Argument `x` expected to be a tensor with 5 dimensions [batch_size, channels, frames, height, width],"
            f" but got {seen}."
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"Argument `x` expected {in_channels} channels in dimension 1 ([B, C, T, H, W]), but got shape"
            f" {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise ValueError(f"Argument `x` expected to be a floating point tensor scaled to [-1, 1], but got {x.dtype}.")


class InceptionI3d(_Frozen):
    """I3D (Carreira and Zisserman, CVPR 2017): Inception-v1 inflated to 3D, as used by the Fréchet Video Distance.

    ``forward`` returns the class logits averaged over the positions left after the final average pool: for the
    FVD input (224x224, at least 9 frames) one pixel and ``ceil(T / 8) - 1`` time steps, so the result is the
    "400 Kinetics-400 logits averaged over time" the FVD is computed from. Random weights unless loaded; see
    :func:`load_i3d` for ``i3d_pretrained_400.pt``.

    ``x`` is a float tensor [B, C, T, H, W] scaled to [-1, 1] (the range is not checked), with T >= 9 and
    H, W >= 193: the (2, 7, 7) average pool needs two time steps and 7x7 pixels after the network's strides of
    8 in time and 32 in space. The FVD protocol resizes frames to 224x224.

    Args:
        num_classes: Size of the output, 400 for the Kinetics-400 weights.
        in_channels: Channels of the input video, 3 for RGB.
        bn_eps: BatchNorm epsilon; ``i3d_pretrained_400.pt`` is meant for 1e-5 (the ``pytorch-i3d`` port's own
            default, 1e-3, gives other features with the same weights).
        dropout: Probability of zeroing a pooled feature before the logits, in training mode only.
        frozen: Freeze at once (see :meth:`freeze`): eval mode for good, no gradients to the parameters.

    Raises:
        ValueError: If an argument is out of range, or ``forward`` gets a video of the wrong shape or dtype.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.models import InceptionI3d
        >>> _ = torch.manual_seed(0)
        >>> model = InceptionI3d(frozen=True)
        >>> video = torch.rand(1, 3, 9, 193, 193) * 2 - 1  # [B, C, T, H, W] in [-1, 1]
        >>> model(video).shape
        torch.Size([1, 400])
        >>> model.train().training  # a frozen model ignores train()
        False
    """

    MIN_FRAMES = 9  # ceil(T / 8) >= 2 for the average pool's 2 frames
    MIN_SIZE = 193  # ceil(H / 32) >= 7 for its 7x7 pixels
    FEATURE_DIM = 1024  # channels of Mixed_5c, the input of the logits
    _TRUNK = (  # the modules before the average pool, in order; their names are the state-dict prefixes
        ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b")
        + ("Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f")
        + ("MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")
    )

    def __init__(
        self,
        num_classes: int = 400,
        in_channels: int = 3,
        bn_eps: float = 1e-5,
        dropout: float = 0.5,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Argument `{name}` expected to be a positive `int` but got {value!r}.")
        if not (isinstance(bn_eps, (int, float)) and bn_eps > 0):
            raise ValueError(f"Argument `bn_eps` expected to be a positive float but got {bn_eps!r}.")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"Argument `dropout` expected to be a float in [0, 1) but got {dropout!r}.")
        self.num_classes, self.in_channels = num_classes, in_channels

        self.Conv3d_1a_7x7 = _Unit3d(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = _MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3d(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = _Unit3d(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = _MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, branch_channels in _MIXED_CHANNELS.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = _MaxPool3dSame((3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = _MaxPool3dSame((2, 2, 2), (2, 2, 2))
            block = _Mixed(channels, branch_channels, bn_eps)
            self.add_module(name, block)
            channels = block.out_channels
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.logits = _Unit3d(channels, num_classes, head=True)
        if frozen:
            self.freeze()

    def _pooled(self, x: Tensor) -> Tensor:
        """Mixed_5c, average-pooled: [B, C, T, H, W] -> [B, 1024, ceil(T/8) - 1, ceil(H/32) - 6, ceil(W/32) - 6].

        No input checks: shapes below the minimum fail in the average pool.
        """
        for name in self._TRUNK:
            x = getattr(self, name)(x)
        return self.avg_pool(x)

    def _check_input(self, x: Tensor) -> None:
        _check_video(x, self.in_channels)
        frames, height, width = x.shape[2:]
        if frames < self.MIN_FRAMES:
            raise ValueError(
                f"Argument `x` expected at least {self.MIN_FRAMES} frames (dimension 2 of [B, C, T, H, W]), but got"
                f" {frames}: I3D's strides shrink time by 8 and its final average pool needs 2 steps."
            )
        if min(height, width) < self.MIN_SIZE:
            raise ValueError(
                f"Argument `x` expected height and width of at least {self.MIN_SIZE} (FVD resizes to 224x224), but"
                f" got {height}x{width}: I3D's strides shrink them by 32 and its final average pool needs 7x7."
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """The pooled Mixed_5c features [B, 1024] averaged over time (and space beyond 224x224): the logits' input.

        Because the logits layer is linear, ``forward(x)`` equals it applied to these features (in eval mode).
        """
        self._check_input(x)
        return self._pooled(x).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, num_classes] of ``x`` [B, C, T, H, W] in [-1, 1], averaged over time."""
        self._check_input(x)
        logits = self.logits(self.dropout(self._pooled(x)))  # [B, num_classes, T', H', W']
        return logits.mean(dim=(2, 3, 4))


class TorchScriptI3d(_Frozen):
    """A TorchScript I3D such as StyleGAN-V's ``i3d_torchscript.pt``, called the way the FVD needs it.

    ``forward(x)`` returns ``detector(x, rescale=False, resize=False, return_features=True)``: ``x`` must already
    be what :class:`InceptionI3d` takes, [B, 3, T, 224, 224] scaled to [-1, 1], and the result is the detector's
    400-d features [B, 400]. Frozen from the start.

    Args:
        detector: The loaded TorchScript module (``torch.jit.load``).
        in_channels: Channels the detector expects.

    Example:
        >>> import torch
        >>> class Detector(torch.nn.Module):
        ...     def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
        ...                 return_features: bool = False) -> torch.Tensor:
        ...         return x.mean(dim=(1, 3, 4))
        >>> wrapper = TorchScriptI3d(Detector())  # any module with this signature; load_i3d passes a scripted one
        >>> wrapper(torch.zeros(2, 3, 10, 224, 224)).shape
        torch.Size([2, 10])
    """

    num_features = 400  # the Kinetics-400 logits StyleGAN-V's detector returns with return_features=True

    def __init__(self, detector: nn.Module, in_channels: int = 3) -> None:
        super().__init__()
        self.detector = detector
        self.in_channels = in_channels
        self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        _check_video(x, self.in_channels)
        return self.detector(x, rescale=False, resize=False, return_features=True)


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives hold ``<name>/constants.pkl`` and ``<name>/code/``; ``torch.save`` files have neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        entries = [name.split("/")[1:] for name in archive.namelist()]  # drop the archive's own folder
    return any(parts == ["constants.pkl"] or parts[:1] == ["code"] for parts in entries)


def _listing(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def _check_layout(state_dict: Mapping[str, Tensor], model: nn.Module, path: Path) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key} {tuple(state_dict[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state_dict and isinstance(state_dict[key], Tensor) and state_dict[key].shape != value.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"wrong shapes: {_listing(mismatched)}")
    if problems:
        raise ValueError(
            f"Argument `path` expected a state dict in the pytorch-i3d layout of `InceptionI3d` (as"
            f" i3d_pretrained_400.pt), but {path} has {'; '.join(problems)}."
        )


def load_i3d(
    path: Union[str, Path],
    num_classes: int = 400,
    bn_eps: float = 1e-5,
    map_location: Union[str, torch.device] = "cpu",
) -> Union[InceptionI3d, TorchScriptI3d]:
    """Load a frozen I3D from a local file: a ``torch.save`` state dict or a TorchScript archive.

    A state dict (``i3d_pretrained_400.pt`` of TATS and cd-fvd) is loaded strictly into :class:`InceptionI3d`.
    A TorchScript archive (StyleGAN-V's ``i3d_torchscript.pt``), recognised by the ``constants.pkl`` and ``code/``
    entries of its zip file, is wrapped in :class:`TorchScriptI3d`. Either way the result maps [B, 3, T, 224, 224]
    in [-1, 1] to [B, 400] and is frozen in eval mode. Nothing is downloaded.

    Args:
        path: The weights file.
        num_classes: Size of the logits of a state dict's model.
        bn_eps: BatchNorm epsilon of a state dict's model; 1e-5 for ``i3d_pretrained_400.pt``.
        map_location: Device the tensors are loaded to.

    Returns:
        The frozen model, in eval mode.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file is neither format, or a state dict whose keys or shapes differ from InceptionI3d's.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from torchmetrics_ext.models import InceptionI3d, load_i3d
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "i3d.pt"
        ...     torch.save(InceptionI3d().state_dict(), path)
        ...     model = load_i3d(path)
        >>> type(model).__name__, model.training
        ('InceptionI3d', False)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Argument `path` expected an I3D weights file, but {path} does not exist. Put i3d_pretrained_400.pt"
            " (a state dict) or i3d_torchscript.pt (TorchScript) there, or pass the path of your copy."
        )
    if _is_torchscript_archive(path):
        return TorchScriptI3d(torch.jit.load(str(path), map_location=map_location))
    try:
        state_dict = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # anything torch.load cannot read: say which file and what was expected
        raise ValueError(
            f"Argument `path` expected a state dict saved with torch.save or a TorchScript archive, but {path} could"
            f" not be read as either ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(
            f"Argument `path` expected a state dict (a mapping of names to tensors), but {path} holds a"
            f" {type(state_dict).__name__}."
        )
    model = InceptionI3d(num_classes=num_classes, bn_eps=bn_eps)
    _check_layout(state_dict, model, path)
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location).freeze()


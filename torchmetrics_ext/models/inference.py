"""How a frozen feature network runs: precision, memory layout, cuDNN autotuning, ``torch.compile`` and CUDA graphs.

The defaults reproduce the published protocol: exact float32 (TF32 off for convolutions and matrix products, which
PyTorch otherwise allows for cuDNN convolutions) in eager mode. Each speed-up is switched on separately, so that its
effect on the speed and on the metric can be measured (``benchmarks/i3d_throughput.py``).
"""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torchmetrics.utilities import rank_zero_warn

_PRECISIONS = ("32-true", "tf32", "bf16-mixed")
# torch >= 2.9 sets TF32 per backend with `fp32_precision`; reading the legacy `allow_tf32` flags after the new
# settings were used is an error there, so only one of the two APIs is touched
_FP32_PRECISION_API = all(
    hasattr(backend, "fp32_precision")
    for backend in (
        getattr(torch.backends.cudnn, "conv", None),
        torch.backends.cuda.matmul,
        getattr(torch.backends.mkldnn, "matmul", None),
    )
)


@contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """Allow or forbid TF32 in convolutions and matrix products, and put the caller's settings back after."""
    if _FP32_PRECISION_API:
        # the matmul backends are set together, through the public setter, so that the generic getter
        # `torch.get_float32_matmul_precision()` (Inductor reads it) stays defined inside
        backends = (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul, torch.backends.cudnn.conv)
        saved = [backend.fp32_precision for backend in backends]
        try:
            torch.set_float32_matmul_precision("high" if allowed else "highest")
            torch.backends.cudnn.conv.fp32_precision = "tf32" if allowed else "ieee"
            yield
        finally:
            for backend, value in zip(backends, saved):
                backend.fp32_precision = value
        return
    saved_legacy = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_legacy


@contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = enabled
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def _to_channels_last_3d(module: nn.Module) -> None:
    """Store the 5-d parameters and buffers of ``module`` channels_last_3d, in place (2-d convolutions keep theirs)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.ndim == 5 and not tensor.is_contiguous(memory_format=torch.channels_last_3d):
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)


def _holds_torchscript(module: nn.Module) -> bool:
    return any(isinstance(child, torch.jit.ScriptModule) for child in module.modules())


@dataclass(frozen=True)
class ExtractorOptions:
    """Switches for running a frozen feature network (I3D in FVD and KVD) faster.

    Only ``precision`` changes the features beyond float32 rounding: bf16 by its rounding (8 significant bits),
    TF32 by its 10-bit mantissa. The other switches pick other kernels, which round differently; with
    ``cudnn_benchmark`` the kernels are timed and chosen per run, so features are not bit-identical from run to run.

    Args:
        precision: ``"32-true"`` float32 with TF32 off (the reference); ``"tf32"`` TF32 convolutions and matrix
            products on Ampere and newer GPUs; ``"bf16-mixed"`` bfloat16 autocast (Lightning's name). The features
            are returned in float32 whatever the precision.
        channels_last: run 5-d inputs and weights in ``torch.channels_last_3d``, the layout cuDNN's tensor-core
            3-d convolutions prefer. The network's 5-d parameters and buffers are converted in place, once.
        cudnn_benchmark: let cuDNN time its algorithms for each new input shape and keep the fastest
            (``torch.backends.cudnn.benchmark``, set only while the network runs).
        compile: run the network through ``torch.compile`` (compiled on the first batch of each shape). Not
            applied, with a warning, to TorchScript networks.
        cuda_graphs: replay CUDA graphs, through ``torch.compile(mode="reduce-overhead")``; implies ``compile``.
            It has no effect on the CPU.

    Raises:
        ValueError: on a precision not listed above, or a switch that is not a ``bool``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchmetrics_ext.models import ExtractorOptions
        >>> options = ExtractorOptions(precision="bf16-mixed", channels_last=True)
        >>> net = nn.Sequential(nn.Conv3d(3, 4, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten()).eval()
        >>> options.run(net, torch.rand(2, 3, 9, 16, 16)).dtype
        torch.float32

    """

    precision: str = "32-true"
    channels_last: bool = False
    cudnn_benchmark: bool = True
    compile: bool = False
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.precision not in _PRECISIONS:
            raise ValueError(f"Argument `precision` expected one of {_PRECISIONS}, but got {self.precision!r}.")
        for name in ("channels_last", "cudnn_benchmark", "compile", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Argument `{name}` expected to be a `bool` but got {getattr(self, name)!r}.")

    @property
    def compile_mode(self) -> Optional[str]:
        """The ``torch.compile`` mode these options ask for, or ``None`` for eager execution."""
        if self.cuda_graphs:
            return "reduce-overhead"
        return "default" if self.compile else None

    @contextmanager
    def context(self, device_type: str) -> Iterator[None]:
        """Set the precision, TF32 and cuDNN autotuning while the network runs, and restore them after.

        Autocast is set either way: ``"32-true"`` also turns off an autocast around the call (a Trainer's mixed
        precision), so that the features do not depend on the precision a model trains in.
        """
        with (
            _tf32(self.precision == "tf32"),
            _cudnn_benchmark(self.cudnn_benchmark),
            torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16-mixed"),
        ):
            yield

    def run(self, module: nn.Module, x: Tensor, compiled: Optional[Callable[[Tensor], Any]] = None) -> Any:
        """Run ``module`` on ``x`` under ``no_grad`` with these options; floating outputs come back in float32.

        ``compiled`` is the result of :meth:`compile_module` for ``module``, made once by the caller and reused: without
        it, ``compile`` and ``cuda_graphs`` are not applied.
        """
        if self.channels_last and x.ndim == 5:
            _to_channels_last_3d(module)  # a no-op once the weights are converted
            x = x.contiguous(memory_format=torch.channels_last_3d)
        graphed = self.cuda_graphs and compiled is not None and x.is_cuda
        if graphed:
            torch.compiler.cudagraph_mark_step_begin()  # each call is a new step of the CUDA graph trees
        with torch.no_grad(), self.context(x.device.type):
            out = (compiled if compiled is not None else module)(x)
        if isinstance(out, Tensor) and out.is_floating_point():
            out = out.float()
            if graphed:
                out = out.clone()  # a replayed graph writes its next output into the same buffer
        return out

    def compile_module(self, module: nn.Module) -> Optional[Callable[[Tensor], Any]]:
        """``torch.compile(module)`` in :attr:`compile_mode` with static shapes (one graph per batch size), or
        ``None`` when not asked for or when ``module`` holds TorchScript, which ``torch.compile`` cannot trace."""
        if self.compile_mode is None:
            return None
        if _holds_torchscript(module):
            rank_zero_warn(
                "ExtractorOptions: `compile` and `cuda_graphs` are not applied to TorchScript modules (such as"
                " StyleGAN-V's i3d_torchscript.pt), which torch.compile cannot trace; the network runs eagerly.",
                UserWarning,
            )
            return None
        if self.cuda_graphs and not torch.cuda.is_available():
            rank_zero_warn("ExtractorOptions: `cuda_graphs=True` has no effect without CUDA.", UserWarning)
        return torch.compile(module, mode=self.compile_mode, dynamic=False)

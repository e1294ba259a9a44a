"""ExtractorOptions: each switch reaches the network, changes nothing it should not, and the metrics take them.

What the CPU can check: the flags and autocast seen inside the network, the memory layout, the values against float64
(bf16 within its rounding, the others within float32's), a real ``torch.compile``, and that a compiled copy stays out
of the state, the copies and the pickles. The speed of each switch is measured by ``benchmarks/i3d_throughput.py``.
"""

import copy
import pickle

import pytest
import torch
from torch import nn

from tests.video.common import videos
from torchmetrics_ext.models import ExtractorOptions
from torchmetrics_ext.models.inference import _FP32_PRECISION_API
from torchmetrics_ext.video import FrechetVideoDistance, KernelVideoDistance


def tf32_allowed() -> tuple:
    """Whether TF32 is allowed for (cuBLAS matmul, cuDNN conv), read through the API this torch uses."""
    if _FP32_PRECISION_API:
        backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
        return tuple(backend.fp32_precision == "tf32" for backend in backends)
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def global_settings() -> tuple:
    """Everything the options touch, as the caller sees it."""
    if _FP32_PRECISION_API:
        backends = (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul, torch.backends.cudnn.conv)
        tf32 = tuple(backend.fp32_precision for backend in backends)
    else:
        tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    return (*tf32, torch.backends.cudnn.benchmark, torch.is_autocast_enabled("cpu"))


class Probe(nn.Module):
    """A conv net that records, on each call, what the options set around it."""

    def __init__(self, record: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)
        self.record = record  # off under torch.compile: reading global settings would break the graph
        self.seen: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(x)
        if self.record:
            self.seen.append(
                {
                    "autocast": torch.is_autocast_enabled(x.device.type),
                    "conv_dtype": hidden.dtype,
                    "tf32": tf32_allowed(),
                    "benchmark": torch.backends.cudnn.benchmark,
                    "matmul_precision": torch.get_float32_matmul_precision(),  # Inductor reads it when autotuning
                    "channels_last": x.is_contiguous(memory_format=torch.channels_last_3d),
                    "weight_channels_last": self.conv.weight.is_contiguous(memory_format=torch.channels_last_3d),
                }
            )
        return self.head(hidden.relu().mean(dim=(2, 3, 4)))


def _float64_output(x: torch.Tensor) -> torch.Tensor:
    probe = Probe().double()
    with torch.no_grad():
        return probe(x.double())


CLIP = torch.rand(2, 3, 9, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize(
    ("precision", "tf32", "autocast", "conv_dtype", "rtol"),
    [
        ("32-true", False, False, torch.float32, 1e-5),
        ("tf32", True, False, torch.float32, 1e-5),  # TF32 acts on CUDA only: float32 values on the CPU
        ("bf16-mixed", False, True, torch.bfloat16, 2e-2),  # bf16 keeps 8 bits: about 0.4 % per rounding
    ],
)
def test_precision_sets_autocast_and_tf32_inside_and_restores_them(precision, tf32, autocast, conv_dtype, rtol):
    probe = Probe().eval()
    before = global_settings()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a Trainer's autocast must not reach the network
        out = ExtractorOptions(precision=precision).run(probe, CLIP)
    seen = probe.seen[-1]
    assert (seen["autocast"], seen["conv_dtype"]) == (autocast, conv_dtype)
    assert seen["tf32"] == (tf32, tf32)
    assert seen["matmul_precision"] == ("high" if tf32 else "highest")
    assert seen["benchmark"] is True
    assert global_settings() == before
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _float64_output(CLIP), rtol=rtol, atol=rtol * 0.1)


def test_flags_are_restored_when_the_network_raises():
    before = global_settings()
    with pytest.raises(RuntimeError):
        ExtractorOptions(precision="tf32", cudnn_benchmark=False).run(Probe(), torch.rand(1, 2, 9, 8, 8))
    assert global_settings() == before


@pytest.fixture
def new_tf32_settings():
    """The caller set TF32 through torch's per-backend `fp32_precision` (torch >= 2.9) before the metric runs."""
    if not _FP32_PRECISION_API:
        return None
    backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    saved = [backend.fp32_precision for backend in backends]
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = "tf32", "ieee"
    yield "tf32", "ieee"
    for backend, value in zip(backends, saved):
        backend.fp32_precision = value


@pytest.mark.parametrize("precision", ["32-true", "tf32", "bf16-mixed"])
def test_a_callers_new_api_tf32_settings_work_and_come_back_exactly(new_tf32_settings, precision):
    probe = Probe().eval()
    before = global_settings()
    ExtractorOptions(precision=precision).run(probe, CLIP)
    assert probe.seen[-1]["tf32"] == ((precision == "tf32"),) * 2
    assert global_settings() == before
    if new_tf32_settings is not None:
        assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == (
            new_tf32_settings
        )


def test_cudnn_benchmark_can_be_switched_off():
    probe = Probe()
    ExtractorOptions(cudnn_benchmark=False).run(probe, CLIP)
    assert probe.seen[-1]["benchmark"] is False


def test_channels_last_converts_input_and_weights_and_keeps_the_values():
    probe = Probe()
    out = ExtractorOptions(channels_last=True).run(probe, CLIP)
    assert probe.seen[-1]["channels_last"] and probe.seen[-1]["weight_channels_last"]
    torch.testing.assert_close(out.double(), _float64_output(CLIP), rtol=1e-5, atol=1e-6)
    assert ExtractorOptions().run(Probe(), CLIP).shape == out.shape
    # 2-d inputs (a feature head) are left as they are
    assert ExtractorOptions(channels_last=True).run(nn.Linear(3, 2), torch.rand(4, 3)).shape == (4, 2)


class FrameWise(nn.Module):
    """A per-frame 2-d convolution on [B, 3, T, H, W]: its 4-d weight has no channels_last_3d form."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.transpose(1, 2).flatten(0, 1)
        return self.conv(frames).mean(dim=(1, 2, 3)).view(x.shape[0], x.shape[2]).mean(dim=1, keepdim=True)


def test_channels_last_leaves_2d_convolutions_alone():
    net = FrameWise()
    expected = ExtractorOptions().run(net, CLIP)
    out = ExtractorOptions(channels_last=True).run(net, CLIP)
    assert net.conv.weight.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_compiled_network_is_the_one_run_and_matches_eager():
    options = ExtractorOptions(compile=True, channels_last=True)
    probe = Probe(record=False).eval()
    compiled = options.compile_module(probe)
    calls = []

    def spy(x):
        calls.append(x.shape)
        return compiled(x)

    first = options.run(probe, CLIP, spy)
    second = options.run(probe, CLIP * 0.5, spy)
    assert calls == [CLIP.shape, CLIP.shape]
    torch.testing.assert_close(first.double(), _float64_output(CLIP), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second.double(), _float64_output(CLIP * 0.5), rtol=1e-5, atol=1e-6)
    assert ExtractorOptions().compile_module(probe) is None


def test_cuda_graphs_mean_reduce_overhead_and_warn_without_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: calls.append(kwargs) or module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="no effect without CUDA"):
        ExtractorOptions(cuda_graphs=True).compile_module(Probe())
    ExtractorOptions(compile=True).compile_module(Probe())
    assert calls == [{"mode": "reduce-overhead", "dynamic": False}, {"mode": "default", "dynamic": False}]


def test_torchscript_is_not_compiled_and_the_metric_warns_once(recwarn):
    scripted = torch.jit.script(nn.Sequential(nn.Conv3d(3, 4, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten()))
    with pytest.warns(UserWarning, match="not applied to TorchScript"):
        assert ExtractorOptions(compile=True).compile_module(scripted) is None
    fvd = FrechetVideoDistance(feature_extractor=scripted, extractor_options={"cuda_graphs": True})
    for seed in range(2):
        fvd.update(videos(2, seed=seed), real=True)
    assert sum("TorchScript" in str(w.message) for w in recwarn) == 1


def test_extractor_options_are_read_only():
    fvd = FrechetVideoDistance(feature_extractor=_extractor(), extractor_options={"compile": True})
    with pytest.raises(AttributeError):
        fvd.extractor_options = ExtractorOptions()
    assert fvd.extractor_options == ExtractorOptions(compile=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "bf16"}, "Argument `precision` expected one of"),
        ({"precision": 32}, "Argument `precision` expected one of"),
        ({"compile": 1}, "Argument `compile` expected to be a `bool` but got 1"),
        ({"channels_last": "yes"}, "Argument `channels_last` expected to be a `bool`"),
        ({"cuda_graphs": None}, "Argument `cuda_graphs` expected to be a `bool`"),
        ({"cudnn_benchmark": 0}, "Argument `cudnn_benchmark` expected to be a `bool`"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExtractorOptions(**kwargs)


def _extractor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(3, 4, 3, stride=4), nn.Tanh(), nn.AdaptiveAvgPool3d((1, 2, 2)), nn.Flatten())


@pytest.mark.parametrize("metric_class", [FrechetVideoDistance, KernelVideoDistance])
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ("fast", "Argument `extractor_options` expected `None`, an `ExtractorOptions` or a dict"),
        ({"precision": "bf16-mixed", "graphs": True}, r"expected a dict with keys among .* but got \['graphs'\]"),
        ({"precision": "fp8"}, "Argument `precision` expected one of"),
    ],
)
def test_metrics_reject_bad_extractor_options(metric_class, options, match):
    with pytest.raises(ValueError, match=match):
        metric_class(feature_extractor=_extractor(), extractor_options=options)


def test_fvd_under_each_option_is_the_float32_fvd():
    """The same videos under bf16-mixed and channels_last give the float32 FVD; the metric's own float64 math."""
    real, fake = videos(16, seed=0), videos(16, seed=1, power=2.0)
    values = {}
    for name, options in {
        "32-true": None,
        "channels_last": {"channels_last": True},
        "bf16-mixed": ExtractorOptions(precision="bf16-mixed", channels_last=True),
    }.items():
        fvd = FrechetVideoDistance(feature_extractor=_extractor(), extractor_options=options)
        fvd.update(real, real=True)
        fvd.update(fake, real=False)
        values[name] = fvd.compute().item()
    assert values["channels_last"] == pytest.approx(values["32-true"], rel=1e-5)
    assert values["bf16-mixed"] == pytest.approx(values["32-true"], rel=2e-2)


def test_a_compiled_extractor_stays_out_of_state_copies_and_pickles(monkeypatch):
    compiled_calls = []

    def fake_compile(module, **kwargs):
        compiled_calls.append(kwargs)
        return copy.deepcopy(module)  # a distinct module, as torch.compile's wrapper is

    monkeypatch.setattr(torch, "compile", fake_compile)
    fvd = FrechetVideoDistance(feature_extractor=_extractor(), extractor_options={"compile": True})
    fvd.update(videos(3, seed=0), real=True)
    fvd.update(videos(3, seed=1), real=False)
    assert len(compiled_calls) == 1  # compiled on first use, then reused
    assert fvd._compiled_extractor is not None
    assert not any("compiled" in key for key in fvd.state_dict())
    assert not any(name.startswith("_compiled") for name, _ in fvd.named_modules())
    clone = fvd.clone()
    restored = pickle.loads(pickle.dumps(fvd))
    assert clone._compiled_extractor is None and restored._compiled_extractor is None
    assert clone.extractor_options == restored.extractor_options == ExtractorOptions(compile=True)
    clone.update(videos(3, seed=2), real=False)
    assert len(compiled_calls) == 2  # the copy compiles its own

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
from torchmetrics_ext.video import FrechetVideoDistance, KernelVideoDistance


class Probe(nn.Module):
    """A conv net that records, on each call, what the options set around it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)
        self.seen: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(x)
        self.seen.append(
            {
                "autocast": torch.is_autocast_enabled(x.device.type),
                "conv_dtype": hidden.dtype,
                "cudnn_tf32": torch.backends.cudnn.allow_tf32,
                "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
                "benchmark": torch.backends.cudnn.benchmark,
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
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a Trainer's autocast must not reach the network
        out = ExtractorOptions(precision=precision).run(probe, CLIP)
    seen = probe.seen[-1]
    assert (seen["autocast"], seen["conv_dtype"]) == (autocast, conv_dtype)
    assert seen["cudnn_tf32"] is tf32 and seen["matmul_tf32"] is tf32
    assert seen["benchmark"] is True
    after = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    assert after == before
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _float64_output(CLIP), rtol=rtol, atol=rtol * 0.1)


def test_flags_are_restored_when_the_network_raises():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    with pytest.raises(RuntimeError):
        ExtractorOptions(precision="tf32", cudnn_benchmark=False).run(Probe(), torch.rand(1, 2, 9, 8, 8))
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark) == (
        before
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


def test_compile_runs_torch_compile_once_and_matches_eager():
    options = ExtractorOptions(compile=True, channels_last=True)
    probe = Probe().eval()
    compiled = options.compile_module(probe)
    first = options.run(probe, CLIP, compiled)
    second = options.run(probe, CLIP * 0.5, compiled)
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

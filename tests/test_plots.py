"""Every public metric plots one value and a sequence of values (torchmetrics' ``plot`` convention)."""

import pytest
import torch
from torch import nn

import torchmetrics_ext.text as text
import torchmetrics_ext.video as video

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

B, T, C, H, W = 4, 9, 3, 8, 8


def _videos(seed: int, batch: int = B) -> torch.Tensor:
    return torch.rand(batch, T, C, H, W, generator=torch.Generator().manual_seed(seed))


def _pool3d() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool3d((3, 1, 1)), nn.Flatten())


def _forward_steps(build, make_args):
    """A metric whose ``forward`` returns the value of one batch: ``make_args(seed)`` gives its (args, kwargs)."""

    def step(metric, seed):
        args, kwargs = make_args(seed)
        return metric(*args, **kwargs)

    return build, step


def _causal_lm(cls):
    def args(seed):
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(2, 8, 5, generator=gen), torch.randint(5, (2, 8), generator=gen)), {}

    return _forward_steps(cls, args)


def _real_fake(cls, **kwargs):
    """FVD/KVD need real and generated videos before ``compute``: ``forward`` on one side alone cannot give a value,
    so each step is one evaluation (update real, update fake, compute), the last one left in the state."""

    def build():
        return cls(feature_extractor=_pool3d(), **kwargs)

    def step(metric, seed):
        metric.reset()
        metric.update(_videos(seed, batch=10), real=True)
        metric.update(_videos(seed + 100, batch=10) * 0.5, real=False)
        return metric.compute()

    return build, step


def _warping():
    def args(seed):
        gen = torch.Generator().manual_seed(seed)
        fw = torch.randn(B, T - 1, 2, H, W, generator=gen)
        bw = torch.randn(B, T - 1, 2, H, W, generator=gen)
        return (_videos(seed),), {"flows": (fw, bw)}

    return _forward_steps(lambda: video.FlowWarpingError(flow=None), args)


def _videos_only(build):
    return _forward_steps(build, lambda seed: ((_videos(seed),), {}))


def _per_frame():
    from torchmetrics.image import PeakSignalNoiseRatio

    def args(seed):
        target = _videos(seed)
        return (torch.clamp(target + 0.05 * _videos(seed + 1), 0, 1), target), {}

    return _forward_steps(lambda: video.PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0)), args)


# name -> (build, step): ``build()`` makes the metric cheaply, ``step(metric, seed)`` feeds it and returns one value
BUILDERS = {
    "CausalLMCrossEntropy": _causal_lm(text.CausalLMCrossEntropy),
    "CausalLMPerplexity": _causal_lm(text.CausalLMPerplexity),
    "CausalLMTokenAccuracy": _causal_lm(text.CausalLMTokenAccuracy),
    "FrechetVideoDistance": _real_fake(video.FrechetVideoDistance),
    "KernelVideoDistance": _real_fake(video.KernelVideoDistance, subsets=2, subset_size=3),
    "FlowWarpingError": _warping(),
    "PerFrameImageMetric": _per_frame(),
    "TemporalConsistency": _videos_only(
        lambda: video.TemporalConsistency(encoder=nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()))
    ),
    "TemporalFlickering": _videos_only(lambda: video.TemporalFlickering()),
}

PUBLIC = [(module.__name__, name) for module in (text, video) for name in module.__all__]


def _mean(value) -> float:
    """The value ``plot`` draws: KVD returns (mean, std) and draws the mean."""
    return float(value[0] if isinstance(value, tuple) else value)


def _ydata(ax) -> list:
    return [float(y) for y in ax.lines[0].get_ydata()]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[name for _, name in PUBLIC])
def test_plot_one_value_and_a_sequence(module, name):
    if name not in BUILDERS:
        pytest.fail(f"{module}.{name} has no builder in tests/test_plots.py::BUILDERS: add one to test its `plot`.")
    build, step = BUILDERS[name]
    metric = build()
    values = [step(metric, seed) for seed in range(3)]  # as returned: KVD's are (mean, std) tuples

    figures = []
    try:
        fig, ax = metric.plot()  # the current value, compute()
        figures.append(fig)
        assert isinstance(fig, Figure) and isinstance(ax, Axes)
        assert _ydata(ax) == pytest.approx([_mean(metric.compute())])

        fig, ax = metric.plot(values)
        figures.append(fig)
        assert isinstance(fig, Figure) and isinstance(ax, Axes)
        assert _ydata(ax) == pytest.approx([_mean(value) for value in values])

        fig, ax = metric.plot(values[-1])  # one value given
        figures.append(fig)
        assert _ydata(ax) == pytest.approx([_mean(values[-1])])
    finally:
        import matplotlib.pyplot as plt

        for fig in figures:
            plt.close(fig)


def test_every_public_metric_has_a_builder():
    missing = [f"{module}.{name}" for module, name in PUBLIC if name not in BUILDERS]
    assert not missing, f"public metrics without a builder in tests/test_plots.py::BUILDERS: {missing}"

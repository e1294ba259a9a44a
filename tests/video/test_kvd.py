"""KernelVideoDistance against a direct NumPy polynomial MMD, its states, checks and DDP."""

import math

import pytest
import torch

from tests.helpers import video_reference as reference
from tests.helpers.ddp import run_distributed
from tests.video.common import mixing_extractor, pool_extractor, reference_features, videos
from torchmetrics_ext.video import KernelVideoDistance


def _kvd(**kwargs) -> KernelVideoDistance:
    return KernelVideoDistance(**{"feature_extractor": mixing_extractor(), **kwargs})


@pytest.mark.parametrize(("degree", "gamma", "coef"), [(3, None, 1.0), (2, 0.5, 0.25)])
def test_one_subset_of_every_video_is_the_numpy_polynomial_mmd(degree, gamma, coef):
    real, fake = videos(10, seed=1), videos(10, seed=2, power=1.7)
    metric = _kvd(subsets=1, subset_size=10, degree=degree, gamma=gamma, coef=coef)
    for batch in real.split(4):
        metric.update(batch, real=True)
    metric.update(fake, real=False)
    mean, std = metric.compute()
    assert mean.dtype == std.dtype == torch.float32 and float(std) == 0
    extractor = metric.feature_extractor
    expected = reference.polynomial_mmd(
        reference_features(extractor, real.split(4)), reference_features(extractor, [fake]), degree, gamma, coef
    )
    assert math.isclose(float(mean), expected, rel_tol=1e-5, abs_tol=1e-9)


def test_subsets_are_reproducible_with_the_global_seed_and_std_is_positive():
    metric = _kvd(subsets=6, subset_size=5)
    metric.update(videos(8, seed=3), real=True)
    metric.update(videos(8, seed=4, power=2.0), real=False)
    torch.manual_seed(0)
    first = metric.compute()
    metric._computed = None
    torch.manual_seed(0)
    second = metric.compute()
    assert torch.equal(first[0], second[0]) and float(first[1]) > 0


def test_subset_size_larger_than_a_side_raises_at_compute():
    metric = _kvd(subsets=1, subset_size=6)
    metric.update(videos(6, seed=5), real=True)
    with pytest.raises(ValueError, match="at most the number of fake videos, 0, but got 6"):
        metric.compute()
    metric.update(videos(5, seed=6), real=False)
    with pytest.raises(ValueError, match="at most the number of fake videos, 5, but got 6"):
        metric.compute()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subset_size": 1}, "subset_size"),
        ({"subsets": 0}, "subsets"),
        ({"degree": 0}, "degree"),
        ({"gamma": -1.0}, "gamma"),
    ],
)
def test_bad_kernel_options_raise_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=f"Argument `{message}`"):
        _kvd(**kwargs)


def test_bad_videos_accumulate_nothing():
    metric = _kvd(subset_size=2)
    metric.update(videos(3, seed=7), real=True)
    for bad in (videos(2, seed=8, frames=8), videos(2, seed=8) * 2, videos(2, seed=8).transpose(1, 2)):
        with pytest.raises(ValueError):
            metric.update(bad, real=False)
    assert len(metric.real_features) == 1 and metric.fake_features == []


def test_reset_real_features_false_keeps_the_real_features_and_they_stay_float64(tmp_path):
    metric = _kvd(subsets=1, subset_size=4, reset_real_features=False).to(torch.bfloat16)
    metric.update(videos(4, seed=9), real=True)
    metric.update(videos(4, seed=10), real=False)
    metric.reset()
    assert len(metric.real_features) == 1 and metric.real_features[0].dtype == torch.float64
    assert metric.fake_features == []
    path = tmp_path / "real.pt"
    metric.save_real_statistics(path)
    other = _kvd(subsets=1, subset_size=4)
    other.load_real_statistics(path)
    for m in (metric, other):
        m.update(videos(4, seed=11), real=False)
    assert torch.equal(metric.compute()[0], other.compute()[0])
    with pytest.raises(ValueError, match="D = 6, but .* holds D = 5"):
        KernelVideoDistance(feature_extractor=pool_extractor(), subset_size=2).load_real_statistics(path)


def _ddp_kvd(rank: int, world_size: int, real: torch.Tensor, fake: torch.Tensor, statistics: str) -> list:
    results = []
    for load in (False, True):
        torch.manual_seed(0)
        metric = KernelVideoDistance(feature_extractor=mixing_extractor(), subsets=1, subset_size=8)
        if load:
            metric.load_real_statistics(statistics)  # every rank loads the file; process 0 alone holds it
        else:
            metric.update(real[rank::world_size], real=True)
        metric.update(fake[rank::world_size], real=False)
        results.append(metric.compute()[0])
    return results


def test_two_processes_give_the_value_of_one(tmp_path):
    real, fake = videos(8, seed=12), videos(8, seed=13, power=2.0)
    torch.manual_seed(0)
    single = KernelVideoDistance(feature_extractor=mixing_extractor(), subsets=1, subset_size=8)
    single.update(real, real=True)
    single.update(fake, real=False)
    expected = float(single.compute()[0])  # one subset of every video: the order does not matter
    path = tmp_path / "real.pt"
    single.save_real_statistics(path)
    for per_rank in run_distributed(_ddp_kvd, real, fake, str(path)):
        for mean in per_rank:  # updated halves, then loaded features
            assert math.isclose(float(mean), expected, rel_tol=1e-6)


def test_weights_none_builds_the_default_i3d_lazily(monkeypatch):
    from torchmetrics_ext.models import weights
    calls = []

    def fake_default_i3d(progress: bool = True):
        calls.append(progress)
        return pool_extractor()

    monkeypatch.setattr(weights, "default_i3d", fake_default_i3d)
    metric = KernelVideoDistance(subset_size=2)
    assert calls == [True] and metric.num_features == 6 and metric.feature_extractor_name == "i3d"

"""FrechetVideoDistance against NumPy and SciPy, its preprocessing, states, DDP, weights files and Lightning."""

import inspect
import math
import re

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.callbacks.lightning_models import trainer
from tests.helpers import video_reference as reference
from tests.helpers.ddp import run_distributed
from tests.video.common import mixing_extractor, pool_extractor, reference_features, videos
from torchmetrics_ext.callbacks import BestMetricCheckpoint, ValidationMetrics
from torchmetrics_ext.functional.video import frechet_distance
from torchmetrics_ext.functional.video.preprocess import preprocess_videos
from torchmetrics_ext.models import InceptionI3d
from torchmetrics_ext.video import FrechetVideoDistance, KernelVideoDistance

RTOL = 1e-8  # against SciPy's sqrtm on full-rank covariances of float32 features


def _numpy_fvd(real: np.ndarray, fake: np.ndarray, ddof: int = 1) -> float:
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    sigma1, sigma2 = np.cov(real, rowvar=False, ddof=ddof), np.cov(fake, rowvar=False, ddof=ddof)
    return reference.frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2)


def _fvd(extractor=None, **kwargs) -> FrechetVideoDistance:
    return FrechetVideoDistance(feature_extractor=extractor or pool_extractor(), **kwargs)


def _states(metric) -> dict:
    return {name: value.clone() for name, value in metric.metric_state.items()}


@pytest.mark.parametrize("ddof", [1, 0])
def test_value_matches_numpy_covariances_and_scipy_sqrtm(ddof):
    extractor = mixing_extractor()
    real, fake = videos(14, seed=1), videos(12, seed=2, power=1.5)
    metric = _fvd(extractor, ddof=ddof)
    for batch in real.split(5):
        metric.update(batch, real=True)
    for batch in fake.split(4):
        metric.update(batch, real=False)
    value = metric.compute()
    assert value.dtype == torch.float32 and metric.num_features == 5
    real_features = reference_features(extractor, real.split(5))
    expected = _numpy_fvd(real_features, reference_features(extractor, fake.split(4)), ddof)
    assert math.isclose(float(value), expected, rel_tol=1e-6)  # float32 output
    # the float64 value before the cast, through the package's distance of the states' Gaussians
    assert math.isclose(_float64_value(metric), expected, rel_tol=RTOL)


def _float64_value(metric: FrechetVideoDistance) -> float:
    from torchmetrics_ext.functional.video.frechet import _mean_and_covariance

    gaussians = [
        _mean_and_covariance(
            getattr(metric, f"{side}_features_sum"),
            getattr(metric, f"{side}_features_cov_sum"),
            getattr(metric, f"{side}_features_num_samples"),
            metric.ddof,
        )
        for side in ("real", "fake")
    ]
    return float(frechet_distance(*gaussians[0], *gaussians[1]))


def test_a_set_against_itself_is_zero():
    metric = _fvd()
    clips = videos(10, seed=3)
    metric.update(clips, real=True)
    metric.update(clips, real=False)
    value = float(metric.compute())
    assert 0 <= value < 1e-10


def test_uint8_and_float_videos_give_the_same_features_and_value():
    clips = (videos(10, seed=4) * 255).round().to(torch.uint8)
    as_uint8, as_float = _fvd(), _fvd()
    for metric, batch in ((as_uint8, clips), (as_float, clips.double() / 255)):
        metric.update(batch, real=True)
        metric.update(batch.flip(0)[:7], real=False)
    torch.testing.assert_close(as_uint8.real_features_sum, as_float.real_features_sum, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        preprocess_videos(clips), preprocess_videos(clips.float() / 255), rtol=0, atol=1e-6
    )
    assert math.isclose(float(as_uint8.compute()), float(as_float.compute()), rel_tol=1e-4, abs_tol=1e-9)


def test_bcthw_layout_is_btchw_permuted():
    clips = videos(8, seed=5)
    btchw, bcthw = _fvd(), _fvd(layout="BCTHW")
    btchw.update(clips, real=True)
    bcthw.update(clips.transpose(1, 2), real=True)
    assert torch.equal(btchw.real_features_cov_sum, bcthw.real_features_cov_sum)
    assert torch.equal(preprocess_videos(clips), preprocess_videos(clips.transpose(1, 2), layout="BCTHW"))


def test_preprocessing_is_a_bilinear_resize_per_frame_without_antialias_scaled_to_minus_one_one():
    clips = torch.rand(2, 10, 3, 300, 170, generator=torch.Generator().manual_seed(0))  # down in H, up in W
    x = preprocess_videos(clips)
    assert x.shape == (2, 3, 10, 224, 224) and x.dtype == torch.float32
    frame = F.interpolate(clips[1, 7][None], size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(x[1, :, 7], frame[0] * 2 - 1, rtol=0, atol=1e-6)
    antialiased = F.interpolate(clips[1, 7][None], size=(224, 224), mode="bilinear", antialias=True)
    assert not torch.allclose(x[1, :, 7], antialiased[0] * 2 - 1, atol=1e-3)
    assert x.min() >= -1 and x.max() <= 1
    halves = torch.zeros(1, 9, 3, 8, 8, dtype=torch.uint8)
    halves[..., 4:] = 255
    extremes = preprocess_videos(halves)
    assert extremes.min() == -1 and extremes.max() == 1


def test_reset_real_features_false_keeps_the_real_side():
    keep, drop = _fvd(reset_real_features=False), _fvd()
    for metric in (keep, drop):
        metric.update(videos(8, seed=6), real=True)
        metric.update(videos(8, seed=7), real=False)
        metric.reset()
    assert int(keep.real_features_num_samples) == 8 and int(keep.fake_features_num_samples) == 0
    assert int(drop.real_features_num_samples) == 0
    keep.update(videos(8, seed=8), real=False)
    reference_metric = _fvd()
    reference_metric.update(videos(8, seed=6), real=True)
    reference_metric.update(videos(8, seed=8), real=False)
    assert float(keep.compute()) == float(reference_metric.compute())


def test_saved_real_statistics_load_into_another_metric(tmp_path):
    source = _fvd()
    source.update(videos(9, seed=9), real=True)
    source.update(videos(9, seed=10), real=False)
    path = tmp_path / "real.pt"
    source.save_real_statistics(path)
    loaded = _fvd(reset_real_features=False)
    loaded.load_real_statistics(path)
    loaded.reset()  # kept: it is the real side
    loaded.update(videos(9, seed=10), real=False)
    assert float(loaded.compute()) == float(source.compute())
    assert loaded.real_features_sum.dtype == torch.float64 and loaded.real_features_num_samples.dtype == torch.int64


def test_loading_statistics_of_another_dimension_or_metric_raises(tmp_path):
    path = tmp_path / "real.pt"
    source = _fvd()  # D = 6
    source.update(videos(4, seed=11), real=True)
    source.save_real_statistics(path)
    other = _fvd(mixing_extractor())  # D = 5
    before = _states(other)
    with pytest.raises(ValueError, match="feature dimension D = 5, but .* holds D = 6"):
        other.load_real_statistics(path)
    assert all(torch.equal(before[name], value) for name, value in other.metric_state.items())
    with pytest.raises(ValueError, match="saved by `KernelVideoDistance.save_real_statistics`"):
        KernelVideoDistance(feature_extractor=pool_extractor(), subset_size=2).load_real_statistics(path)


def _ddp_fvd(rank: int, world_size: int, real: torch.Tensor, fake: torch.Tensor, statistics: str) -> list:
    results = []
    for load in (False, True):
        torch.manual_seed(0)  # the same extractor on every rank
        metric = FrechetVideoDistance(feature_extractor=mixing_extractor())
        if load:
            metric.load_real_statistics(statistics)  # every rank loads the file; it is counted once
        else:
            metric.update(real[rank::world_size], real=True)
        metric.update(fake[rank::world_size], real=False)
        value32 = metric.compute()
        metric.sync()
        results.append((value32, _float64_value(metric), int(metric.real_features_num_samples)))
        metric.unsync()
    return results


def test_two_processes_give_the_value_of_one(tmp_path):
    real, fake = videos(12, seed=12), videos(10, seed=13, power=2.0)
    torch.manual_seed(0)
    single = FrechetVideoDistance(feature_extractor=mixing_extractor())
    single.update(real, real=True)
    single.update(fake, real=False)
    expected = _float64_value(single)
    path = tmp_path / "real.pt"
    single.save_real_statistics(path)
    for per_rank in run_distributed(_ddp_fvd, real, fake, str(path)):
        for value32, value64, real_count in per_rank:  # updated halves, then loaded statistics
            assert real_count == 12
            assert math.isclose(value64, expected, rel_tol=1e-10)
            assert math.isclose(float(value32), expected, rel_tol=1e-6)


def test_states_keep_their_dtype_and_the_extractor_stays_out_of_the_state_dict():
    extractor = mixing_extractor()
    metric = _fvd(extractor).to(torch.bfloat16)
    metric.update(videos(6, seed=14), real=True)
    assert metric.real_features_sum.dtype == torch.float64
    assert metric.real_features_cov_sum.dtype == torch.float64
    assert metric.real_features_num_samples.dtype == torch.int64
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in extractor.parameters())
    assert not extractor.training and metric.feature_extractor is extractor
    assert not any(key.startswith(("feature_extractor", "_feature_extractor")) for key in metric.state_dict())
    assert list(metric.parameters()) == []


@pytest.mark.parametrize(
    ("clips", "kwargs", "message"),
    [
        (torch.rand(2, 9, 3, 8), {}, "5 dimensions"),
        (torch.rand(2, 8, 3, 8, 8), {}, "at least 9 frames"),
        (torch.rand(2, 3, 8, 8, 8), {"layout": "BCTHW"}, "at least 9 frames"),
        (torch.rand(2, 9, 1, 8, 8), {}, "expected 3 channels"),
        (torch.rand(2, 9, 3, 8, 8), {"layout": "BCTHW"}, "expected 3 channels"),
        (torch.rand(2, 9, 3, 8, 8) * 1.5, {}, r"values in \[0, 1\]"),
        (-torch.rand(2, 9, 3, 8, 8), {}, r"values in \[0, 1\]"),
        (torch.full((2, 9, 3, 8, 8), float("nan")), {}, r"values in \[0, 1\]"),
        (torch.ones(2, 9, 3, 8, 8, dtype=torch.int32), {}, "dtype torch.int32"),
        ("not a tensor", {}, "5 dimensions"),
    ],
)
def test_bad_videos_raise_and_accumulate_nothing(clips, kwargs, message):
    metric = _fvd(**kwargs)
    metric.update(videos(3, seed=15).transpose(1, 2) if kwargs else videos(3, seed=15), real=True)
    before = _states(metric)
    with pytest.raises(ValueError, match=message):
        metric.update(clips, real=True)
    with pytest.raises(ValueError, match=message):
        metric(clips, real=False)
    assert all(torch.equal(before[name], value) for name, value in metric.metric_state.items())
    assert metric.update_count == 1


def test_bad_real_flag_and_bad_features_raise():
    metric = _fvd()
    with pytest.raises(ValueError, match="`real` expected to be a `bool`"):
        metric.update(videos(2, seed=0), real="yes")

    class Flaky(nn.Module):
        calls = 0

        def forward(self, x):
            self.calls += 1
            return x.mean(dim=(2, 3, 4)) if self.calls == 1 else x.mean(dim=(2, 3, 4)) * float("nan")

    flaky = _fvd(Flaky())
    with pytest.raises(ValueError, match="non-finite features"):
        flaky.update(videos(2, seed=0), real=True)
    assert int(flaky.real_features_num_samples) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "BHWTC"}, "Argument `layout` expected"),
        ({"feature_extractor": "inception"}, "Argument `feature_extractor` expected 'i3d'"),
        ({"feature_extractor": 3}, "Argument `feature_extractor` expected 'i3d'"),
        ({"weights": "i3d.pt"}, "Argument `weights` expected `None` with a module"),
        ({"ddof": 2}, "Argument `ddof`"),
        ({"reset_real_features": 1}, "Argument `reset_real_features`"),
        ({"feature_extractor": nn.Identity()}, r"features \[B, D\]"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrechetVideoDistance(**{"feature_extractor": pool_extractor(), **kwargs})


def test_compute_needs_two_videos_a_side_and_warns_below_the_dimension():
    metric = _fvd()
    with pytest.raises(ValueError, match="at least 2 real videos, but got 0"):
        metric.compute()
    metric.update(videos(5, seed=16), real=True)
    metric.update(videos(1, seed=17), real=False)
    with pytest.raises(ValueError, match="at least 2 fake videos, but got 1"):
        metric.compute()
    metric.update(videos(2, seed=18), real=False)
    with pytest.warns(UserWarning, match="5 real videos for 6-dimensional features"):
        metric.compute()


def test_an_i3d_state_dict_loads_through_weights(tmp_path):
    torch.manual_seed(0)
    model = InceptionI3d()
    path = tmp_path / "i3d.pt"
    torch.save(model.state_dict(), path)
    metric = FrechetVideoDistance(weights=path)
    assert metric.num_features == 400 and not metric.feature_extractor.training
    clips = videos(2, seed=19, size=4)
    metric.update(clips, real=True)
    with torch.no_grad():
        expected = model.eval()(preprocess_videos(clips)).double()
    torch.testing.assert_close(metric.real_features_sum, expected.sum(0), rtol=1e-5, atol=1e-6)


class _ScriptedDetector(nn.Module):
    """StyleGAN-V's calling convention, 400 outputs; returns features only when asked without rescale or resize."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        if rescale or resize or not return_features:
            return torch.full((x.shape[0], 400), float("nan"))
        return self.head(x.mean(dim=(2, 3, 4)))


def test_a_torchscript_file_loads_through_weights(tmp_path):
    torch.manual_seed(0)
    detector = _ScriptedDetector()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(detector).save(str(path))
    metric = FrechetVideoDistance(weights=path)
    assert metric.num_features == 400
    clips = videos(3, seed=20)
    metric.update(clips, real=True)
    with torch.no_grad():
        expected = detector(preprocess_videos(clips), return_features=True).double()
    torch.testing.assert_close(metric.real_features_sum, expected.sum(0), rtol=1e-5, atol=1e-5)


def test_documented_arguments_match_the_signature():
    for cls in (FrechetVideoDistance, KernelVideoDistance):
        doc = inspect.getdoc(cls)
        block = re.split(r"\n(?:Raises|Example):", doc.split("Args:\n", 1)[1])[0]
        documented = re.findall(r"^    (\w+):", block, flags=re.MULTILINE)
        assert sorted(documented) == sorted(inspect.signature(cls.__init__).parameters.keys() - {"self"})


class _VideoGenerator(L.LightningModule):
    """Generates 'fake' videos as the real ones darkened by a learned factor."""

    def __init__(self) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(0.0))

    def training_step(self, batch, batch_idx):
        return (torch.sigmoid(self.logit) - 0.9) ** 2

    def validation_step(self, batch, batch_idx):
        return {"fake": batch[0] * torch.sigmoid(self.logit).detach()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


def test_validation_metrics_feed_the_real_side_in_the_first_epoch_only(tmp_path):
    clips = videos(8, seed=21, size=4)
    metric = FrechetVideoDistance(feature_extractor=pool_extractor(), reset_real_features=False)
    callback = ValidationMetrics(
        {"fvd": metric},
        inputs={"fvd": lambda out, batch: [dict(videos=batch[0], real=True), dict(videos=out["fake"], real=False)]},
    )
    best = BestMetricCheckpoint(monitor="val/fvd", dirpath=tmp_path)
    loader = DataLoader(TensorDataset(clips), batch_size=4)
    fit = trainer(max_epochs=3, callbacks=[callback, best], enable_checkpointing=True, num_sanity_val_steps=1)
    model = _VideoGenerator()
    fit.fit(model, loader, loader)
    assert int(metric.real_features_num_samples) == 8  # the first epoch's, kept through the resets: not 24
    assert int(metric.fake_features_num_samples) == 0  # reset after the last epoch
    assert best.mode == "min" and best.best_model_path
    direct = FrechetVideoDistance(feature_extractor=pool_extractor())
    direct.update(clips, real=True)
    direct.update(model.validation_step((clips,), 0)["fake"], real=False)
    assert math.isclose(float(fit.callback_metrics["val/fvd"]), float(direct.compute()), rel_tol=1e-6)


def _ddp_save_real(rank: int, world_size: int, real: torch.Tensor, statistics: str) -> None:
    torch.manual_seed(0)  # the same extractor on every rank
    metric = FrechetVideoDistance(feature_extractor=mixing_extractor())
    metric.update(real[rank::world_size], real=True)
    metric.save_real_statistics(statistics)  # gathers every rank's part; rank 0 writes


def test_statistics_saved_under_ddp_hold_every_process_part(tmp_path):
    real, fake = videos(12, seed=12), videos(10, seed=13, power=2.0)
    path = tmp_path / "real.pt"
    run_distributed(_ddp_save_real, real, str(path))
    torch.manual_seed(0)
    loaded = FrechetVideoDistance(feature_extractor=mixing_extractor())
    loaded.load_real_statistics(path)
    assert int(loaded.real_features_num_samples) == 12
    loaded.update(fake, real=False)
    torch.manual_seed(0)
    single = FrechetVideoDistance(feature_extractor=mixing_extractor())
    single.update(real, real=True)
    single.update(fake, real=False)
    assert math.isclose(_float64_value(loaded), _float64_value(single), rel_tol=1e-10)


def test_videos_reach_the_extractor_device_as_uint8_before_preprocessing(monkeypatch):
    """The upload is uint8 (a quarter of float32) and the resize runs on the extractor's device; a CPU-only machine
    cannot tell two devices apart, so the extractor's device is reported as "meta" and the preprocessing spied on."""
    from torchmetrics_ext.video import _base

    fvd = _fvd()
    seen = []

    def spy(videos, layout):
        seen.append((videos.dtype, videos.device))
        raise RuntimeError("stop after the upload")

    monkeypatch.setattr(_base, "preprocess_videos", spy)
    monkeypatch.setattr(_base, "_module_device_and_dtype", lambda module: (torch.device("meta"), torch.float32))
    clips = (videos(2, seed=0) * 255).round().to(torch.uint8)
    with pytest.raises(RuntimeError, match="stop after the upload"):
        fvd.update(clips, real=True)
    assert seen == [(torch.uint8, torch.device("meta"))]

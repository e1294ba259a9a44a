"""PerFrameImageMetric against per-frame references averaged in NumPy, its states, checks and DDP."""

import functools
import math

import numpy as np
import pytest
import torch
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from tests.helpers.ddp import run_distributed
from torchmetrics_ext.video import PerFrameImageMetric

PSNR_PER_IMAGE = functools.partial(peak_signal_noise_ratio, data_range=1.0, reduction="none", dim=(1, 2, 3))


def _pair(n: int, seed: int, frames: int = 3, size: int = 16, channels: int = 3) -> tuple:
    """Target videos [n, frames, channels, size, size] in [0, 1] and predictions with an error that varies by frame."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(n, frames, channels, size, size, generator=generator)
    scale = 0.02 + 0.2 * torch.rand(n, frames, 1, 1, 1, generator=generator)
    noise = torch.randn(n, frames, channels, size, size, generator=generator)
    return (target + scale * noise).clamp(0, 1), target


def _numpy_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of one frame [C, H, W] in [0, 1], in float64 NumPy."""
    mse = np.mean((pred.double().numpy() - target.double().numpy()) ** 2)
    return float(10 * np.log10(1.0 / mse))


def _functional_ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(structural_similarity_index_measure(pred[None], target[None], data_range=1.0))


def _reference(frame_fn, batches: list) -> float:
    """The mean over the videos of the mean over their frames of ``frame_fn``, videos given as [B, T, C, H, W]."""
    per_video = [
        np.mean([frame_fn(p, t) for p, t in zip(pred, target)], dtype=np.float64)
        for preds, targets in batches
        for pred, target in zip(preds, targets)
    ]
    return float(np.mean(per_video, dtype=np.float64))


@pytest.mark.parametrize(
    ("image_metric", "frame_fn"),
    [
        (PeakSignalNoiseRatio(data_range=1.0), _numpy_psnr),
        (StructuralSimilarityIndexMeasure(data_range=1.0), _functional_ssim),
        (PSNR_PER_IMAGE, _numpy_psnr),
    ],
    ids=["psnr", "ssim", "psnr-callable"],
)
def test_mean_over_videos_of_the_per_frame_mean_matches_the_reference(image_metric, frame_fn):
    # videos of 3 and of 5 frames: each video weighs the same, not each frame
    batches = [_pair(2, seed=1, frames=3), _pair(3, seed=2, frames=5), _pair(1, seed=3, frames=2)]
    metric = PerFrameImageMetric(image_metric)
    for preds, target in batches:
        metric.update(preds, target)
    value = metric.compute()
    assert value.dtype == torch.float32 and value.shape == ()
    assert math.isclose(float(value), _reference(frame_fn, batches), rel_tol=1e-5)
    assert int(metric.num_videos) == 6


def test_per_frame_mean_is_not_the_psnr_of_the_pooled_batch():
    target = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    preds = target.clone()
    preds[0, 0] = (preds[0, 0] + 1e-3).clamp(0, 1)  # a nearly exact frame: about 60 dB
    preds[0, 1] = 1 - preds[0, 1]  # a very wrong frame: about 5 dB
    metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    metric.update(preds, target)
    pooled = PeakSignalNoiseRatio(data_range=1.0)
    pooled.update(preds[0], target[0])  # PSNR of the mean squared error of both frames: dominated by the bad one
    per_frame = _reference(_numpy_psnr, [(preds, target)])
    assert math.isclose(float(metric.compute()), per_frame, rel_tol=1e-5)
    assert per_frame - float(pooled.compute()) > 20


def test_uint8_videos_equal_float_videos_divided_by_255_and_bcthw_equals_btchw():
    generator = torch.Generator().manual_seed(5)
    target = torch.randint(0, 256, (2, 3, 3, 16, 16), generator=generator, dtype=torch.uint8)
    preds = torch.randint(0, 256, (2, 3, 3, 16, 16), generator=generator, dtype=torch.uint8)
    results = []
    for p, t, layout in [
        (preds, target, "BTCHW"),
        (preds.float() / 255, target.float() / 255, "BTCHW"),
        (preds.transpose(1, 2), target.transpose(1, 2), "BCTHW"),
    ]:
        metric = PerFrameImageMetric(StructuralSimilarityIndexMeasure(data_range=1.0), layout=layout)
        metric.update(p, t)
        results.append(metric.compute())
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    expected = _reference(_functional_ssim, [(preds.float() / 255, target.float() / 255)])
    assert math.isclose(float(results[0]), expected, rel_tol=1e-5)


def test_forward_gives_the_batch_value_and_accumulates():
    first, second = _pair(2, seed=6), _pair(2, seed=7)
    metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    batch_value = metric(*first)
    metric(*second)
    assert math.isclose(float(batch_value), _reference(_numpy_psnr, [first]), rel_tol=1e-5)
    assert math.isclose(float(metric.compute()), _reference(_numpy_psnr, [first, second]), rel_tol=1e-5)


def test_gradients_flow_through_forward_for_a_differentiable_metric():
    preds, target = _pair(1, seed=8, frames=2)
    preds.requires_grad_(True)
    metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    metric(preds, target).backward()
    assert preds.grad is not None and preds.grad.abs().sum() > 0


class _LowerIsBetter(Metric):
    higher_is_better = False
    is_differentiable = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.total = self.total + (preds - target).abs().mean()

    def compute(self) -> torch.Tensor:
        return self.total


def test_higher_is_better_and_is_differentiable_come_from_the_metric():
    psnr = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    assert psnr.higher_is_better is True and psnr.is_differentiable is True
    lower = PerFrameImageMetric(_LowerIsBetter())
    assert lower.higher_is_better is False and lower.is_differentiable is False
    fast = PerFrameImageMetric(PSNR_PER_IMAGE)
    assert fast.higher_is_better is None and fast.is_differentiable is None


def test_the_users_metric_is_never_modified_and_its_state_is_not_used():
    user = PeakSignalNoiseRatio(data_range=1.0)
    user.update(*(x[0] for x in _pair(1, seed=9)))  # the user's own accumulated state
    before = {name: value.clone() for name, value in user.metric_state.items()}
    preds, target = _pair(2, seed=10)
    metric = PerFrameImageMetric(user)
    metric.update(preds, target)
    metric.to(torch.bfloat16)
    assert metric.metric is not user and user._update_count == 1
    assert all(torch.equal(before[name], value) for name, value in user.metric_state.items())
    assert math.isclose(float(metric.compute()), _reference(_numpy_psnr, [(preds, target)]), rel_tol=1e-5)


def test_states_keep_float64_and_int64_and_the_image_metric_float32_under_a_bfloat16_cast():
    preds, target = _pair(2, seed=11)
    expected = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    expected.update(preds, target)
    metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0)).to(torch.bfloat16)
    metric.update(preds, target)
    assert metric.sum_value.dtype == torch.float64 and metric.num_videos.dtype == torch.int64
    assert metric.metric.sum_squared_error.dtype == torch.float32
    assert torch.equal(metric.compute(), expected.compute())
    assert "metric" not in "".join(metric.state_dict())  # the scratch copy is not saved


def _fails(metric: PerFrameImageMetric, *args) -> str:
    before = (metric.sum_value.clone(), metric.num_videos.clone(), metric._update_count)
    with pytest.raises(ValueError) as error:
        metric.update(*args)
    assert torch.equal(metric.sum_value, before[0]) and torch.equal(metric.num_videos, before[1])
    assert metric._update_count == before[2]
    return str(error.value)


def test_bad_videos_raise_and_accumulate_nothing():
    preds, target = _pair(2, seed=12)
    for image_metric in (PeakSignalNoiseRatio(data_range=1.0), PSNR_PER_IMAGE):
        metric = PerFrameImageMetric(image_metric)
        metric.update(preds, target)
        assert "same shape, but got (2, 2, 3, 16, 16) and (2, 3, 3, 16, 16)" in _fails(metric, preds[:, :2], target)
        assert "Argument `preds` expected to be a tensor with 5 dimensions" in _fails(metric, preds[0], target[0])
        assert "Argument `target` expected floating point values in [0, 1]" in _fails(metric, preds, target * 2)
        assert math.isclose(float(metric.compute()), _reference(_numpy_psnr, [(preds, target)]), rel_tol=1e-5)


@pytest.mark.parametrize(
    ("fn", "seen"),
    [
        (functools.partial(peak_signal_noise_ratio, data_range=1.0), "returned shape []"),
        (lambda p, t: ((p - t) ** 2).mean(dim=(2, 3)), "returned shape [6, 3]"),
        (lambda p, t: [0.0] * p.shape[0], "returned list"),
        (lambda p, t: torch.full((p.shape[0],), float("nan")), "gave NaN for frame 0 of video 0"),
    ],
)
def test_a_callable_that_does_not_return_n_finite_values_raises(fn, seen):
    metric = PerFrameImageMetric(fn)
    message = _fails(metric, *_pair(2, seed=13))
    assert "Argument `metric`" in message and seen in message


def test_a_metric_computing_several_values_raises():
    metric = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0, reduction="none", dim=(2, 3)))
    assert "computing one value for a frame pair, but PeakSignalNoiseRatio computed shape [3]" in _fails(
        metric, *_pair(1, seed=14)
    )


@pytest.mark.parametrize(
    ("metric", "seen"), [(3, "but got int."), (PeakSignalNoiseRatio, "but got the class PeakSignalNoiseRatio")]
)
def test_bad_metric_raises_at_construction(metric, seen):
    with pytest.raises(ValueError, match="Argument `metric` expected a `torchmetrics.Metric` or a callable") as error:
        PerFrameImageMetric(metric)
    assert seen in str(error.value)


def test_bad_layout_raises_and_compute_without_videos_is_nan_with_a_warning():
    with pytest.raises(ValueError, match="Argument `layout`"):
        PerFrameImageMetric(PSNR_PER_IMAGE, layout="TBCHW")
    with pytest.warns(UserWarning, match="no video was counted"):
        assert math.isnan(PerFrameImageMetric(PSNR_PER_IMAGE).compute().item())


def test_a_perfect_frame_gives_psnr_inf_as_torchmetrics_does():
    preds, target = _pair(2, seed=17)
    for image_metric in (PeakSignalNoiseRatio(data_range=1.0), PSNR_PER_IMAGE):
        metric = PerFrameImageMetric(image_metric)
        metric.update(target, target)
        assert metric.compute().item() == float("inf") and metric.num_videos.item() == 2


def _ddp_per_frame(rank: int, world_size: int, preds: torch.Tensor, target: torch.Tensor) -> list:
    results = []
    for image_metric in (PeakSignalNoiseRatio(data_range=1.0), PSNR_PER_IMAGE):
        metric = PerFrameImageMetric(image_metric)
        for batch in range(2):  # two updates of one video per process
            index = slice(2 * batch + rank, 2 * batch + rank + 1)
            metric.update(preds[index], target[index])
        results.append(metric.compute())
    return results


def test_two_processes_give_the_value_of_one():
    preds, target = _pair(4, seed=15)
    expected = _reference(_numpy_psnr, [(preds, target)])
    for per_rank in run_distributed(_ddp_per_frame, preds, target):
        for value in per_rank:  # the Metric (its per-frame copy not synchronized), then the callable
            assert math.isclose(float(value), expected, rel_tol=1e-5)


def test_the_image_metric_follows_the_wrapper_to_another_device():
    metric = PerFrameImageMetric(StructuralSimilarityIndexMeasure(data_range=1.0)).to("meta")
    assert metric.metric.device.type == "meta" and metric.sum_value.device.type == "meta"

"""TemporalFlickering and temporal_flickering against hand-computed values and a NumPy loop mirroring VBench."""

import math

import numpy as np
import pytest
import torch

from tests.helpers.ddp import run_distributed
from torchmetrics_ext.functional.video import temporal_flickering
from torchmetrics_ext.video import TemporalFlickering


def _uint8_videos(n: int, seed: int, frames: int = 5, channels: int = 3, size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, frames, channels, size, size), generator=generator, dtype=torch.uint8)


def _vbench_reference(videos_btchw: np.ndarray) -> float:
    """VBench's ``temporal_flickering``: per video the mean over pairs of ``mean(absdiff)``, then the mean of scores."""
    scores = []
    for video in videos_btchw:
        frames = [frame.astype(np.float32) for frame in video]  # VBench casts the uint8 frames to float32
        maes = [float(np.mean(np.abs(frames[i] - frames[i + 1]), dtype=np.float64)) for i in range(len(frames) - 1)]
        scores.append((255.0 - float(np.mean(maes))) / 255.0)
    return float(np.mean(scores))


def test_black_white_alternation_is_0_and_static_videos_are_1():
    flicker = torch.zeros(1, 4, 3, 5, 5, dtype=torch.uint8)
    flicker[:, 1::2] = 255
    assert temporal_flickering(flicker).item() == 0.0
    static = torch.rand(1, 1, 2, 5, 5).expand(2, 6, 2, 5, 5)
    assert temporal_flickering(static).item() == 1.0
    mixed = torch.cat([flicker.float() / 255, static[:1, :4, :1].expand(1, 4, 3, 5, 5)])
    assert temporal_flickering(mixed).item() == 0.5


def test_a_small_uint8_case_by_hand():
    # frames 0, 10, 40 everywhere: |diff| 10 and 30, mean 20, score (255 - 20) / 255
    video = torch.tensor([0, 10, 40], dtype=torch.uint8).view(1, 3, 1, 1, 1).expand(1, 3, 2, 3, 3)
    assert math.isclose(temporal_flickering(video).item(), 235 / 255, rel_tol=1e-7)


def test_uint8_equals_the_numpy_loop_of_vbench():
    videos = _uint8_videos(3, seed=0, frames=6)
    expected = _vbench_reference(videos.numpy())
    assert math.isclose(temporal_flickering(videos).item(), expected, rel_tol=1e-6)
    metric = TemporalFlickering()
    metric.update(videos)
    assert math.isclose(metric.compute().item(), expected, rel_tol=1e-6)


def test_float_input_equals_uint8_divided_by_255():
    videos = _uint8_videos(2, seed=1)
    assert abs(temporal_flickering(videos.float() / 255).item() - temporal_flickering(videos).item()) < 1e-6
    assert abs(temporal_flickering(videos.double() / 255).item() - temporal_flickering(videos).item()) < 1e-6


def test_bcthw_layout_and_any_number_of_channels():
    videos = _uint8_videos(2, seed=2, channels=1)
    expected = temporal_flickering(videos)
    assert torch.equal(temporal_flickering(videos.transpose(1, 2).contiguous(), layout="BCTHW"), expected)
    metric = TemporalFlickering(layout="BCTHW")
    metric.update(videos.transpose(1, 2))
    assert math.isclose(metric.compute().item(), expected.item(), rel_tol=1e-6)


def test_class_over_several_updates_equals_the_functional_over_all_videos():
    videos = torch.cat([_uint8_videos(3, seed=3), _uint8_videos(2, seed=4) // 4])  # different scores per video
    metric = TemporalFlickering()
    for batch in videos.split(2):
        metric.update(batch)
    result = metric.compute()
    assert result.dtype == torch.float32 and result.shape == ()
    assert math.isclose(result.item(), temporal_flickering(videos).item(), rel_tol=1e-6)
    assert math.isclose(result.item(), _vbench_reference(videos.numpy()), rel_tol=1e-6)
    assert int(metric.num_videos) == 5


def test_states_keep_their_dtype_through_a_bfloat16_cast():
    metric = TemporalFlickering().to(torch.bfloat16)
    videos = _uint8_videos(2, seed=5)
    metric.update(videos)
    assert metric.flickering_sum.dtype == torch.float64 and metric.num_videos.dtype == torch.int64
    assert math.isclose(metric.compute().item(), temporal_flickering(videos).item(), rel_tol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(2, 3, 5, 5),  # 4 dimensions
        torch.rand(2, 1, 3, 5, 5),  # one frame
        torch.rand(2, 3, 3, 5, 5) * 2,  # float outside [0, 1]
        torch.randint(0, 255, (2, 3, 3, 5, 5), dtype=torch.int32),  # neither uint8 nor floating point
    ],
    ids=["ndim", "one-frame", "out-of-range", "int32"],
)
def test_bad_videos_raise_and_leave_the_states_unchanged(bad):
    metric = TemporalFlickering()
    metric.update(_uint8_videos(2, seed=6))
    before = (metric.flickering_sum.clone(), metric.num_videos.clone())
    with pytest.raises(ValueError, match="Argument `videos`"):
        metric.update(bad)
    with pytest.raises(ValueError, match="Argument `videos`"):
        metric(bad)
    assert torch.equal(metric.flickering_sum, before[0]) and torch.equal(metric.num_videos, before[1])
    with pytest.raises(ValueError, match="Argument `videos`"):
        temporal_flickering(bad)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_bad_layout_raises_and_compute_without_videos_is_nan_with_a_warning():
    with pytest.raises(ValueError, match="Argument `layout` expected to be one of"):
        TemporalFlickering(layout="BHWTC")
    with pytest.warns(UserWarning, match="no video was counted"):
        assert math.isnan(TemporalFlickering().compute().item())


def _ddp_flickering(rank: int, world_size: int, videos: torch.Tensor) -> float:
    metric = TemporalFlickering()
    metric.update(videos[rank::world_size])
    return metric.compute().item()


def test_two_processes_give_the_value_of_one():
    videos = torch.cat([_uint8_videos(3, seed=7), _uint8_videos(2, seed=8) // 3])  # 5 videos: 3 and 2 per rank
    metric = TemporalFlickering()
    metric.update(videos)
    expected = metric.compute().item()
    for value in run_distributed(_ddp_flickering, videos):
        assert math.isclose(value, expected, rel_tol=1e-6)

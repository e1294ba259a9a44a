"""FlowWarpingError and flow_warping_error against a NumPy port of Lai et al.'s evaluation, known motion, DDP."""

import math

import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import raft_small

from tests.functional.test_warp import smooth_field
from tests.helpers.ddp import run_distributed
from tests.helpers.flow_reference import lai_warping_error
from torchmetrics_ext.functional.video import flow_warping_error
from torchmetrics_ext.models import RAFTFlow
from torchmetrics_ext.video import FlowWarpingError


def translating_videos(batch: int, frames: int, dx: float, dy: float, size=(24, 32), seed: int = 0):
    """Videos of a smooth image moving by (dx, dy) a frame, with their exact forward and backward flows."""
    videos = []
    for b in range(batch):
        sample = smooth_field(*size, seed=seed + b)
        videos.append(torch.stack([sample(t * dx, t * dy) for t in range(frames)]))
    videos = torch.stack(videos).float()  # [B, T, 3, H, W]
    forward = torch.tensor([dx, dy]).view(1, 1, 2, 1, 1).expand(batch, frames - 1, 2, *size).contiguous()
    return videos, forward, -forward


def reference(videos: torch.Tensor, forward: torch.Tensor, backward=None) -> float:
    """Mean over videos of the NumPy port's per-video error (videos with a visible pixel only)."""
    errors = []
    for b in range(videos.shape[0]):
        video = videos[b].permute(0, 2, 3, 1).double().numpy()
        fw = forward[b].permute(0, 2, 3, 1).double().numpy()
        bw = None if backward is None else backward[b].permute(0, 2, 3, 1).double().numpy()
        errors.append(lai_warping_error(video, fw, bw))
    return float(np.nanmean(errors))


def random_case(batch=3, frames=4, size=(10, 12), seed=0):
    generator = torch.Generator().manual_seed(seed)
    videos = torch.rand(batch, frames, 3, *size, generator=generator)
    forward = 1.5 + 0.05 * torch.randn(batch, frames - 1, 2, *size, generator=generator)
    forward[..., 7:] -= 3.0  # motion boundaries
    backward = -forward + 0.5 * torch.randn(batch, frames - 1, 2, *size, generator=generator)
    return videos, forward, backward


@pytest.mark.parametrize("occlusion", ["lai", "none"])
def test_matches_the_numpy_port_of_lai_on_random_videos_and_flows(occlusion):
    videos, forward, backward = random_case()
    expected = reference(videos, forward, backward if occlusion == "lai" else None)
    value = flow_warping_error(videos, forward, backward, occlusion=occlusion)
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), expected, rel_tol=1e-5)
    metric = FlowWarpingError(flow=None, occlusion=occlusion)
    for i in range(3):  # one video per update: the same mean over videos
        metric.update(videos[i : i + 1], flows=(forward[i : i + 1], backward[i : i + 1]))
    assert math.isclose(metric.compute().item(), expected, rel_tol=1e-5)


@pytest.mark.parametrize(("dx", "dy"), [(2.0, 1.0), (0.5, -0.25), (1.3, 0.7)])
def test_exact_flow_gives_almost_nothing_and_a_wrong_flow_a_large_error(dx, dy):
    videos, forward, backward = translating_videos(2, 4, dx, dy)
    exact = flow_warping_error(videos, forward, backward).item()
    wrong = flow_warping_error(videos, -forward, -backward, occlusion="none").item()
    still = flow_warping_error(videos, forward * 0, backward * 0).item()
    assert exact < 1e-4  # interpolation of a smooth image, and the content entering at the frame's border
    assert wrong > 20 * exact and still > 5 * exact


def test_uint8_equals_float_over_255_and_bcthw_equals_btchw():
    videos, forward, backward = random_case(seed=1)
    quantized = (videos * 255).round().to(torch.uint8)
    as_float = flow_warping_error(quantized.float() / 255, forward, backward)
    torch.testing.assert_close(flow_warping_error(quantized, forward, backward), as_float)
    torch.testing.assert_close(
        flow_warping_error(videos.transpose(1, 2), forward, backward, layout="BCTHW"),
        flow_warping_error(videos, forward, backward),
    )


def test_a_fully_occluded_pair_is_left_out_and_a_fully_occluded_video_too():
    videos, forward, backward = random_case(batch=2, frames=3, seed=2)
    backward[0, 0] = forward[0, 0] + 5  # the round trip misses by over 3 pixels: every pixel of pair 0 occluded
    backward[1] = forward[1] + 5  # the whole second video occluded
    metric = FlowWarpingError(flow=None)
    metric.update(videos, flows=(forward, backward))
    expected = reference(videos[:1, 1:], forward[:1, 1:], backward[:1, 1:])  # video 0's second pair alone
    assert metric.num_videos.item() == 1
    assert math.isclose(metric.compute().item(), expected, rel_tol=1e-5)
    metric = FlowWarpingError(flow=None)
    metric.update(videos[1:], flows=(forward[1:], backward[1:]))
    with pytest.warns(UserWarning, match="no video was counted"):
        assert math.isnan(metric.compute().item())


class RecordingFlow:
    """A flow estimator that returns the exact translation and records what it was called with."""

    def __init__(self, dx: float, dy: float) -> None:
        self.dx, self.dy, self.calls = dx, dy, []

    def __call__(self, frames_a, frames_b):
        self.calls.append((frames_a.clone(), frames_b.clone()))
        n, _, height, width = frames_a.shape
        flow = torch.tensor([self.dx, self.dy]).view(1, 2, 1, 1).expand(n, 2, height, width).clone()
        flow[n // 2 :] *= -1  # the second half of the batch is the backward direction
        return flow


def test_the_estimator_gets_both_directions_in_one_call_and_the_source_video():
    videos, forward, backward = translating_videos(2, 3, 1.0, 0.5)
    estimator = RecordingFlow(1.0, 0.5)
    metric = FlowWarpingError(flow=estimator)
    metric.update(videos)
    assert len(estimator.calls) == 1
    frames_a, frames_b = estimator.calls[0]
    assert frames_a.shape == (8, 3, 24, 32)  # 2 videos x 2 pairs x 2 directions
    torch.testing.assert_close(frames_a[:4], videos[:, :-1].reshape(4, 3, 24, 32))
    torch.testing.assert_close(frames_a[4:], frames_b[:4])
    torch.testing.assert_close(metric.compute(), flow_warping_error(videos, forward, backward))
    # Lai's protocol: the flow of the source scores the output
    output = (videos + 0.05 * torch.rand_like(videos)).clamp(0, 1)
    metric = FlowWarpingError(flow=estimator)
    metric.update(output, source=videos)
    torch.testing.assert_close(estimator.calls[-1][0][:4], videos[:, :-1].reshape(4, 3, 24, 32))
    torch.testing.assert_close(metric.compute(), flow_warping_error(output, forward, backward))
    # without occlusion masks only the forward direction is estimated
    metric = FlowWarpingError(flow=estimator, occlusion="none")
    metric.update(videos)
    assert estimator.calls[-1][0].shape[0] == 4


def test_random_raft_small_through_the_metric_small_frames_no_nan(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    metric = FlowWarpingError(flow="raft_small", weights=path, num_flow_updates=1)
    assert isinstance(metric.flow, RAFTFlow) and metric.flow.num_flow_updates == 1
    assert not any(key.startswith("_flow") or "model" in key for key in metric.state_dict())
    metric = metric.to(torch.bfloat16)  # states and RAFT keep their dtypes
    assert metric.error_sum.dtype == torch.float64 and next(metric.flow.parameters()).dtype == torch.float32
    videos = torch.randint(0, 256, (1, 3, 3, 16, 16), dtype=torch.uint8)
    metric.update(videos)
    value = metric.compute()
    assert torch.isfinite(value) and value.item() >= 0 and metric.num_videos.item() == 1


def _ddp_worker(rank: int, world_size: int, videos, forward, backward):
    metric = FlowWarpingError(flow=None)
    part = slice(rank, None, world_size)
    metric.update(videos[part], flows=(forward[part], backward[part]))
    return metric.compute()


def test_ddp_equals_one_process():
    videos, forward, backward = random_case(batch=5, seed=3)  # 3 videos on one process, 2 on the other
    results = run_distributed(_ddp_worker, videos, forward, backward)
    single = FlowWarpingError(flow=None)
    single.update(videos, flows=(forward, backward))
    expected = single.compute()
    for value in results:
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)


def _bad_updates():
    videos, forward, backward = random_case(batch=2, frames=3)
    return [
        ({"videos": videos[:, :1], "flows": (forward[:, :0], backward[:, :0])}, "at least 2 frames"),
        ({"videos": videos[0], "flows": (forward, backward)}, "5 dimensions"),
        ({"videos": videos * 2, "flows": (forward, backward)}, r"values in \[0, 1\]"),
        ({"videos": videos, "flows": (forward[:, :1], backward)}, "Argument `flows_fw` expected a floating point"),
        ({"videos": videos, "flows": (forward, backward[..., :5])}, "Argument `flows_bw` expected a floating point"),
        ({"videos": videos, "flows": (forward, None)}, "backward flows for `occlusion='lai'`"),
        ({"videos": videos, "flows": (forward * float("nan"), backward)}, "finite flows"),
        ({"videos": videos, "flows": forward}, r"a pair \(forward, backward\)"),
        ({"videos": videos, "flows": (forward, backward), "source": videos}, "one of them at most"),
        ({"videos": videos}, "with `flow=None`"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_bad_input_raises_and_leaves_the_states_alone(case):
    kwargs, message = _bad_updates()[case]
    videos, forward, backward = random_case(batch=2, frames=3, seed=4)
    metric = FlowWarpingError(flow=None)
    metric.update(videos, flows=(forward, backward))
    before = (metric.error_sum.clone(), metric.num_videos.clone())
    with pytest.raises(ValueError, match=message):
        metric.update(**kwargs)
    with pytest.raises(ValueError, match=message):
        metric(**kwargs)
    assert torch.equal(metric.error_sum, before[0]) and torch.equal(metric.num_videos, before[1])


def test_bad_estimators_and_arguments():
    videos, _, _ = translating_videos(1, 2, 1.0, 0.0)
    metric = FlowWarpingError(flow=lambda a, b: torch.zeros(a.shape[0], 2, 5, 5))
    with pytest.raises(ValueError, match=r"expected an estimator returning flows \[2, 2, 24, 32\]"):
        metric.update(videos)
    metric = FlowWarpingError(flow=lambda a, b: torch.full((a.shape[0], 2, 24, 32), float("nan")))
    with pytest.raises(ValueError, match="non-finite flows"):
        metric.update(videos)
    assert metric.num_videos.item() == 0
    estimator = RecordingFlow(1.0, 0.0)
    with pytest.raises(ValueError, match="Argument `source` expected the shape of `videos`"):
        FlowWarpingError(flow=estimator).update(videos, source=videos[:, :, :, :8])
    with pytest.raises(ValueError, match="Argument `flow` expected one of"):
        FlowWarpingError(flow="farneback")
    with pytest.raises(ValueError, match="Argument `flow` expected one of"):
        FlowWarpingError(flow=3)
    with pytest.raises(ValueError, match="Argument `weights` expected `None` unless"):
        FlowWarpingError(flow=None, weights="C_T_V2")
    with pytest.raises(ValueError, match="Argument `occlusion` expected to be one of"):
        FlowWarpingError(flow=None, occlusion="brox")
    with pytest.raises(ValueError, match="Argument `layout` expected to be one of"):
        FlowWarpingError(flow=None, layout="TBCHW")

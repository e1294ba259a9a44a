"""TemporalConsistency and temporal_consistency against a NumPy float64 reference of the three formulas."""

import math
from urllib.error import URLError

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers.ddp import run_distributed
from torchmetrics_ext.functional.video import temporal_consistency
from torchmetrics_ext.video import TemporalConsistency

REFERENCES = ("adjacent", "first", "vbench")


def _pool_encoder() -> nn.Module:
    """[N, C, H, W] -> [N, 4 C]: the mean of each channel over each quarter of the frame. No weights."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())


def _mixing_encoder(seed: int = 0) -> nn.Module:
    """[N, 3, H, W] -> [N, 5]: parameters and signs, so that cosines can be negative."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 5), nn.Tanh())


def _videos(n: int, seed: int, frames: int = 4, channels: int = 3, size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, frames, channels, size, size, generator=generator)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _reference_scores(embeddings: np.ndarray, reference: str) -> list:
    """The per-video score, frame by frame as VBench loops."""
    scores = []
    for video in embeddings.astype(np.float64):
        terms = []
        for t in range(1, len(video)):
            adjacent, first = _cos(video[t - 1], video[t]), _cos(video[0], video[t])
            terms.append(
                {"adjacent": adjacent, "first": first, "vbench": (max(0.0, adjacent) + max(0.0, first)) / 2}[reference]
            )
        scores.append(sum(terms) / len(terms))
    return scores


def _reference_embeddings(encoder: nn.Module, videos: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.stack([encoder(video).double().numpy() for video in videos])  # one video at a time


@pytest.mark.parametrize("reference", REFERENCES)
def test_static_videos_give_exactly_1(reference):
    embeddings = torch.randn(3, 1, 7).expand(3, 5, 7)
    assert temporal_consistency(embeddings, reference=reference).item() == 1.0
    metric = TemporalConsistency(encoder=_mixing_encoder(), reference=reference)
    metric.update(_videos(2, seed=0, frames=1).expand(2, 4, 3, 6, 6))
    assert metric.compute().item() == 1.0


@pytest.mark.parametrize("reference", REFERENCES)
def test_functional_equals_the_numpy_reference_on_random_embeddings(reference):
    generator = torch.Generator().manual_seed(1)
    embeddings = torch.randn(4, 6, 5, generator=generator, dtype=torch.float64)  # negative cosines are common
    expected = float(np.mean(_reference_scores(embeddings.numpy(), reference)))
    result = temporal_consistency(embeddings, reference=reference)
    assert result.dtype == torch.float32 and result.shape == ()
    assert math.isclose(result.item(), expected, rel_tol=1e-6, abs_tol=1e-7)
    assert math.isclose(temporal_consistency(embeddings.float(), reference).item(), expected, abs_tol=1e-6)


def test_vbench_counts_negative_cosines_as_0():
    # e1 is opposite to e0 (cos -1), e2 is orthogonal to e1 and to e0 (cos 0): adjacent -> (-1 + 0) / 2
    embeddings = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    assert math.isclose(temporal_consistency(embeddings, "adjacent").item(), -0.5, abs_tol=1e-7)
    assert math.isclose(temporal_consistency(embeddings, "first").item(), -0.5, abs_tol=1e-7)
    # vbench: t=1 (max(0, -1) + max(0, -1)) / 2 = 0, t=2 (0 + 0) / 2 = 0; without clipping it would be -0.5
    assert temporal_consistency(embeddings, "vbench").item() == 0.0
    # e2 = (1, 1): cos(e1, e2) = -1/sqrt2 clipped, cos(e0, e2) = 1/sqrt2 kept -> (0 + (0 + 1/sqrt2) / 2) / 2
    embeddings = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]]])
    assert math.isclose(temporal_consistency(embeddings, "vbench").item(), 1 / (4 * math.sqrt(2)), rel_tol=1e-6)


@pytest.mark.parametrize("reference", REFERENCES)
def test_class_equals_the_numpy_reference_through_a_custom_encoder(reference):
    encoder = _mixing_encoder()
    batches = [_videos(2, seed=2, frames=5), _videos(3, seed=3, frames=5)]
    metric = TemporalConsistency(encoder=encoder, reference=reference)
    for batch in batches:
        metric.update(batch)
    scores = [s for batch in batches for s in _reference_scores(_reference_embeddings(encoder, batch), reference)]
    result = metric.compute()
    assert result.dtype == torch.float32
    assert math.isclose(result.item(), float(np.mean(scores)), rel_tol=1e-5, abs_tol=1e-6)
    assert int(metric.num_videos) == 5


def test_videos_of_different_lengths_weigh_the_same_unlike_vbenchs_frame_weighting():
    encoder = _mixing_encoder()
    short, long = _videos(1, seed=11, frames=2), _videos(1, seed=12, frames=7)
    metric = TemporalConsistency(encoder=encoder, reference="vbench")
    metric.update(short)
    metric.update(long)
    (s_short,), (s_long,) = (_reference_scores(_reference_embeddings(encoder, v), "vbench") for v in (short, long))
    assert math.isclose(metric.compute().item(), (s_short + s_long) / 2, rel_tol=1e-6)
    per_frame = (s_short * 1 + s_long * 6) / 7  # VBench's single-process value
    assert not math.isclose(metric.compute().item(), per_frame, rel_tol=1e-3)


def test_chunks_of_3_frames_equal_one_chunk_and_uint8_bcthw_is_supported():
    videos = (_videos(3, seed=4, frames=5) * 255).round().to(torch.uint8)
    values = []
    for batch_size, layout, x in ((64, "BTCHW", videos), (3, "BTCHW", videos), (3, "BCTHW", videos.transpose(1, 2))):
        metric = TemporalConsistency(encoder=_pool_encoder(), reference="vbench", layout=layout, batch_size=batch_size)
        metric.update(x)
        values.append(metric.compute().item())
    assert math.isclose(values[0], values[1], rel_tol=1e-6) and math.isclose(values[0], values[2], rel_tol=1e-6)
    embeddings = _reference_embeddings(_pool_encoder(), videos.float() / 255)
    assert math.isclose(values[0], float(np.mean(_reference_scores(embeddings, "vbench"))), rel_tol=1e-5)


def test_encoder_is_frozen_out_of_state_dict_and_keeps_float32_through_a_bfloat16_cast():
    encoder = _mixing_encoder().train()
    metric = TemporalConsistency(encoder=encoder).to(torch.bfloat16)
    assert metric.encoder is encoder and not metric.encoder.training
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in encoder.parameters())
    assert set(metric.state_dict()) <= {"consistency_sum", "num_videos"} and not list(metric.parameters())
    videos = _videos(2, seed=5)
    metric.update(videos)
    assert metric.consistency_sum.dtype == torch.float64 and metric.num_videos.dtype == torch.int64
    expected = float(np.mean(_reference_scores(_reference_embeddings(encoder, videos), "adjacent")))
    assert math.isclose(metric.compute().item(), expected, rel_tol=1e-5)


class _Shaped(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        (_Shaped(lambda x: x.mean(dim=(2, 3))[:-1]), r"embeddings of shape \[8, D\] for 8 frames"),
        (_Shaped(lambda x: x), r"embeddings of shape \[8, D\] for 8 frames, but returned shape \[8, 3, 6, 6\]"),
        (_Shaped(lambda x: x.mean(dim=(2, 3)) / 0), "non-finite embeddings"),
    ],
    ids=["rows", "ndim", "non-finite"],
)
def test_bad_encoder_outputs_raise_and_leave_the_states_unchanged(encoder, message):
    metric = TemporalConsistency(encoder=encoder)
    metric.consistency_sum += 0.25  # pretend earlier updates
    metric.num_videos += 1
    with pytest.raises(ValueError, match=message):
        metric.update(_videos(2, seed=6))
    assert metric.consistency_sum.item() == 0.25 and metric.num_videos.item() == 1


def test_bad_videos_raise_and_leave_the_states_unchanged():
    metric = TemporalConsistency(encoder=_pool_encoder())
    metric.update(_videos(2, seed=7))
    before = (metric.consistency_sum.clone(), metric.num_videos.clone())
    for bad in (_videos(2, seed=8, frames=1), _videos(2, seed=8) * 2, _videos(2, seed=8)[0]):
        with pytest.raises(ValueError, match="Argument `videos`"):
            metric.update(bad)
        with pytest.raises(ValueError, match="Argument `videos`"):
            metric(bad)
    assert torch.equal(metric.consistency_sum, before[0]) and torch.equal(metric.num_videos, before[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "x"}, r"`reference` expected to be one of \('adjacent', 'first', 'vbench'\) but got 'x'"),
        ({"encoder": "resnet50"}, r"`encoder` expected one of \('vit_b_16',\) or an `nn.Module`, but got 'resnet50'"),
        ({"encoder": lambda x: x}, "Argument `encoder` expected .* but got function"),
        ({"batch_size": 0}, "Argument `batch_size`"),
        ({"layout": "TBCHW"}, "Argument `layout`"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalConsistency(**{"encoder": _pool_encoder(), **kwargs})


def test_bad_embeddings_and_reference_raise_in_the_functional():
    bad_embeddings = (
        torch.randn(2, 1, 4),  # one frame
        torch.randn(2, 4),  # 2 dimensions
        torch.ones(2, 3, 4, dtype=torch.int64),
        torch.full((1, 2, 3), math.nan),
    )
    for bad in bad_embeddings:
        with pytest.raises(ValueError, match="Argument `embeddings`"):
            temporal_consistency(bad)
    with pytest.raises(ValueError, match="Argument `reference`"):
        temporal_consistency(torch.randn(2, 3, 4), reference="last")


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_compute_without_videos_is_nan_with_a_warning():
    with pytest.warns(UserWarning, match="no video was counted"):
        assert math.isnan(TemporalConsistency(encoder=_pool_encoder()).compute().item())


class _FakeViT(nn.Module):
    """Stands for torchvision's ViT: a ``heads`` classifier after a pooled representation."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.pool(x))


def test_the_default_encoder_is_torchvisions_vit_b_16_without_its_head(monkeypatch):
    from torchvision import models

    calls = []

    def fake_vit_b_16(weights=None, progress=True):
        calls.append(weights)
        return _FakeViT()

    monkeypatch.setattr(models, "vit_b_16", fake_vit_b_16)
    metric = TemporalConsistency()
    assert calls == [models.ViT_B_16_Weights.IMAGENET1K_V1] and metric.encoder_name == "vit_b_16"
    _, network = metric.encoder
    assert isinstance(network.heads, nn.Identity) and not metric.encoder.training
    videos = _videos(1, seed=9, size=20)
    metric.update(videos)
    # the reference: the weights' transforms (resize 256, crop 224, ImageNet normalisation) then the pooled RGB
    frames = nn.functional.interpolate(videos[0], size=256, mode="bilinear", antialias=True)[..., 16:240, 16:240]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    embeddings = ((frames.mean(dim=(2, 3)) - mean) / std).double().numpy()[None]
    assert math.isclose(metric.compute().item(), _reference_scores(embeddings, "adjacent")[0], rel_tol=1e-5)
    with pytest.raises(ValueError, match="expected 3 channels"):
        metric.update(_videos(1, seed=9, channels=1))


def test_a_failed_download_of_the_default_weights_is_not_swallowed(monkeypatch):
    from torchvision import models

    def offline_vit_b_16(weights=None, progress=True):
        raise URLError("no network")

    monkeypatch.setattr(models, "vit_b_16", offline_vit_b_16)
    with pytest.raises(RuntimeError, match="Could not download the vit_b_16 weights .*no network"):
        TemporalConsistency()


def _ddp_consistency(rank: int, world_size: int, videos: torch.Tensor) -> float:
    metric = TemporalConsistency(encoder=_mixing_encoder(), reference="vbench")
    metric.update(videos[rank::world_size])
    return metric.compute().item()


def test_two_processes_give_the_value_of_one():
    videos = _videos(5, seed=10)  # 3 and 2 videos per rank
    metric = TemporalConsistency(encoder=_mixing_encoder(), reference="vbench")
    metric.update(videos)
    expected = metric.compute().item()
    for value in run_distributed(_ddp_consistency, videos):
        assert math.isclose(value, expected, rel_tol=1e-6)

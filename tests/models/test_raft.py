"""RAFTFlow's input handling (range, upsampling, padding, cropping, rescaling) and load_raft, without downloads."""

from urllib.error import URLError

import pytest
import torch
from torch import nn
from torchvision.models import optical_flow
from torchvision.models.optical_flow import raft_small

from torchmetrics_ext.models import RAFTFlow, load_raft


class CoordinateFlowRAFT(nn.Module):
    """Stands in for RAFT: records its inputs and returns a flow whose u is the column index and v is 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.inputs = []

    def forward(self, image1, image2, num_flow_updates=12):
        self.inputs.append((image1.clone(), image2.clone(), num_flow_updates, self.training))
        n, _, height, width = image1.shape
        flow = torch.empty(n, 2, height, width)
        flow[:, 0] = torch.arange(width, dtype=torch.float32)
        flow[:, 1] = 0.5
        return [torch.full_like(flow, float("nan")), flow]  # only the last refinement may be used


def test_large_frames_are_padded_to_multiples_of_8_in_minus_one_to_one_and_cropped_back():
    fake = CoordinateFlowRAFT()
    frames_a, frames_b = torch.zeros(3, 3, 130, 141), torch.ones(3, 3, 130, 141)
    flow = RAFTFlow(fake, num_flow_updates=5, batch_size=2)(frames_a, frames_b)
    assert [tuple(a.shape) for a, *_ in fake.inputs] == [(2, 3, 136, 144), (1, 3, 136, 144)]  # chunks of 2 pairs
    image1, image2, updates, training = fake.inputs[0]
    assert updates == 5 and not training
    assert image1.min() == image1.max() == -1 and image2.min() == image2.max() == 1
    assert flow.shape == (3, 2, 130, 141) and flow.dtype == torch.float32
    # padding of 3 and 3 rows, 1 and 2 columns: the crop starts at column 1 of RAFT's output
    torch.testing.assert_close(flow[0, 0, 0], torch.arange(1.0, 142.0))
    assert (flow[:, 1] == 0.5).all()


def test_small_frames_are_upsampled_to_128_and_the_flow_is_rescaled_to_their_pixels():
    fake = CoordinateFlowRAFT()
    flow = RAFTFlow(fake)(torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56))
    assert tuple(fake.inputs[0][0].shape) == (2, 3, 128, 184)  # 40 x 56 scaled by 3.2 is 128 x 180, padded to 184
    assert flow.shape == (2, 2, 40, 56)
    torch.testing.assert_close(flow[:, 1], torch.full((2, 40, 56), 0.5 * 40 / 128))
    # u was the column of the 180-wide frame: in the 56-wide frame it is rescaled by 56 / 180
    middle = flow[0, 0, 20, 28].item()
    expected = (2 + ((28 + 0.5) * 180 / 56 - 0.5)) * 56 / 180  # pad offset 2, bilinear sample at the pixel centre
    assert abs(middle - expected) < 1e-4


def test_random_raft_small_runs_the_whole_pipeline_without_nan_in_float32():
    torch.manual_seed(0)
    model = RAFTFlow(raft_small(weights=None), num_flow_updates=1, batch_size=1)
    frames_a = torch.rand(2, 3, 12, 20, dtype=torch.float64)
    flow = model(frames_a, frames_a.flip(0))
    assert flow.shape == (2, 2, 12, 20) and flow.dtype == torch.float32 and torch.isfinite(flow).all()
    model.batch_size = 2
    torch.testing.assert_close(model(frames_a, frames_a.flip(0)), flow, rtol=1e-4, atol=1e-4)
    assert not model.train().training and not model.model.training  # RAFT's BatchNorm stays in eval mode


def test_frames_are_checked():
    flow = RAFTFlow(CoordinateFlowRAFT())
    with pytest.raises(ValueError, match=r"Argument `frames_a` expected float frames \[N, 3, H, W\]"):
        flow(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="Arguments `frames_a` and `frames_b` expected one shape"):
        flow(torch.rand(2, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="Argument `num_flow_updates` expected to be a positive `int`"):
        RAFTFlow(CoordinateFlowRAFT(), num_flow_updates=0)


def test_load_raft_reads_a_saved_state_dict(tmp_path):
    torch.manual_seed(1)
    saved = raft_small(weights=None)
    path = tmp_path / "raft_small.pth"
    torch.save(saved.state_dict(), path)
    loaded = load_raft("raft_small", path, num_flow_updates=3)
    assert isinstance(loaded, RAFTFlow) and loaded.num_flow_updates == 3 and not loaded.training
    for name, tensor in saved.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(ValueError, match="does not load"):
        load_raft("raft_large", path)


def test_load_raft_rejects_unknown_names_and_weights(tmp_path):
    with pytest.raises(ValueError, match="Argument `name` expected to be one of"):
        load_raft("raft_huge")
    with pytest.raises(ValueError, match=r"Argument `weights` expected `None`, a member of Raft_Small_Weights"):
        load_raft("raft_small", "C_T_SKHT_V2")  # a raft_large member
    with pytest.raises(ValueError, match="Argument `weights` expected"):
        load_raft("raft_small", tmp_path / "missing.pth")


def test_offline_default_weights_say_what_to_download_and_where(monkeypatch):
    def offline(weights=None, progress=True):
        raise URLError("no network")

    monkeypatch.setattr(optical_flow, "raft_large", offline)
    with pytest.raises(
        RuntimeError, match=r"raft_large_C_T_SKHT_V2-ff5fadd5\.pth yourself and put it at .*checkpoints"
    ):
        load_raft("raft_large")

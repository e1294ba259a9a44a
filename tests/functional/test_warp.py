"""warp and occlusion_mask against NumPy ports of Lai et al.'s Resample2d and occlusion check, and known motion."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from tests.helpers.flow_reference import lai_occlusion, resample2d
from torchmetrics_ext.functional.video import occlusion_mask, warp


def smooth_image(height: int, width: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """A smooth random image [C, H, W] in [0, 1]: a sum of low-frequency sinusoids, defined at any real position."""
    return smooth_field(height, width, seed, channels)(torch.zeros(height, width), torch.zeros(height, width))


def smooth_field(height: int, width: int, seed: int = 0, channels: int = 3):
    """A function (dx, dy) -> [C, H, W] sampling a smooth image at (x - dx, y - dy): content moved by (dx, dy)."""
    generator = torch.Generator().manual_seed(seed)
    freq = torch.rand(channels, 4, 2, generator=generator, dtype=torch.float64) * 0.12 + 0.03
    phase = torch.rand(channels, 4, generator=generator, dtype=torch.float64) * 2 * math.pi
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )

    def sample(dx, dy) -> torch.Tensor:
        x, y = xs - dx, ys - dy
        waves = torch.sin(freq[..., 0, None, None] * x + freq[..., 1, None, None] * y + phase[..., None, None])
        return (0.5 + waves.mean(dim=1) / 2).clamp(0, 1)  # [C, H, W]

    return sample


def test_warp_matches_the_resample2d_port_on_random_flows():
    generator = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 3, 9, 11, generator=generator, dtype=torch.float64)
    flow = (torch.rand(2, 2, 9, 11, generator=generator, dtype=torch.float64) - 0.5) * 8  # reaches past the borders
    warped = warp(frames, flow)
    for i in range(2):
        expected = resample2d(frames[i].permute(1, 2, 0).numpy(), flow[i].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(warped[i].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-12)


def test_integer_translation_is_undone_exactly_and_float32_keeps_its_dtype():
    frame = torch.rand(1, 3, 12, 16)
    moved = torch.roll(frame, shifts=(2, 3), dims=(-2, -1))  # content moves 3 right and 2 down
    flow = torch.zeros(1, 2, 12, 16)
    flow[:, 0], flow[:, 1] = 3.0, 2.0
    warped = warp(moved, flow)
    assert warped.dtype == torch.float32
    torch.testing.assert_close(warped[..., :-2, :-3], frame[..., :-2, :-3], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("dx", "dy"), [(0.5, 0.0), (1.25, -0.75), (-2.4, 0.3)])
def test_subpixel_translation_of_a_smooth_image_is_undone_away_from_the_borders(dx, dy):
    sample = smooth_field(32, 40, seed=2)
    current, following = sample(0.0, 0.0), sample(dx, dy)
    flow = torch.tensor([dx, dy], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 32, 40)
    error = (warp(following[None], flow)[0] - current)[:, 4:-4, 4:-4].abs().max().item()
    unwarped = (following - current)[:, 4:-4, 4:-4].abs().max().item()
    assert error < 3e-3 and unwarped > 20 * error  # bilinear interpolation error of a smooth image only


def test_warp_is_grid_sample_with_align_corners_true():
    frames = torch.rand(1, 2, 5, 7)
    flow = torch.randn(1, 2, 5, 7)
    ys, xs = torch.meshgrid(torch.arange(5.0), torch.arange(7.0), indexing="ij")
    grid = torch.stack(((xs + flow[0, 0]) / 6 * 2 - 1, (ys + flow[0, 1]) / 4 * 2 - 1), dim=-1)[None]
    expected = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)
    torch.testing.assert_close(warp(frames, flow), expected)


def test_occlusion_mask_matches_the_lai_port_on_random_flows():
    generator = torch.Generator().manual_seed(3)
    forward = 2 + 0.02 * torch.randn(3, 2, 10, 12, generator=generator, dtype=torch.float64)
    forward[:, 0, :, 6:] += 3  # a motion boundary
    noise = torch.randn(3, 2, 10, 12, generator=generator, dtype=torch.float64)
    noise[:, :, 5:] *= 0.05  # the round trip misses in the top half only
    backward = -forward + 0.6 * noise
    mask = occlusion_mask(forward, backward)
    assert mask.dtype == torch.bool and mask.shape == (3, 10, 12)
    for i in range(3):
        expected = lai_occlusion(forward[i].permute(1, 2, 0).numpy(), backward[i].permute(1, 2, 0).numpy())
        assert 0 < expected.sum() < expected.size  # a case with both kinds of pixels
        np.testing.assert_array_equal(mask[i].numpy(), expected)


def test_hand_made_occlusion_cases():
    still = torch.zeros(1, 2, 6, 8)
    assert not occlusion_mask(still, still).any()
    # a right half that moves 4 pixels right: its boundary column is flagged, and so is the column its backward
    # flow does not return from; the static left side away from the boundary is not
    forward = still.clone()
    forward[:, 0, :, 4:] = 4.0
    backward = still.clone()
    backward[:, 0, :, 4:] = -4.0  # the backward flow of the moved content, on frame t+1's grid... partly wrong
    mask = occlusion_mask(forward, backward)[0]
    assert mask[:, 3].all()  # forward difference across the motion boundary: |grad u|^2 = 16 > 0.01 * 0 + 0.002
    assert not mask[:, :3].any()
    # small round-trip misses below 0.5 pixel^2 are not occlusions, large ones are
    forward = torch.full((1, 2, 4, 4), 2.0)
    assert not occlusion_mask(forward, -forward + 0.4).any()  # |0.4, 0.4|^2 = 0.32 < 0.01 * 16 + 0.5
    assert occlusion_mask(forward, -forward + 0.6).all()  # 0.72 > 0.01 * (8 + 3.92) + 0.5 = 0.619


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 5)), "Argument `flow` expected a floating point flow of shape"),
        ((torch.rand(3, 4, 4), torch.zeros(1, 2, 4, 4)), "Argument `frames` expected"),
        ((torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 2, 4, 4)), "Argument `frames` expected"),
        ((torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.int64)), "Argument `flow` expected"),
    ],
)
def test_warp_rejects_bad_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        warp(*args)


def test_occlusion_mask_rejects_mismatched_flows():
    with pytest.raises(ValueError, match="Argument `flow_bw` expected a floating point flow of shape \\[1, 2, 4, 4\\]"):
        occlusion_mask(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 3))
    with pytest.raises(ValueError, match="Argument `flow_fw` expected"):
        occlusion_mask(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))

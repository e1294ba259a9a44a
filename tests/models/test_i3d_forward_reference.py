"""InceptionI3d's forward pass against an independent functional reference (tests/helpers/i3d_reference.py).

The shape and key tests of test_i3d.py cannot see a wrong branch order in the Inception concatenation, BN/ReLU
placement, a pool's padding or the time average of the logits; comparing the numbers can. The BatchNorms get
random running statistics and affine parameters, so none of them is the identity.
"""

import math

import pytest
import torch
from torch import nn

from tests.helpers.i3d_reference import reference_i3d_logits, reference_i3d_pooled
from torchmetrics_ext.models import InceptionI3d

# 17 frames -> ceil(17 / 8) = 3 after the network -> 2 time steps after the (2, 7, 7) pool, so the time average of
# the logits matters; 224x224 (the FVD size) gives odd SAME totals (e.g. 5 for the 7x7x7 stride-2 stem conv).
SHAPE = (1, 3, 17, 224, 224)


def _randomized_model(seed: int = 0, bn_eps: float = 1e-5) -> InceptionI3d:
    gen = torch.Generator().manual_seed(seed)
    model = InceptionI3d(bn_eps=bn_eps)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                fan_in = module.weight[0].numel()  # He init keeps the activations O(1) through the 60 layers
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, nn.BatchNorm3d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def model_and_input():
    model = _randomized_model()
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return model, x


def _assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> None:
    """Elementwise close to ``rtol`` of the tensor's scale (max |expected|), plus rtol elementwise."""
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"degenerate reference output (max |value| {scale})"
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale)


def test_logits_match_functional_reference(model_and_input):
    model, x = model_and_input
    with torch.no_grad():
        actual = model(x)
        expected = reference_i3d_logits(model.state_dict(), x, bn_eps=1e-5)
    assert actual.shape == expected.shape == (SHAPE[0], 400)
    # the logits must carry the input, not only the bias of the logits layer
    bias = model.state_dict()["logits.conv3d.bias"]
    assert (expected - bias).abs().max() > 10 * bias.abs().max()
    _assert_close_rel(actual, expected)


def test_forward_features_match_functional_reference(model_and_input):
    model, x = model_and_input
    with torch.no_grad():
        actual = model.forward_features(x)
        pooled = reference_i3d_pooled(model.state_dict(), x, bn_eps=1e-5)
    assert pooled.shape == (SHAPE[0], 1024, 2, 1, 1)
    # the two time steps differ, so averaging them (or not) is visible
    assert (pooled[:, :, 0] - pooled[:, :, 1]).abs().max() > 1e-3 * pooled.abs().max()
    expected = pooled.mean(dim=(2, 3, 4))
    assert actual.shape == expected.shape == (SHAPE[0], 1024)
    _assert_close_rel(actual, expected)


def test_bn_eps_is_used(model_and_input):
    """The pytorch-i3d port's own eps (1e-3) gives other numbers than the 1e-5 of i3d_pretrained_400.pt."""
    model, x = model_and_input
    other = _randomized_model(bn_eps=1e-3)
    with torch.no_grad():
        actual = other(x)
        expected = reference_i3d_logits(other.state_dict(), x, bn_eps=1e-3)
        wrong_eps = reference_i3d_logits(other.state_dict(), x, bn_eps=1e-5)
    _assert_close_rel(actual, expected)
    assert not torch.allclose(actual, wrong_eps, rtol=1e-4, atol=1e-4 * expected.abs().max().item())

"""InceptionI3d: the pytorch-i3d state-dict layout, TensorFlow "SAME" padding, shapes, freezing and weight loading.

The layout below is written out from the architecture (Carreira and Zisserman; the pytorch-i3d port that TATS
and cd-fvd share), independently of the model code, so a renamed module or a wrong channel count fails here.
"""

import inspect
import math
import warnings

import pytest
import torch
from torch import nn

from tests.test_docstrings import _documented_args
from torchmetrics_ext.models import InceptionI3d, TorchScriptI3d, load_i3d
from torchmetrics_ext.models.i3d import _MaxPool3dSame, _pad_same, _same_padding, _Unit3d

SMALLEST = (9, 193, 193)  # frames, height, width: the smallest input the average pool accepts

# (in_channels, b0, b1a, b1b, b2a, b2b, b3b) of each Inception block
MIXED = {
    "Mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "Mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "Mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "Mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "Mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "Mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "Mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "Mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "Mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}


def _expected_shapes(num_classes=400):
    """Every state-dict entry of the pytorch-i3d layout and its shape."""
    units = {  # name: (in, out, kernel)
        "Conv3d_1a_7x7": (3, 64, 7),
        "Conv3d_2b_1x1": (64, 64, 1),
        "Conv3d_2c_3x3": (64, 192, 3),
    }
    for name, (c_in, b0, b1a, b1b, b2a, b2b, b3b) in MIXED.items():
        units[f"{name}.b0"] = (c_in, b0, 1)
        units[f"{name}.b1a"] = (c_in, b1a, 1)
        units[f"{name}.b1b"] = (b1a, b1b, 3)
        units[f"{name}.b2a"] = (c_in, b2a, 1)
        units[f"{name}.b2b"] = (b2a, b2b, 3)
        units[f"{name}.b3b"] = (c_in, b3b, 1)  # b3a is the 3x3x3 max pool: no entries
    shapes = {}
    for name, (c_in, c_out, k) in units.items():
        shapes[f"{name}.conv3d.weight"] = (c_out, c_in, k, k, k)
        for entry in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{entry}"] = (c_out,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["logits.conv3d.weight"] = (num_classes, 1024, 1, 1, 1)  # a biased convolution, no BatchNorm
    shapes["logits.conv3d.bias"] = (num_classes,)
    return shapes


def _randomize(model, seed=0):
    """Random weights and BatchNorm statistics, so that loading them changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(noise.abs() + 0.5)
            elif name.endswith("conv3d.weight"):
                tensor.copy_(noise * math.sqrt(2.0 / tensor[0].numel()))
            else:
                tensor.copy_(noise * 0.1 + (1.0 if name.endswith("bn.weight") else 0.0))
    return model


def _video(batch=1, size=SMALLEST, seed=1):
    return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def model():
    return _randomize(InceptionI3d(frozen=True))


# --- layout -------------------------------------------------------------------------------------------------------


def test_state_dict_has_exactly_the_pytorch_i3d_keys_and_shapes(model):
    expected = _expected_shapes()
    state = model.state_dict()
    assert len(state) == len(expected) == 3 * 6 + 9 * 6 * 6 + 2  # 3 stem units, 9 blocks of 6 units, the logits
    assert sorted(state) == sorted(expected)
    assert {name: tuple(t.shape) for name, t in state.items()} == expected


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("Conv3d_1a_7x7.conv3d.weight", (64, 3, 7, 7, 7)),
        ("Conv3d_1a_7x7.bn.num_batches_tracked", ()),
        ("Mixed_3b.b0.conv3d.weight", (64, 192, 1, 1, 1)),
        ("Mixed_3b.b1b.conv3d.weight", (128, 96, 3, 3, 3)),
        ("Mixed_3b.b3b.bn.running_mean", (32,)),
        ("Mixed_5c.b3b.bn.running_var", (128,)),
        ("logits.conv3d.weight", (400, 1024, 1, 1, 1)),
        ("logits.conv3d.bias", (400,)),
    ],
)
def test_named_entries(model, key, shape):
    assert tuple(model.state_dict()[key].shape) == shape


def test_no_parameters_outside_the_convolutions_and_batchnorms(model):
    state = model.state_dict()
    assert not any(key.startswith(("logits.bn", "avg_pool", "dropout")) or ".b3a." in key for key in state)


def test_batchnorm_eps_and_num_classes_are_arguments():
    assert {m.eps for m in InceptionI3d().modules() if isinstance(m, nn.BatchNorm3d)} == {1e-5}
    small = InceptionI3d(num_classes=10, bn_eps=1e-3)
    assert {m.eps for m in small.modules() if isinstance(m, nn.BatchNorm3d)} == {1e-3}
    assert small.state_dict()["logits.conv3d.weight"].shape == (10, 1024, 1, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_classes": 0}, "`num_classes`"),
        ({"num_classes": 4.0}, "`num_classes`"),
        ({"in_channels": True}, "`in_channels`"),
        ({"bn_eps": 0.0}, "`bn_eps`"),
        ({"dropout": 1.0}, "`dropout`"),
    ],
)
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        InceptionI3d(**kwargs)


@pytest.mark.parametrize("obj", [InceptionI3d, TorchScriptI3d, load_i3d], ids=lambda obj: obj.__name__)
def test_documented_arguments_match_the_signature(obj):
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    assert sorted(_documented_args(inspect.getdoc(obj) + "\n")) == sorted(p for p in signature.parameters if p != "self")


# --- "SAME" padding -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (224, 7, 2, (2, 3)),  # Conv3d_1a_7x7 on 224 pixels: 7 - 2 = 5, the odd one after
        (9, 7, 2, (3, 3)),  # ... on 9 frames: 9 % 2 = 1, 7 - 1 = 6
        (112, 3, 2, (0, 1)),  # MaxPool3d_2a_3x3: 3 - 2 = 1
        (5, 3, 2, (1, 1)),  # MaxPool3d_4a_3x3 on 5 frames: 3 - 1 = 2
        (7, 2, 2, (0, 1)),  # MaxPool3d_5a_2x2 on 7 pixels: 2 - 1 = 1
        (8, 2, 2, (0, 0)),  # ... on 8: 2 - 2 = 0
        (28, 3, 1, (1, 1)),  # a 3x3x3 branch convolution keeps the size
        (28, 1, 1, (0, 0)),  # a 1x1x1 one needs nothing
        (10, 1, 3, (0, 0)),  # kernel below stride: no negative padding
    ],
)
def test_same_padding_by_hand(size, kernel, stride, pads):
    assert _same_padding(size, kernel, stride) == pads


def test_same_padding_is_tensorflows():
    for size in range(1, 41):
        for kernel in range(1, 8):
            for stride in range(1, 4):
                front, back = _same_padding(size, kernel, stride)
                out = math.ceil(size / stride)
                assert front + back == max((out - 1) * stride + kernel - size, 0)  # TF's formula
                assert back - front in (0, 1)
                assert (size + front + back - kernel) // stride + 1 == out


def test_pad_same_pads_each_dimension_in_its_place():
    x = torch.randn(1, 2, 4, 9, 10)  # T, H, W get (0, 0), (1, 1), (2, 3) with kernel (1, 3, 7), stride (1, 2, 2)
    padded = _pad_same(x, (1, 3, 7), (1, 2, 2))
    assert padded.shape == (1, 2, 4, 11, 15)
    assert torch.equal(padded[:, :, :, 1:-1, 2:-3], x)
    padded[:, :, :, 1:-1, 2:-3] = 0
    assert not padded.any()  # zeros around


@pytest.mark.parametrize("size", [(5, 7, 8), (6, 13, 16), (1, 1, 3)])
@pytest.mark.parametrize(("kernel", "stride"), [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 3, 3), (1, 2, 2))])
def test_conv_and_pool_outputs_are_ceil_of_size_over_stride(size, kernel, stride):
    x = torch.rand(1, 2, *size)
    expected = tuple(math.ceil(n / s) for n, s in zip(size, stride))
    assert _Unit3d(2, 3, kernel, stride)(x).shape[2:] == expected
    assert _MaxPool3dSame(kernel, stride)(x).shape[2:] == expected


# --- forward ------------------------------------------------------------------------------------------------------


def test_output_shape_and_features(model):
    video = _video(batch=2)
    with torch.no_grad():
        logits, features = model(video), model.forward_features(video)
    assert logits.shape == (2, 400) and features.shape == (2, InceptionI3d.FEATURE_DIM)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    head = model.logits.conv3d  # the logits are linear in the time-averaged features
    torch.testing.assert_close(logits, features @ head.weight.flatten(1).T + head.bias, rtol=1e-4, atol=1e-4)


def test_network_shrinks_time_by_8_and_space_by_32(model):
    with torch.no_grad():  # 17 frames, 225 pixels: ceil gives 3 steps and 8x8 pixels into the (2, 7, 7) pool
        assert model._pooled(_video(size=(17, 225, 200))).shape == (1, 1024, 2, 2, 1)


def test_minimum_frames_and_size(model):
    """9 frames and 193 pixels are the least the average pool accepts; one less fails inside the network."""
    frames, height, width = SMALLEST
    assert (InceptionI3d.MIN_FRAMES, InceptionI3d.MIN_SIZE) == (frames, height)
    with torch.no_grad():
        assert model._pooled(_video(size=SMALLEST)).shape == (1, 1024, 1, 1, 1)
        for size in [(frames - 1, height, width), (frames, height - 1, width), (frames, height, width - 1)]:
            with pytest.raises(RuntimeError):  # the unchecked network: the pool's window is larger than its input
                model._pooled(_video(size=size))
    with pytest.raises(ValueError, match="at least 9 frames"):
        model(_video(size=(frames - 1, height, width)))
    with pytest.raises(ValueError, match="at least 193"):
        model(_video(size=(frames, height, width - 1)))


@pytest.mark.parametrize(
    ("video", "match"),
    [
        (torch.zeros(3, 9, 224, 224), "5 dimensions"),
        (torch.zeros(1, 1, 9, 224, 224), "3 channels"),
        (torch.zeros(1, 9, 3, 224, 224), "3 channels"),  # [B, T, C, H, W] by mistake
        (torch.zeros(1, 3, 9, 224, 224, dtype=torch.uint8), "floating point"),
        ([[0.0]], "5 dimensions"),
    ],
)
def test_bad_video(model, video, match):
    with pytest.raises(ValueError, match=f"Argument `x`.*{match}"):
        model.forward_features(video)
    with pytest.raises(ValueError, match=f"Argument `x`.*{match}"):
        model(video)


# --- freezing -----------------------------------------------------------------------------------------------------


def test_frozen_model_stays_in_eval_mode_under_a_training_parent(model):
    parent = nn.Sequential(nn.Identity(), model)
    parent.train()
    assert parent.training and not model.training
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    video = _video()
    with torch.no_grad():
        first, second = model(video), model(video)  # no dropout, no BatchNorm statistics updated
    assert torch.equal(first, second)
    assert int(model.Conv3d_1a_7x7.bn.num_batches_tracked) == 0


def test_unfrozen_model_trains_and_freeze_returns_it():
    model = InceptionI3d()
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert model.freeze() is model
    assert not model.train().training and model.frozen


# --- loading ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_state_dict_file_loads_to_identical_outputs(model, tmp_path, zip_format):
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    loaded = load_i3d(path)
    assert type(loaded) is InceptionI3d and not loaded.training and loaded.frozen
    assert not any(p.requires_grad for p in loaded.parameters())
    video = _video()
    with torch.no_grad():
        assert torch.equal(loaded(video), model(video))
        assert not torch.equal(InceptionI3d().eval()(video), model(video))  # the weights made the difference


class _FakeDetector(nn.Module):
    """Stands for StyleGAN-V's i3d_torchscript.pt: echoes the flags it was called with beside the input's mean."""

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        flags = torch.tensor([float(rescale), float(resize), float(return_features)])
        return torch.cat([flags.expand(x.shape[0], 3), x.mean(dim=(1, 2, 3, 4))[:, None]], dim=1)


def test_torchscript_file_is_recognised_and_called_for_features(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in recent torch, still what we read
        torch.jit.save(torch.jit.script(_FakeDetector()), str(path))
        detector = load_i3d(path)
    assert isinstance(detector, TorchScriptI3d) and not detector.train().training
    video = torch.full((2, 3, 10, 224, 224), 0.25)
    out = detector(video)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 1.0, 0.25]] * 2))  # rescale, resize off; features on
    with pytest.raises(ValueError, match="3 channels"):
        detector(video[:, :1])


def _save(tmp_path, state_dict):
    path = tmp_path / "weights.pt"
    torch.save(state_dict, path)
    return path


def test_wrong_layout_names_the_keys(model, tmp_path):
    state = dict(model.state_dict())
    state["Mixed_3b.b3a.conv3d.weight"] = state.pop("Mixed_3b.b3b.conv3d.weight")
    with pytest.raises(ValueError, match=r"missing keys: Mixed_3b\.b3b\.conv3d\.weight.*unexpected keys: Mixed_3b\.b3a"):
        load_i3d(_save(tmp_path, state))


def test_prefixed_keys_are_listed_not_guessed(model, tmp_path):
    state = {f"module.{key}": value for key, value in model.state_dict().items()}  # saved from DataParallel
    with pytest.raises(ValueError, match=r"\(344 in all\).*unexpected keys: module\."):
        load_i3d(_save(tmp_path, state))


def test_a_state_dict_named_like_a_torchscript_entry_is_still_a_state_dict(tmp_path):
    for name in ("code.pt", "constants.pt"):  # the archive's folder takes the file's name
        path = tmp_path / name
        torch.save({"code": torch.zeros(1)}, path)
        with pytest.raises(ValueError, match="missing keys"):
            load_i3d(path)


def test_wrong_shape_is_named(tmp_path):
    path = _save(tmp_path, InceptionI3d(num_classes=10).state_dict())
    with pytest.raises(ValueError, match=r"wrong shapes: logits\.conv3d\.weight \(10, 1024, 1, 1, 1\) \(expected \(400,"):
        load_i3d(path)
    assert load_i3d(path, num_classes=10).num_classes == 10


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ([1, 2, 3], "holds a list"),
        ({"state_dict": {}}, "mapping of names to tensors"),
    ],
)
def test_not_a_state_dict(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        load_i3d(_save(tmp_path, content))


def test_unreadable_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_i3d(garbage)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_i3d(tmp_path / "absent.pt")

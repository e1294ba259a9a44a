"""An independent, functional I3D forward pass (torch.nn.functional only), from the architecture facts.

Written from the Inception-v1 I3D description (Carreira and Zisserman 2017) and checked against the pytorch-i3d
port (``piergiaj/pytorch-i3d``, ``pytorch_i3d.py``) and cd-fvd's copy of it
(``songweige/content-debiased-fvd``, ``cdfvd/third_party/i3d/pytorch_i3d.py``), never from the package's model code.
Only the state-dict key names are shared with the model, since they are the weights' contract.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

# Inception blocks in order, with the max pools between them: (name, kind, kernel, stride)
_STEM = (
    ("Conv3d_1a_7x7", "unit", (7, 7, 7), (2, 2, 2)),
    ("MaxPool3d_2a_3x3", "pool", (1, 3, 3), (1, 2, 2)),
    ("Conv3d_2b_1x1", "unit", (1, 1, 1), (1, 1, 1)),
    ("Conv3d_2c_3x3", "unit", (3, 3, 3), (1, 1, 1)),
    ("MaxPool3d_3a_3x3", "pool", (1, 3, 3), (1, 2, 2)),
    ("Mixed_3b", "mixed", None, None),
    ("Mixed_3c", "mixed", None, None),
    ("MaxPool3d_4a_3x3", "pool", (3, 3, 3), (2, 2, 2)),
    ("Mixed_4b", "mixed", None, None),
    ("Mixed_4c", "mixed", None, None),
    ("Mixed_4d", "mixed", None, None),
    ("Mixed_4e", "mixed", None, None),
    ("Mixed_4f", "mixed", None, None),
    ("MaxPool3d_5a_2x2", "pool", (2, 2, 2), (2, 2, 2)),
    ("Mixed_5b", "mixed", None, None),
    ("Mixed_5c", "mixed", None, None),
)


def tf_same_pad(x: Tensor, kernel, stride) -> Tensor:
    """Zero-pad the last three dims of ``x`` like TensorFlow "SAME": extra element of an odd total goes after."""
    pad = []
    for dim in (4, 3, 2):  # F.pad lists the last dimension first
        n, k, s = x.shape[dim], kernel[dim - 2], stride[dim - 2]
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        front = total // 2
        pad += [front, total - front]
    return F.pad(x, pad, mode="constant", value=0.0)


def _unit(sd: Mapping[str, Tensor], prefix: str, x: Tensor, stride=(1, 1, 1), bn_eps: float = 1e-5) -> Tensor:
    """SAME pad -> conv (no bias) -> eval BatchNorm -> ReLU; the kernel size is read from the weight."""
    weight = sd[f"{prefix}.conv3d.weight"]
    x = F.conv3d(tf_same_pad(x, tuple(weight.shape[2:]), stride), weight, bias=None, stride=stride)
    x = F.batch_norm(
        x,
        sd[f"{prefix}.bn.running_mean"],
        sd[f"{prefix}.bn.running_var"],
        weight=sd[f"{prefix}.bn.weight"],
        bias=sd[f"{prefix}.bn.bias"],
        training=False,
        eps=bn_eps,
    )
    return F.relu(x)


def _max_pool(x: Tensor, kernel, stride) -> Tensor:
    return F.max_pool3d(tf_same_pad(x, kernel, stride), kernel, stride)


def _mixed(sd: Mapping[str, Tensor], prefix: str, x: Tensor, bn_eps: float) -> Tensor:
    b0 = _unit(sd, f"{prefix}.b0", x, bn_eps=bn_eps)
    b1 = _unit(sd, f"{prefix}.b1b", _unit(sd, f"{prefix}.b1a", x, bn_eps=bn_eps), bn_eps=bn_eps)
    b2 = _unit(sd, f"{prefix}.b2b", _unit(sd, f"{prefix}.b2a", x, bn_eps=bn_eps), bn_eps=bn_eps)
    b3 = _unit(sd, f"{prefix}.b3b", _max_pool(x, (3, 3, 3), (1, 1, 1)), bn_eps=bn_eps)
    return torch.cat([b0, b1, b2, b3], dim=1)


def reference_i3d_pooled(state_dict: Mapping[str, Tensor], x: Tensor, bn_eps: float = 1e-5) -> Tensor:
    """Mixed_5c after the (2, 7, 7) stride-1 unpadded average pool: [B, 1024, T', H', W']."""
    for name, kind, kernel, stride in _STEM:
        if kind == "unit":
            x = _unit(state_dict, name, x, stride=stride, bn_eps=bn_eps)
        elif kind == "pool":
            x = _max_pool(x, kernel, stride)
        else:
            x = _mixed(state_dict, name, x, bn_eps)
    return F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=(1, 1, 1))


def reference_i3d_logits(state_dict: Mapping[str, Tensor], x: Tensor, bn_eps: float = 1e-5) -> Tensor:
    """Kinetics logits [B, num_classes], averaged over time as cd-fvd's I3D does (dropout is the eval identity)."""
    pooled = reference_i3d_pooled(state_dict, x, bn_eps)
    logits = F.conv3d(pooled, state_dict["logits.conv3d.weight"], state_dict["logits.conv3d.bias"])
    logits = logits.squeeze(3).squeeze(3)  # [B, classes, T'] for a 224x224 input (H' = W' = 1)
    return logits.mean(dim=2)

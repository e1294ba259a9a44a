"""Where a held network runs: the device and dtype its inputs must have."""

import torch
from torch import nn


def _module_device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device of the first parameter or buffer (CPU without any) and the dtype of the first floating one."""
    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((tensor.dtype for tensor in tensors if tensor.is_floating_point()), torch.float32)
    return device, dtype


def _freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients, in place; parameter by parameter, which TorchScript modules accept too."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module

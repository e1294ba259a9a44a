"""The last step of the per-video metrics: the mean over videos of the per-video values."""

import torch
from torch import Tensor
from torchmetrics.utilities import rank_zero_warn


def _mean_over_videos(
    total: Tensor, num_videos: Tensor, metric: str, why: str = "nothing was passed to `update`"
) -> Tensor:
    """``total / num_videos`` as float32 (summed in float64); NaN with a warning when no video was counted.

    NaN rather than an error, as for an empty validation epoch the training run should go on.
    """
    if int(num_videos) == 0:
        rank_zero_warn(
            f"{metric}: no video was counted ({why}): the result is NaN.", UserWarning
        )
        return torch.tensor(float("nan"), dtype=torch.float32, device=total.device)
    return (total.double() / num_videos).float()

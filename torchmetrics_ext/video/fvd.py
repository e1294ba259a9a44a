"""Fréchet Video Distance (FVD), as a ``torchmetrics.Metric``."""

from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torchmetrics.utilities import rank_zero_warn

from torchmetrics_ext.functional.video.frechet import _mean_and_covariance, frechet_distance
from torchmetrics_ext.models.inference import ExtractorOptions
from torchmetrics_ext.video._base import _VideoFeatureMetric


class FrechetVideoDistance(_VideoFeatureMetric):
    r"""Fréchet Video Distance (Unterthiner et al., 2018): the Fréchet distance of Gaussians fit to video features.

    .. math::
        \mathrm{FVD} = \lVert \mu_r - \mu_g \rVert^2 + \operatorname{tr}\Sigma_r + \operatorname{tr}\Sigma_g
            - 2 \operatorname{tr}\big((\Sigma_r^{1/2} \Sigma_g \Sigma_r^{1/2})^{1/2}\big)

    where :math:`\mu_r, \Sigma_r` and :math:`\mu_g, \Sigma_g` are the mean and covariance of the features of the
    real and of the generated videos. The features are the 400 Kinetics-400 logits of I3D averaged over time:
    every frame is resized to 224x224 (bilinear, ``align_corners=False``, no antialias) and scaled to [-1, 1]
    (:func:`~torchmetrics_ext.functional.video.preprocess.preprocess_videos`). The covariance is divided by
    :math:`n - 1` (``ddof=1``) as TensorFlow's FVD does; StyleGAN-V divides by :math:`n` (``ddof=0``). The usual
    protocol is 2048 real and 2048 generated clips of 16 frames.

    As input to ``update`` the metric accepts:

    - ``videos`` (:class:`~torch.Tensor`): ``[B, T, 3, H, W]`` (or ``[B, 3, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least 9 frames
    - ``real`` (:class:`bool`): whether the videos are real (the reference) or generated

    As output of ``compute`` the metric returns:

    - ``fvd`` (:class:`~torch.Tensor`): a float32 scalar, computed in float64

    The states are the float64 sum of the features, the float64 sum of their outer products and the int64 number of
    videos of each side, summed across processes (DDP gives the single-process value) and kept in their dtype
    when the module is cast. The feature extractor is frozen (eval mode, no gradients), run under ``no_grad``,
    kept out of ``state_dict`` and follows the metric's device but not its dtype. A custom module is switched
    to eval mode before every call. ``save_real_statistics`` and ``load_real_statistics`` store and reuse the real
    side of a dataset.

    Args:
        feature_extractor: ``"i3d"``, or an ``nn.Module`` mapping preprocessed videos ``[B, 3, T, 224, 224]`` in
            [-1, 1] to features ``[B, D]``; ``D`` is its ``num_features`` attribute or read from one dummy
            9-frame clip at construction.
        weights: with ``"i3d"``, the path of an I3D file for :func:`~torchmetrics_ext.models.load_i3d` (a state dict
            such as ``i3d_pretrained_400.pt`` or a TorchScript archive such as ``i3d_torchscript.pt``), or ``None``
            to download the default weights once; must be ``None`` with a module.
        reset_real_features: ``False`` keeps the real side through ``reset``: extract the reference videos once.
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos``.
        extractor_options: how the extractor runs, an
            :class:`~torchmetrics_ext.models.ExtractorOptions` or a dict of its fields: precision (``"32-true"``
            by default, TF32 off, as published FVD; ``"tf32"``; ``"bf16-mixed"``), ``channels_last``,
            ``cudnn_benchmark``, ``compile`` and ``cuda_graphs``. A caller's autocast does not reach the extractor.
        ddof: the covariance is divided by ``n - ddof``: 1 as TensorFlow's FVD, 0 as StyleGAN-V.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an argument above of the wrong type or value, a module given with ``weights``, or a module
            that does not return ``[B, D]``; in ``update``, on videos that are not 5-d in ``layout``, without 3
            channels, with fewer than 9 frames, or out of range (floating point outside [0, 1]); in ``compute``,
            with fewer than 2 videos on a side.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchmetrics_ext.video import FrechetVideoDistance
        >>> _ = torch.manual_seed(0)
        >>> extractor = nn.Sequential(nn.AdaptiveAvgPool3d((3, 1, 1)), nn.Flatten())  # [B, 9]: no weights needed
        >>> fvd = FrechetVideoDistance(feature_extractor=extractor)
        >>> fvd.update(torch.rand(12, 9, 3, 16, 16), real=True)
        >>> fvd.update(torch.rand(12, 9, 3, 16, 16) ** 2, real=False)
        >>> round(fvd.compute().item(), 4)
        0.9873

    """

    real_features_sum: Tensor
    real_features_cov_sum: Tensor
    real_features_num_samples: Tensor
    fake_features_sum: Tensor
    fake_features_cov_sum: Tensor
    fake_features_num_samples: Tensor

    _real_states = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")

    def __init__(
        self,
        feature_extractor: Union[str, nn.Module] = "i3d",
        weights: Optional[Union[str, Path]] = None,
        reset_real_features: bool = True,
        layout: str = "BTCHW",
        ddof: int = 1,
        extractor_options: Union[None, ExtractorOptions, dict] = None,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(ddof, int) and not isinstance(ddof, bool) and ddof in (0, 1)):
            raise ValueError(f"Argument `ddof` expected to be 0 or 1 but got {ddof!r}.")
        super().__init__(feature_extractor, weights, reset_real_features, layout, extractor_options, **kwargs)
        self.ddof = ddof
        dim = self.num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_features_sum", torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_features_cov_sum", torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_features_num_samples", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, videos: Tensor, real: bool) -> None:
        """Add the features of a batch of real or generated videos; nothing is added when the batch is rejected."""
        real = self._check_real(real)
        features = self._features(videos)  # [B, D] float64
        side = "real" if real else "fake"
        setattr(self, f"{side}_features_sum", getattr(self, f"{side}_features_sum") + features.sum(dim=0))
        setattr(self, f"{side}_features_cov_sum", getattr(self, f"{side}_features_cov_sum") + features.mT @ features)
        setattr(self, f"{side}_features_num_samples", getattr(self, f"{side}_features_num_samples") + features.shape[0])

    def compute(self) -> Tensor:
        """Return the FVD of the real and generated videos seen since the last reset, as a float32 scalar."""
        gaussians = []
        for side in ("real", "fake"):
            count = int(getattr(self, f"{side}_features_num_samples"))
            if count < 2:
                raise ValueError(
                    f"`FrechetVideoDistance.compute` expected at least 2 {side} videos, but got {count}: call"
                    f" `update(videos, real={side == 'real'})` first."
                )
            if count < self.num_features:
                rank_zero_warn(
                    f"FrechetVideoDistance: {count} {side} videos for {self.num_features}-dimensional features: the"
                    " covariance is singular and the value is biased; use at least as many videos as dimensions"
                    " (2048 is the usual protocol).",
                    UserWarning,
                )
            gaussians += _mean_and_covariance(
                getattr(self, f"{side}_features_sum"), getattr(self, f"{side}_features_cov_sum"), count, self.ddof
            )
        return frechet_distance(*gaussians).float()

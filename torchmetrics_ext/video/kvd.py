"""Kernel Video Distance (KVD), as a ``torchmetrics.Metric``."""

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from torch import Tensor, nn
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.plot import _AX_TYPE, _PLOT_OUT_TYPE

from torchmetrics_ext.functional.video.kernel import _check_kernel_options, kernel_distance
from torchmetrics_ext.models.inference import ExtractorOptions
from torchmetrics_ext.video._base import _VideoFeatureMetric


class KernelVideoDistance(_VideoFeatureMetric):
    r"""Kernel Video Distance (Unterthiner et al., 2018): the polynomial-kernel MMD of video features, as KID.

    .. math::
        \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \neq j} \big(k(r_i, r_j) + k(g_i, g_j)\big)
            - \frac{2}{m^2} \sum_{i, j} k(r_i, g_j), \qquad k(x, y) = (\gamma\, x^\top y + c)^d

    averaged over ``subsets`` random pairs of subsets of ``subset_size`` real features :math:`r` and generated
    features :math:`g` (:func:`~torchmetrics_ext.functional.video.kernel_distance`). The features are those of
    :class:`~torchmetrics_ext.video.FrechetVideoDistance`: the 400 I3D logits averaged over time, of frames resized
    to 224x224 (bilinear, ``align_corners=False``, no antialias) and scaled to [-1, 1].

    As input to ``update`` the metric accepts:

    - ``videos`` (:class:`~torch.Tensor`): ``[B, T, 3, H, W]`` (or ``[B, 3, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least 9 frames
    - ``real`` (:class:`bool`): whether the videos are real (the reference) or generated

    As output of ``compute`` the metric returns:

    - ``(kvd_mean, kvd_std)`` (:class:`~torch.Tensor`): float32 scalars, the mean of the subsets' MMD^2 and their
      standard deviation, computed in float64; the estimate is unbiased and can be slightly negative

    The states are the float64 features of every video (``dim_reduce_fx="cat"``, as torchmetrics'
    ``KernelInceptionDistance``): memory grows with the number of videos. The subsets are drawn with the global
    random generator (seed it for a reproducible value). The feature extractor is handled as in
    :class:`~torchmetrics_ext.video.FrechetVideoDistance`.

    Args:
        feature_extractor: ``"i3d"``, or an ``nn.Module`` mapping preprocessed videos ``[B, 3, T, 224, 224]`` in
            [-1, 1] to features ``[B, D]``; ``D`` is its ``num_features`` attribute or read from one dummy
            9-frame clip at construction.
        weights: with ``"i3d"``, the path of an I3D file for :func:`~torchmetrics_ext.models.load_i3d`, or ``None``
            to download the default weights once; must be ``None`` with a module.
        subsets: number of subset pairs the mean and standard deviation are taken over.
        subset_size: videos per subset, at least 2 and (at ``compute``) at most the number of videos of each side.
        degree: degree :math:`d` of the polynomial kernel.
        gamma: scale :math:`\gamma` of the kernel; ``None`` means ``1 / D``.
        coef: constant :math:`c` of the kernel.
        reset_real_features: ``False`` keeps the real side through ``reset``: extract the reference videos once.
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos``.
        extractor_options: how the extractor runs, an
            :class:`~torchmetrics_ext.models.ExtractorOptions` or a dict of its fields: precision (``"32-true"``
            by default, TF32 off, as published FVD; ``"tf32"``; ``"bf16-mixed"``), ``channels_last``,
            ``cudnn_benchmark``, ``compile`` and ``cuda_graphs``. A caller's autocast does not reach the extractor.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an argument above of the wrong type or value, a module given with ``weights``, or a module
            that does not return ``[B, D]``; in ``update``, on videos that are not 5-d in ``layout``, without 3
            channels, with fewer than 9 frames, or out of range (floating point outside [0, 1]); in ``compute``,
            when a side has fewer than ``subset_size`` videos.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchmetrics_ext.video import KernelVideoDistance
        >>> _ = torch.manual_seed(0)
        >>> extractor = nn.Sequential(nn.AdaptiveAvgPool3d((3, 1, 1)), nn.Flatten())  # [B, 9]: no weights needed
        >>> kvd = KernelVideoDistance(feature_extractor=extractor, subsets=5, subset_size=8)
        >>> kvd.update(torch.rand(12, 9, 3, 16, 16), real=True)
        >>> kvd.update(torch.rand(12, 9, 3, 16, 16) ** 2, real=False)
        >>> mean, std = kvd.compute()
        >>> round(mean.item(), 4), round(std.item(), 4)
        (0.3658, 0.0032)

    """

    real_features: list[Tensor]
    fake_features: list[Tensor]

    _real_states = ("real_features",)

    def __init__(
        self,
        feature_extractor: Union[str, nn.Module] = "i3d",
        weights: Optional[Union[str, Path]] = None,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: Optional[float] = None,
        coef: float = 1.0,
        reset_real_features: bool = True,
        layout: str = "BTCHW",
        extractor_options: Union[None, ExtractorOptions, dict] = None,
        **kwargs: Any,
    ) -> None:
        _check_kernel_options(subsets, subset_size, degree, gamma, coef)
        super().__init__(feature_extractor, weights, reset_real_features, layout, extractor_options, **kwargs)
        self.subsets, self.subset_size, self.degree, self.gamma, self.coef = subsets, subset_size, degree, gamma, coef
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, videos: Tensor, real: bool) -> None:
        """Add the features of a batch of real or generated videos; nothing is added when the batch is rejected."""
        real = self._check_real(real)
        features = self._features(videos)  # [B, D] float64
        (self.real_features if real else self.fake_features).append(features)

    def compute(self) -> tuple[Tensor, Tensor]:
        """Return ``(mean, std)`` of the KVD over random subsets of the videos seen since the last reset."""
        sides = []
        for side in ("real", "fake"):
            features = getattr(self, f"{side}_features")
            features = dim_zero_cat(features) if isinstance(features, Tensor) or features else None
            count = 0 if features is None else features.shape[0]
            if count < self.subset_size:
                raise ValueError(
                    f"Argument `subset_size` expected to be at most the number of {side} videos, {count}, but got"
                    f" {self.subset_size}."
                )
            sides.append(features)
        mean, std = kernel_distance(*sides, self.subsets, self.subset_size, self.degree, self.gamma, self.coef)
        return mean.float(), std.float()

    def plot(
        self,
        val: Optional[Union[Tensor, tuple[Tensor, Tensor], Sequence[Union[Tensor, tuple[Tensor, Tensor]]]]] = None,
        ax: Optional[_AX_TYPE] = None,
    ) -> _PLOT_OUT_TYPE:
        """Plot one value or a sequence of values of the KVD mean (``compute()`` when ``val`` is None).

        Args:
            val: a value or a sequence of values: the ``(mean, std)`` tuples returned by ``compute`` (a tuple of two
                tensors is read as one such pair), or their means; only the means are drawn.
            ax: a matplotlib axis to draw on; a new figure when None.

        Returns:
            The figure and the axis.

        """
        val = self.compute() if val is None else val
        if _is_pair(val):
            val = val[0]
        elif isinstance(val, Sequence):
            val = [item[0] if _is_pair(item) else item for item in val]
        return self._plot(val, ax)


def _is_pair(value: Any) -> bool:
    """Whether ``value`` is a ``(mean, std)`` result of ``compute``."""
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(item, Tensor) for item in value)

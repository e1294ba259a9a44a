"""Temporal consistency of the frame embeddings of videos (VBench's subject/background consistency), as a metric."""

from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from torchmetrics_ext.functional.video._frames import _as_btchw, _unit_float
from torchmetrics_ext.functional.video.consistency import _check_reference, _consistency_scores
from torchmetrics_ext.functional.video._reduction import _mean_over_videos
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.utilities.checks import _check_video_layout, _check_videos
from torchmetrics_ext.utilities.modules import _freeze, _module_device_and_dtype

CONSISTENCY_ENCODERS = ("vit_b_16",)


def _default_encoder(progress: bool = True) -> nn.Module:
    """torchvision's ``vit_b_16`` with ``IMAGENET1K_V1`` weights, preprocessing included, returning the class token.

    The module maps float frames ``[N, 3, H, W]`` in [0, 1] to ``[N, 768]``: the weights' own transforms (resize to
    256 bilinear with antialias, center crop 224, ImageNet normalisation) then the network with its classification
    head replaced by ``nn.Identity``. The weights are downloaded once into torch hub's checkpoint folder.
    """
    from torchvision import models  # imported only when the default encoder is asked for

    from torchmetrics_ext.models.weights import build_with_torchvision_weights

    weights = models.ViT_B_16_Weights.IMAGENET1K_V1
    otherwise = "or pass your own `nn.Module` as `encoder`"
    network = build_with_torchvision_weights(models.vit_b_16, "vit_b_16", weights, otherwise, progress=progress)
    network.heads = nn.Identity()
    return nn.Sequential(weights.transforms(), network)


def _build_encoder(encoder: Union[str, nn.Module]) -> tuple[nn.Module, str]:
    """Return the frozen encoder and its name: the default ``vit_b_16`` by name, or the user's module."""
    if isinstance(encoder, str):
        if encoder not in CONSISTENCY_ENCODERS:
            raise ValueError(
                f"Argument `encoder` expected one of {CONSISTENCY_ENCODERS} or an `nn.Module`, but got {encoder!r}."
            )
        module = _default_encoder()
    elif isinstance(encoder, nn.Module):
        module = encoder
    else:
        raise ValueError(
            f"Argument `encoder` expected one of {CONSISTENCY_ENCODERS} or an `nn.Module`, but got"
            f" {type(encoder).__name__}."
        )
    _freeze(module)
    return module, encoder if isinstance(encoder, str) else type(encoder).__name__


class TemporalConsistency(StateSafeMetric):
    r"""Temporal consistency: the mean cosine similarity of the embeddings of the frames of a video over time.

    For the embeddings :math:`e_0, \dots, e_{T-1}` of the frames of a video, with :math:`\cos` the cosine
    similarity, the score of the video is

    .. math::
        s_{\text{adjacent}} = \frac{1}{T - 1} \sum_{t=1}^{T-1} \cos(e_{t-1}, e_t), \qquad
        s_{\text{first}} = \frac{1}{T - 1} \sum_{t=1}^{T-1} \cos(e_0, e_t),

    .. math::
        s_{\text{vbench}} = \frac{1}{T - 1} \sum_{t=1}^{T-1}
            \frac{\max(0, \cos(e_{t-1}, e_t)) + \max(0, \cos(e_0, e_t))}{2}

    and the metric is the mean of the scores over the videos
    (:func:`~torchmetrics_ext.functional.video.temporal_consistency` on the embeddings). ``"vbench"`` is the
    formula of VBench's subject consistency (with DINO ViT-B/16 embeddings) and background consistency (with CLIP
    ViT-B/32 embeddings); the default encoder here is torchvision's ImageNet ``vit_b_16``, so the values are not
    VBench's: pass VBench's network as ``encoder`` to reproduce them. VBench's single-process result weights the
    videos by their number of frames (the sum over all frame pairs of all videos divided by the number of pairs);
    here every video weighs the same, which keeps the value exact under DDP with summed states. The two agree when
    the videos have the same length. Cosines are computed in float64 with the semantics of
    :func:`torch.nn.functional.cosine_similarity`. Higher is better: 1 for static videos.

    As input to ``update`` the metric accepts:

    - ``videos`` (:class:`~torch.Tensor`): ``[B, T, C, H, W]`` (or ``[B, C, T, H, W]`` with ``layout="BCTHW"``),
      uint8 in [0, 255] or floating point in [0, 1], at least 2 frames; 3 channels for ``"vit_b_16"``, any number
      the encoder takes otherwise

    As output of ``compute`` the metric returns:

    - ``temporal_consistency`` (:class:`~torch.Tensor`): a float32 scalar, computed in float64; in [-1, 1] for
      ``"adjacent"`` and ``"first"``, in [0, 1] for ``"vbench"``

    The states are the float64 sum of the per-video scores and the int64 number of videos, summed across processes
    (DDP gives the single-process value) and kept in their dtype when the module is cast. The encoder is frozen
    (eval mode, no gradients), run under ``no_grad`` without autocast on frames in the dtype of its parameters
    (float32 for one without), kept out of ``state_dict``, and follows the metric's device but not its dtype.
    The frames of all the videos of a batch are encoded ``batch_size`` at a time.

    Args:
        encoder: ``"vit_b_16"`` for torchvision's ``vit_b_16`` with ``ViT_B_16_Weights.IMAGENET1K_V1`` (downloaded
            once into torch hub's checkpoint folder), frames preprocessed by the weights' transforms (resize to
            256, center crop 224, ImageNet normalisation) and the 768-d class token as embedding; or an
            ``nn.Module`` mapping float frames ``[N, C, H, W]`` in [0, 1] to embeddings ``[N, D]``, doing its own
            normalisation.
        reference: ``"adjacent"`` (each frame against the previous one), ``"first"`` (each frame against the first
            one) or ``"vbench"`` (the mean of both, negative cosines counted as 0).
        layout: ``"BTCHW"`` or ``"BCTHW"``, the order of the dimensions of ``videos``.
        batch_size: the number of frames given to the encoder at once.
        kwargs: additional keyword arguments of :class:`~torchmetrics.Metric`.

    Raises:
        ValueError: on an argument above of the wrong type or value; in ``update``, on videos that are not 5-d in
            ``layout``, have fewer than 2 frames, are empty, are out of range or, with ``"vit_b_16"``, do not have
            3 channels; on an encoder that does not return finite embeddings ``[N, D]``. ``compute`` returns NaN,
            with a warning, when no video was seen.
        RuntimeError: if the weights of ``"vit_b_16"`` cannot be downloaded.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchmetrics_ext.video import TemporalConsistency
        >>> _ = torch.manual_seed(0)
        >>> encoder = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())  # [N, 3 * 2 * 2]: no weights needed
        >>> metric = TemporalConsistency(encoder=encoder, reference="vbench")
        >>> metric.update(torch.rand(2, 4, 3, 8, 8))
        >>> round(metric.compute().item(), 4)
        0.9803

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    consistency_sum: Tensor
    num_videos: Tensor

    def __init__(
        self,
        encoder: Union[str, nn.Module] = "vit_b_16",
        reference: str = "adjacent",
        layout: str = "BTCHW",
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_reference(reference)
        _check_video_layout(layout)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Argument `batch_size` expected to be a positive `int` but got {batch_size!r}.")
        self.reference = reference
        self.layout = layout
        self.batch_size = batch_size
        module, self.encoder_name = _build_encoder(encoder)
        self._channels: Optional[int] = 3 if isinstance(encoder, str) else None
        self._hold("_encoder", module)
        self.add_state("consistency_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def encoder(self) -> nn.Module:
        """The frozen network that maps frames [N, C, H, W] in [0, 1] to embeddings [N, D]."""
        return self._encoder

    def _embeddings(self, videos: Tensor) -> Tensor:
        """Check ``videos`` and return the float64 embeddings of their frames ``[B, T, D]``; no state is touched."""
        _check_videos(videos, self.layout, min_frames=2, channels=self._channels)
        frames = _as_btchw(videos, self.layout)
        batch, time = frames.shape[:2]
        frames = frames.reshape(batch * time, *frames.shape[2:])  # [B * T, C, H, W]
        encoder = self._encoder.eval()
        device, dtype = _module_device_and_dtype(encoder)
        embeddings = []
        for chunk in frames.split(self.batch_size):
            x = _unit_float(chunk.to(device)).to(dtype)
            # the embeddings must not depend on the precision a Trainer trains in: no autocast around the encoder
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                out = encoder(x)
            width = embeddings[0].shape[1] if embeddings else None
            if (
                not isinstance(out, Tensor)
                or out.ndim != 2
                or out.shape[0] != x.shape[0]
                or out.shape[1] < 1
                or (width is not None and out.shape[1] != width)
            ):
                seen = f"shape {list(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
                expected = f"[{x.shape[0]}, {'D' if width is None else width}]"
                raise ValueError(
                    f"Argument `encoder` expected embeddings of shape {expected} for {x.shape[0]} frames, but"
                    f" returned {seen}."
                )
            if not torch.isfinite(out).all():
                raise ValueError("Argument `encoder` returned non-finite embeddings (NaN or infinity).")
            embeddings.append(out.to(dtype=torch.float64))
        return torch.cat(embeddings).to(self.device).view(batch, time, -1)

    def update(self, videos: Tensor) -> None:
        """Add the scores of a batch of videos; nothing is added when the batch is rejected."""
        scores = _consistency_scores(self._embeddings(videos), self.reference)
        self.consistency_sum = self.consistency_sum + scores.sum()
        self.num_videos = self.num_videos + scores.shape[0]

    def compute(self) -> Tensor:
        """Return the mean score of the videos seen since the last reset, as a float32 scalar."""
        return _mean_over_videos(self.consistency_sum, self.num_videos, type(self).__name__)

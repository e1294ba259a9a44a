"""Temporal consistency of videos: the cosine similarity of the embeddings of their frames over time."""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

CONSISTENCY_REFERENCES = ("adjacent", "first", "vbench")


def _check_reference(reference: str) -> None:
    if reference not in CONSISTENCY_REFERENCES:
        raise ValueError(
            f"Argument `reference` expected to be one of {CONSISTENCY_REFERENCES} but got {reference!r}."
        )


def _check_embeddings(embeddings: Tensor) -> None:
    """``embeddings`` must be a finite floating point ``[B, T, D]`` tensor with ``B, D >= 1`` and ``T >= 2``."""
    if not isinstance(embeddings, Tensor) or embeddings.ndim != 3:
        seen = f"{embeddings.ndim} dimensions" if isinstance(embeddings, Tensor) else type(embeddings).__name__
        raise ValueError(
            f"Argument `embeddings` expected to be a tensor with 3 dimensions [B, T, D], but got {seen}."
        )
    if not embeddings.is_floating_point():
        raise ValueError(f"Argument `embeddings` expected a floating point tensor, but got dtype {embeddings.dtype}.")
    if embeddings.shape[1] < 2:
        raise ValueError(
            f"Argument `embeddings` expected at least 2 frames (T of [B, T, D]), but got shape"
            f" {tuple(embeddings.shape)}."
        )
    if embeddings.numel() == 0:
        raise ValueError(f"Argument `embeddings` expected a non-empty tensor, but got shape {tuple(embeddings.shape)}.")
    if not torch.isfinite(embeddings).all():
        raise ValueError("Argument `embeddings` expected finite values, but got NaN or infinity.")


def _consistency_scores(embeddings: Tensor, reference: str) -> Tensor:
    """The temporal consistency of every video of checked embeddings ``[B, T, D]``, float64 ``[B]``.

    Cosines follow ``torch.nn.functional.cosine_similarity`` (its ``eps`` guards zero vectors) in float64, clamped
    to [-1, 1] against rounding.
    """
    e = embeddings.double()
    following = e[:, 1:]  # frames 1..T-1: [B, T - 1, D]
    if reference in ("adjacent", "vbench"):
        adjacent = F.cosine_similarity(e[:, :-1], following, dim=-1).clamp(-1.0, 1.0)  # [B, T - 1]
    if reference in ("first", "vbench"):
        first = F.cosine_similarity(e[:, :1].expand_as(following), following, dim=-1).clamp(-1.0, 1.0)
    if reference == "adjacent":
        cosines = adjacent
    elif reference == "first":
        cosines = first
    else:
        cosines = (adjacent.clamp(min=0.0) + first.clamp(min=0.0)) / 2
    return cosines.mean(dim=1)


def temporal_consistency(embeddings: Tensor, reference: str = "adjacent") -> Tensor:
    r"""The temporal consistency of videos given the embeddings of their frames: the mean cosine similarity over time.

    For the embeddings :math:`e_0, \dots, e_{T-1}` of the frames of a video, with :math:`\cos` the cosine
    similarity, the score of the video is

    .. math::
        s_{\text{adjacent}} = \frac{1}{T - 1} \sum_{t=1}^{T-1} \cos(e_{t-1}, e_t), \qquad
        s_{\text{first}} = \frac{1}{T - 1} \sum_{t=1}^{T-1} \cos(e_0, e_t),

    .. math::
        s_{\text{vbench}} = \frac{1}{T - 1} \sum_{t=1}^{T-1}
            \frac{\max(0, \cos(e_{t-1}, e_t)) + \max(0, \cos(e_0, e_t))}{2}

    and the result is the mean of the scores over the videos. ``"vbench"`` is the formula of VBench's subject
    consistency (DINO embeddings) and background consistency (CLIP embeddings). VBench's single-process result
    weights the videos by their number of frames (the sum over all frame pairs of all videos divided by the
    number of pairs); here every video weighs the same. The two agree when the videos have the same length.
    The cosine is computed in float64 with the semantics of :func:`torch.nn.functional.cosine_similarity`
    (whose ``eps`` makes the cosine with a zero vector 0). Higher is better: 1 for static videos, the scores of
    ``"adjacent"`` and ``"first"`` lie in [-1, 1], those of ``"vbench"`` in [0, 1].

    Args:
        embeddings: ``[B, T, D]`` floating point embeddings of the ``T >= 2`` frames of ``B`` videos.
        reference: ``"adjacent"`` (each frame against the previous one), ``"first"`` (each frame against the first
            one) or ``"vbench"`` (the mean of both, negative cosines counted as 0).

    Returns:
        The mean score over the videos, a float32 scalar computed in float64.

    Raises:
        ValueError: on an unknown ``reference``, or ``embeddings`` that are not a 3-d floating point tensor, have
            fewer than 2 frames, are empty or are not finite.

    Example:
        >>> import torch
        >>> from torchmetrics_ext.functional.video import temporal_consistency
        >>> _ = torch.manual_seed(0)
        >>> embeddings = torch.randn(2, 1, 8) + 0.5 * torch.randn(2, 5, 8)  # 5 frames near one point per video
        >>> round(temporal_consistency(embeddings).item(), 4)
        0.8177
        >>> round(temporal_consistency(embeddings, reference="vbench").item(), 4)
        0.7565
        >>> temporal_consistency(torch.ones(2, 5, 8), reference="first").item()  # static videos
        1.0

    """
    _check_reference(reference)
    _check_embeddings(embeddings)
    return _consistency_scores(embeddings, reference).mean().float()

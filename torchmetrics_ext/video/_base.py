"""What the video distances share: the frozen feature extractor, the preprocessing, and the real-side states."""

from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torchmetrics.utilities.data import dim_zero_cat

from torchmetrics_ext.functional.video.preprocess import FVD_FRAME_SIZE, FVD_MIN_FRAMES, preprocess_videos
from torchmetrics_ext.metric import StateSafeMetric
from torchmetrics_ext.models.i3d import InceptionI3d, load_i3d
from torchmetrics_ext.models.inference import ExtractorOptions
from torchmetrics_ext.utilities.checks import _check_video_layout
from torchmetrics_ext.utilities.modules import _freeze, _module_device_and_dtype


def _build_feature_extractor(
    feature_extractor: Union[str, nn.Module], weights: Optional[Union[str, Path]]
) -> tuple[nn.Module, str]:
    """Return the frozen extractor and its name: I3D from ``weights`` (the default download when None), or a module."""
    if isinstance(feature_extractor, str):
        if feature_extractor != "i3d":
            raise ValueError(
                f"Argument `feature_extractor` expected 'i3d' or an `nn.Module`, but got {feature_extractor!r}."
            )
        if weights is None:
            from torchmetrics_ext.models.weights import default_i3d  # downloads once; imported only when asked for

            return default_i3d(), "i3d"
        if not isinstance(weights, (str, Path)):
            raise ValueError(f"Argument `weights` expected `None` or the path of a file, but got {weights!r}.")
        return load_i3d(weights), "i3d"
    if not isinstance(feature_extractor, nn.Module):
        raise ValueError(
            "Argument `feature_extractor` expected 'i3d' or an `nn.Module`, but got"
            f" {type(feature_extractor).__name__}."
        )
    if weights is not None:
        raise ValueError(
            "Argument `weights` expected `None` with a module as `feature_extractor` (load its weights yourself),"
            f" but got {weights!r}."
        )
    _freeze(feature_extractor)
    return feature_extractor, type(feature_extractor).__name__


def _num_features(extractor: nn.Module) -> int:
    """``D``: I3D's number of classes, a module's ``num_features``, or the width of the output of a dummy clip."""
    if isinstance(extractor, InceptionI3d):
        return extractor.num_classes
    num_features = getattr(extractor, "num_features", None)
    if isinstance(num_features, int) and not isinstance(num_features, bool) and num_features > 0:
        return num_features
    device, _ = _module_device_and_dtype(extractor)
    dummy = torch.zeros(1, 3, FVD_MIN_FRAMES, FVD_FRAME_SIZE, FVD_FRAME_SIZE, device=device)
    with torch.no_grad():
        out = extractor(dummy)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1:
        seen = f"shape {list(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            "Argument `feature_extractor` expected a module mapping [B, 3, T, 224, 224] to features [B, D], but a"
            f" [1, 3, {FVD_MIN_FRAMES}, 224, 224] clip gave {seen}."
        )
    return out.shape[1]


def _extractor_options(options: Union[None, ExtractorOptions, dict]) -> ExtractorOptions:
    if options is None:
        return ExtractorOptions()
    if isinstance(options, dict):
        fields = set(ExtractorOptions.__dataclass_fields__)
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(
                f"Argument `extractor_options` expected a dict with keys among {sorted(fields)}, but got {unknown}."
            )
        return ExtractorOptions(**options)
    if not isinstance(options, ExtractorOptions):
        raise ValueError(
            "Argument `extractor_options` expected `None`, an `ExtractorOptions` or a dict of its fields, but got"
            f" {type(options).__name__}."
        )
    return options


def _shallow_copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


class _VideoFeatureMetric(StateSafeMetric):
    """Extracts features of videos with a frozen network and keeps the real side through ``reset`` on request.

    The extractor is held outside the module tree: it is not in ``state_dict`` or ``parameters()``, follows the
    metric to its device but never to another dtype (``module.to(torch.bfloat16)`` leaves it in float32). It runs
    with ``extractor_options`` (precision, layout, autotuning, compilation); a compiled copy is made on first use
    and is neither pickled nor copied with the metric.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    _real_states: tuple[str, ...] = ()

    def __init__(
        self,
        feature_extractor: Union[str, nn.Module] = "i3d",
        weights: Optional[Union[str, Path]] = None,
        reset_real_features: bool = True,
        layout: str = "BTCHW",
        extractor_options: Union[None, ExtractorOptions, dict] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._extractor_options = _extractor_options(extractor_options)
        if not isinstance(reset_real_features, bool):
            raise ValueError(f"Argument `reset_real_features` expected to be a `bool` but got {reset_real_features!r}.")
        _check_video_layout(layout)
        self.reset_real_features = reset_real_features
        self.layout = layout
        extractor, self.feature_extractor_name = _build_feature_extractor(feature_extractor, weights)
        self._hold("_feature_extractor", extractor)
        self._compiled_extractor: Optional[Any] = None  # made on first use from `extractor_options`
        self._compile_attempted = False
        self.num_features = _num_features(extractor)

    def __getstate__(self) -> dict[str, Any]:
        # a compiled module is tied to this process and this extractor: copies and pickles compile their own
        return {**super().__getstate__(), "_compiled_extractor": None, "_compile_attempted": False}

    @property
    def extractor_options(self) -> ExtractorOptions:
        """How the extractor runs (read-only: a compiled extractor is made for these options)."""
        return self._extractor_options

    @property
    def feature_extractor(self) -> nn.Module:
        """The frozen network that maps preprocessed videos [B, 3, T, 224, 224] to features [B, D]."""
        return self._feature_extractor

    def _features(self, videos: Tensor) -> Tensor:
        """Check and preprocess ``videos`` and return their float64 features [B, D]; no state is touched."""
        extractor = self._feature_extractor.eval()
        device, _ = _module_device_and_dtype(extractor)
        if isinstance(videos, Tensor):
            videos = videos.to(device)  # upload uint8 (a quarter of float32) and resize on the extractor's device
        x = preprocess_videos(videos, self.layout)  # checks the videos first
        parameter = next(extractor.parameters(), None)
        x = x.to(device, parameter.dtype if parameter is not None else x.dtype)
        options = self._extractor_options
        if options.compile_mode is not None and not self._compile_attempted:
            # a plain attribute, not a submodule: kept out of `state_dict`, `parameters()` and the module tree
            object.__setattr__(self, "_compiled_extractor", options.compile_module(extractor))
            self._compile_attempted = True  # None stays None (TorchScript): warned once
        # under any autocast of the caller's, the features are those of the options' precision (float32 by default)
        features = options.run(extractor, x, self._compiled_extractor)
        if not isinstance(features, Tensor) or features.shape != (x.shape[0], self.num_features):
            seen = f"shape {list(features.shape)}" if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"Argument `feature_extractor` expected features of shape [{x.shape[0]}, {self.num_features}] for"
                f" {x.shape[0]} videos, but returned {seen}."
            )
        if not torch.isfinite(features).all():
            raise ValueError("Argument `feature_extractor` returned non-finite features (NaN or infinity).")
        return features.to(device=self.device, dtype=torch.float64)

    @staticmethod
    def _check_real(real: Any) -> bool:
        if isinstance(real, Tensor) and real.numel() == 1 and real.dtype == torch.bool:
            return bool(real)
        if not isinstance(real, bool):
            raise ValueError(f"Argument `real` expected to be a `bool` but got {real!r}.")
        return real

    def reset(self) -> None:
        """Reset the states; with ``reset_real_features=False`` the real side is kept."""
        if self.reset_real_features:
            super().reset()
            return
        # Metric.reset clears list states in place: keep copies of the lists
        kept = {name: _shallow_copy(getattr(self, name)) for name in self._real_states}
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)

    def _real_statistics(self) -> dict[str, Tensor]:
        return {
            name: dim_zero_cat(value) if isinstance(value, list) and value else value
            for name, value in ((name, getattr(self, name)) for name in self._real_states)
        }

    def save_real_statistics(self, path: Union[str, Path]) -> None:
        """Save the real side with ``torch.save``, to be reused by ``load_real_statistics``.

        The file holds the states, the feature dimension ``D`` and the extractor's name. Under DDP every process
        must call it: the states of all processes are gathered and process 0 writes the file.

        Args:
            path: the file to write.

        """
        with self.sync_context(should_sync=self._to_sync, should_unsync=True):
            states = {
                name: (value if isinstance(value, Tensor) else torch.empty(0, self.num_features, dtype=torch.float64))
                for name, value in self._real_statistics().items()
            }
            states = {name: value.detach().cpu().clone() for name, value in states.items()}
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        torch.save(
            {
                "metric": type(self).__name__,
                "feature_extractor": self.feature_extractor_name,
                "num_features": self.num_features,
                "states": states,
            },
            path,
        )

    def load_real_statistics(self, path: Union[str, Path]) -> None:
        """Replace the real side by the statistics ``save_real_statistics`` wrote, so a reference set is extracted once.

        With ``reset_real_features=False`` they are kept through ``reset``. Under DDP with ``sync_on_compute=True``
        every process loads the file and process 0 alone holds the statistics (the others an empty real side), so
        that the sum across processes counts them once.

        Args:
            path: a file written by ``save_real_statistics`` of the same metric class.

        Raises:
            ValueError: if the file was written by another metric class, for another feature dimension, or lacks
                a state.

        """
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("metric") != type(self).__name__:
            seen = saved.get("metric") if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(
                f"Argument `path` expected real statistics saved by `{type(self).__name__}.save_real_statistics`, but"
                f" {path} holds {seen!r}."
            )
        if saved.get("num_features") != self.num_features:
            raise ValueError(
                f"Argument `path` expected real statistics of feature dimension D = {self.num_features}, but {path}"
                f" holds D = {saved.get('num_features')} (extractor {saved.get('feature_extractor')!r})."
            )
        states = saved.get("states", {})
        missing = [name for name in self._real_states if name not in states]
        if missing:
            raise ValueError(
                f"Argument `path` expected the states {list(self._real_states)}, but {path} lacks {missing}."
            )
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        empty = distributed and self.sync_on_compute and torch.distributed.get_rank() != 0
        for name in self._real_states:
            value = states[name].to(self.device)
            if isinstance(self._defaults[name], list):
                # an empty [0, D] block rather than no block: the processes gather tensors of one rank and dtype
                setattr(self, name, [value[:0]] if empty else [value] if value.numel() else [])
            else:
                setattr(self, name, torch.zeros_like(value) if empty else value)
        self._computed = None

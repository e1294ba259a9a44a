"""A ``ModelCheckpoint`` that keeps the best checkpoint by a metric, in the direction the metric says is better."""

import re
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from torchmetrics_ext.callbacks.validation import ValidationMetrics

_MODES = ("min", "max")


class BestMetricCheckpoint(ModelCheckpoint):
    """Keep the checkpoint of the best value of ``monitor``; ``mode`` comes from the metric when it is not given.

    When ``mode`` is None it is read, at setup, from ``higher_is_better`` of the metric that a
    :class:`~torchmetrics_ext.callbacks.ValidationMetrics` callback logs as ``monitor``: ``"min"`` for perplexity or
    FVD, ``"max"`` for accuracy. The default file name holds the epoch, the step and the monitored value, with any
    ``/`` of a metric name (``val/perplexity``) written as ``_`` so that no sub-folder is made; so is any ``/`` in a
    metric name of a ``filename`` you give. Everything else is ``ModelCheckpoint``'s: ``best_model_path``,
    ``best_model_score``, ``save_top_k``, ``save_last``, resuming.

    Args:
        monitor: the logged name of the metric to keep the best checkpoint by, e.g. ``"val/perplexity"``.
        mode: ``"min"``, ``"max"``, or None to take it from the metric's ``higher_is_better``.
        filename: as ``ModelCheckpoint``'s; None gives ``epoch=E-step=S-<monitor>=V``.
        kwargs: any other argument of ``lightning.pytorch.callbacks.ModelCheckpoint``.

    Raises:
        ValueError: if ``monitor`` is not a non-empty string or ``mode`` is not None, "min" or "max"; at setup, if
            ``mode`` is None and no ``ValidationMetrics`` logs ``monitor`` with a known ``higher_is_better``.

    Example:
        >>> from torchmetrics_ext.callbacks import BestMetricCheckpoint, ValidationMetrics
        >>> from torchmetrics_ext.text import CausalLMPerplexity
        >>> callbacks = [
        ...     ValidationMetrics({"perplexity": CausalLMPerplexity()}),
        ...     BestMetricCheckpoint(monitor="val/perplexity"),  # mode "min", from higher_is_better=False
        ... ]

    """

    def __init__(self, monitor: str, mode: Optional[str] = None, filename: Optional[str] = None, **kwargs: Any) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"Argument `monitor` of `BestMetricCheckpoint` expected a metric name, but got {monitor!r}.")
        if mode is not None and mode not in _MODES:
            raise ValueError(
                f"Argument `mode` of `BestMetricCheckpoint` expected None, 'min' or 'max', but got {mode!r}."
            )
        if filename is None:
            filename = "{epoch}-{step}-{" + monitor + ":.4f}"
        super().__init__(monitor=monitor, mode=mode or "min", filename=filename, **kwargs)
        self._mode_from_metric = mode is None

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if self._mode_from_metric:
            self._set_mode(self._metric_mode(trainer))
        super().setup(trainer, pl_module, stage)

    def _metric_mode(self, trainer: "pl.Trainer") -> str:
        for callback in trainer.callbacks:
            metric = callback.metric(self.monitor) if isinstance(callback, ValidationMetrics) else None
            if metric is not None and metric.higher_is_better is not None:
                return "max" if metric.higher_is_better else "min"
        raise ValueError(
            f"`BestMetricCheckpoint(monitor={self.monitor!r})` takes its mode from the metric, but no"
            " `ValidationMetrics` callback of this Trainer logs a metric of that name with a known"
            " `higher_is_better`. Pass `mode='min'` or `mode='max'`."
        )

    def _set_mode(self, mode: str) -> None:
        # what ModelCheckpoint's own constructor sets for a mode: the direction and the worst possible score
        self.mode = mode
        self.kth_value = torch.tensor(torch.inf if mode == "min" else -torch.inf)

    @override
    def _format_checkpoint_name(
        self,
        filename: Optional[str],
        metrics: dict[str, Any],
        prefix: Optional[str] = None,
        auto_insert_metric_name: bool = True,
    ) -> str:
        if auto_insert_metric_name and filename:
            # insert "name=" here, "/" written "_": ModelCheckpoint would make "val/ppl=3.2" a sub-folder "val"
            filename = re.sub(
                r"\{([^:}]+)([:}])",
                lambda group: group[1].replace("/", "_") + self.CHECKPOINT_EQUALS_CHAR + "{" + group[1] + group[2],
                filename,
            )
        return super()._format_checkpoint_name(filename, metrics, prefix, auto_insert_metric_name=False)

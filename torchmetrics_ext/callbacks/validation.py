"""Attach metrics to a LightningModule's validation loop without touching the module."""

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from typing_extensions import override

# What an input function returns: the keyword arguments of one ``update`` call, its positional arguments, or a list
# of either for several calls (real and generated samples of a reference-keeping metric, say).
UpdateInputs = Union[Mapping[str, Any], tuple, list]
InputFunction = Callable[[Mapping[str, Any], Any], UpdateInputs]


def _keeps_reference(metric: Metric) -> bool:
    """Whether ``reset()`` keeps the metric's reference statistics (torchmetrics' FID, KID, ...)."""
    return getattr(metric, "reset_real_features", True) is False


def _is_real_call(metric: Metric, args: tuple, kwargs: dict[str, Any]) -> bool:
    """Whether an ``update`` call feeds the reference side (its ``real`` argument is true), by keyword or position."""
    try:
        real = inspect.signature(metric.update).bind(*args, **kwargs).arguments.get("real", False)
    except TypeError:
        return False
    return bool(real)


def _is_mean_and_std(metric: Metric, value: Any) -> bool:
    """Whether ``value`` is the ``(mean, std)`` pair of a kernel distance (our KVD, torchmetrics' KID)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    from torchmetrics_ext.video.kvd import KernelVideoDistance

    kernel_distance = isinstance(metric, (KernelVideoDistance, KernelInceptionDistance))
    return kernel_distance and isinstance(value, (tuple, list)) and len(value) == 2


def _shared_update_groups(named: Mapping[str, Metric]) -> list[list[str]]:
    """Metrics that may share one update: the causal-LM NLL metrics with the same options, each other metric alone.

    torchmetrics' own detection merges metrics whose states are equal after the first batch, which also merges
    unrelated metrics that happen to agree on it (two consistency references on a static video both give 1).
    """
    from torchmetrics_ext.text._causal_lm_base import _CausalLMNLLMetric

    groups: dict[Any, list[str]] = {}
    for name, metric in named.items():
        if isinstance(metric, _CausalLMNLLMetric):
            key = ("nll", metric.ignore_index, metric.shift, metric.chunk_size, metric.non_finite)
        else:
            key = name
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _update_parameters(metric: Metric) -> tuple[list[str], list[str], bool]:
    """Names of the required and of all parameters of ``metric.update``, and whether it takes ``**kwargs``."""
    parameters = inspect.signature(metric.update).parameters.values()
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in named if p.default is p.empty]
    return required, [p.name for p in named], any(p.kind == p.VAR_KEYWORD for p in parameters)


class ValidationMetrics(Callback):
    """Update metrics from what ``validation_step`` returns and log them at the end of every validation epoch.

    On every validation batch each metric's ``update`` receives the entries of the dict that ``validation_step``
    returns whose names are parameters of that ``update`` (``logits`` and ``labels`` for the causal-LM metrics,
    ``preds`` and ``target`` for most of torchmetrics'). A metric whose inputs need arranging gets a function
    ``inputs[name](outputs, batch)`` instead, which returns the keyword arguments of its ``update``, their positional
    arguments, or a list of either for several calls.

    At the end of each validation epoch every metric is computed (a collective under DDP: every rank computes and
    gets the global value), logged through ``pl_module.log`` as ``prefix + name`` (so loggers, the progress bar,
    ``trainer.callback_metrics``, ``ModelCheckpoint`` and ``EarlyStopping`` see it), and reset; the ``(mean, std)``
    of a kernel distance (``KernelVideoDistance``, torchmetrics' ``KernelInceptionDistance``) is logged as
    ``prefix + name`` and ``prefix + name + "_std"``. The sanity-check
    batches are not counted. The metrics are held by the callback, not by the module: they follow the module's
    device but not its dtype, so Lightning's precision settings leave their states alone. A metric that keeps its
    reference statistics across resets (``reset_real_features=False``, as torchmetrics' FID offers) is fed its
    ``real`` inputs during the first validation epoch of ``fit`` only. The validation loop only: the batches of
    several validation dataloaders are pooled into one value per metric, and under DDP the value is over the
    samples each process saw, including those Lightning's ``DistributedSampler`` repeats to even out the
    processes (use a validation set divisible by the number of processes, or ``use_distributed_sampler=False``
    with a sampler of your own, for an exact value). With no ``inputs`` functions and no such metric,
    the metrics are updated as one ``MetricCollection``, and the causal-LM perplexity and cross-entropy with the same
    options share one update (no other metrics are merged: torchmetrics' automatic compute groups can merge
    metrics whose states merely agree on the first batch).

    Args:
        metrics: a mapping from name to ``torchmetrics.Metric``, or a ``MetricCollection`` (its own prefix and
            postfix are not used).
        prefix: put before every name in the log.
        inputs: optional functions ``(outputs, batch) -> update inputs``, by metric name.
        prog_bar: whether the values also show in the progress bar.

    Raises:
        ValueError: if ``metrics`` is empty or holds something other than metrics, if a name of ``inputs`` is not
            a metric's, or (during validation) if ``validation_step`` does not return a dict holding what a
            metric's ``update`` requires.

    Example:
        >>> import lightning as L
        >>> from torchmetrics_ext.callbacks import ValidationMetrics
        >>> from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity
        >>> callback = ValidationMetrics({"perplexity": CausalLMPerplexity(), "cross_entropy": CausalLMCrossEntropy()})
        >>> trainer = L.Trainer(callbacks=[callback], logger=False, enable_checkpointing=False)
        >>> # validation_step then returns {"logits": logits, "labels": labels}; "val/perplexity" is logged

    """

    def __init__(
        self,
        metrics: Union[Mapping[str, Metric], MetricCollection],
        prefix: str = "val/",
        inputs: Optional[Mapping[str, InputFunction]] = None,
        prog_bar: bool = True,
    ) -> None:
        super().__init__()
        named = dict(metrics.items(keep_base=True) if isinstance(metrics, MetricCollection) else metrics.items())
        if not named or not all(isinstance(metric, Metric) for metric in named.values()):
            raise ValueError(
                "Argument `metrics` of `ValidationMetrics` expected a non-empty mapping of names to"
                f" `torchmetrics.Metric`, but got {metrics!r}."
            )
        if not isinstance(prefix, str):
            raise ValueError(f"Argument `prefix` of `ValidationMetrics` expected a `str`, but got {prefix!r}.")
        inputs = dict(inputs or {})
        unknown = sorted(set(inputs) - set(named))
        if unknown or not all(callable(function) for function in inputs.values()):
            raise ValueError(
                f"Argument `inputs` of `ValidationMetrics` expected callables for names among {sorted(named)},"
                f" but got {unknown or inputs}."
            )
        self.prefix = prefix
        self.prog_bar = prog_bar
        self.inputs = inputs
        self._one_update = not inputs and not any(_keeps_reference(metric) for metric in named.values())
        groups = _shared_update_groups(named) if self._one_update else False
        self.metrics = MetricCollection(named, prefix=prefix, compute_groups=groups)
        self._reference_done = {name: False for name, metric in named.items() if _keeps_reference(metric)}
        # read once: inspecting the signatures on every validation batch would be work on the hot path
        self._parameters = {name: _update_parameters(metric) for name, metric in named.items()}

    def metric(self, logged_name: str) -> Optional[Metric]:
        """The metric logged as ``logged_name``, or None."""
        if not logged_name.startswith(self.prefix):
            return None
        return dict(self.metrics.items(keep_base=True)).get(logged_name[len(self.prefix) :])

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self.metrics.to(pl_module.device)

    @override
    def on_validation_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.metrics.to(pl_module.device)  # the module may have moved since setup
        self.metrics.reset()

    @override
    def on_validation_batch_end(
        self,
        trainer: "pl.Trainer",
        pl_module: "pl.LightningModule",
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:
            return
        outputs = {} if outputs is None else outputs
        if self._one_update:
            for name, metric in self.metrics.items(keep_base=True):
                self._check_outputs(name, metric, outputs)
            self.metrics.update(**outputs)
            return
        for name, metric in self.metrics.items(keep_base=True):
            for args, kwargs in self._update_calls(name, metric, outputs, batch):
                if self._reference_done.get(name) and _is_real_call(metric, args, kwargs):
                    continue  # the reference statistics of the first epoch are kept
                metric.update(*args, **kwargs)

    @override
    def on_validation_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.sanity_checking:
            self.metrics.reset()
            return
        values = {}
        for name, value in self.metrics.compute().items():
            if _is_mean_and_std(self.metric(name), value):
                values[name], values[f"{name}_std"] = value
            else:
                values[name] = value
        for name, value in values.items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ValueError(
                    f"`ValidationMetrics` expected metric {name!r} to compute a single value to log, but got"
                    f" {value!r}. Log such metrics yourself, or reduce them first (e.g. `average='macro'`)."
                )
        for name, value in values.items():
            # every rank holds the global value already: with sync_dist and batch_size=1 Lightning averages equal
            # numbers (exact), and does not warn about epoch-level logging under DDP
            pl_module.log(name, value, prog_bar=self.prog_bar, on_epoch=True, sync_dist=True, batch_size=1)
        self.metrics.reset()
        if trainer.state.fn == TrainerFn.FITTING:  # a `trainer.validate` before `fit` does not set the reference
            for name in self._reference_done:
                self._reference_done[name] = True

    def _update_calls(
        self, name: str, metric: Metric, outputs: Any, batch: Any
    ) -> list[tuple[tuple, dict[str, Any]]]:
        """The ``(args, kwargs)`` of each ``update`` call of one metric for one batch."""
        if name not in self.inputs:
            self._check_outputs(name, metric, outputs)
            _, accepted, takes_any = self._parameters[name]
            return [((), {key: value for key, value in outputs.items() if takes_any or key in accepted})]
        produced = self.inputs[name](outputs, batch)
        calls = produced if isinstance(produced, list) else [produced]
        return [((), dict(call)) if isinstance(call, Mapping) else (tuple(call), {}) for call in calls]

    def _check_outputs(self, name: str, metric: Metric, outputs: Any) -> None:
        required, _, _ = self._parameters[name]
        if not isinstance(outputs, Mapping):
            raise ValueError(
                f"`ValidationMetrics` expected `validation_step` to return a dict holding {required} for metric"
                f" {name!r} ({type(metric).__name__}), but it returned {type(outputs).__name__}. Return e.g."
                f" `{{{', '.join(repr(key) + ': ...' for key in required)}}}`, or pass `inputs={{{name!r}: fn}}`."
            )
        missing = [key for key in required if key not in outputs]
        if missing:
            raise ValueError(
                f"`ValidationMetrics` expected the dict returned by `validation_step` to hold {missing} for metric"
                f" {name!r} ({type(metric).__name__}.update{inspect.signature(metric.update)}), but it holds"
                f" {sorted(outputs)}. Return them, or pass `inputs={{{name!r}: fn}}` to arrange them."
            )


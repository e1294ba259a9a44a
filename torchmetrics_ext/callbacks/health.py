r"""Watch the loss curves of a training run for the warning signs of unhealthy training, and log its vital signs.

The rules live in two small classes that know nothing of Lightning: ``_LossTracker`` keeps running statistics of
the training loss (plain floats) and reads explosion, early plateau and oscillation from them; ``_ValidationTracker``
reads overfitting from the validation loss. ``TrainingHealthMonitor`` feeds them from the trainer's hooks, stops
the run on a non-finite loss, reports each symptom once, and logs the gradient norm, the learning rate and the
perplexity.
"""

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

__all__ = ["TrainingHealthMonitor", "TrainingHealthWarning"]

# Likely cause and what to try, per symptom: the "What to Watch For" table of the project's seed document.
_ADVICE = {
    "non_finite_loss": (
        (
            "a learning rate too high, exploding gradients, or bad data (a NaN or Inf in a batch, a log of 0, a"
            " division by 0); float16 overflows above 65504"
        ),
        (
            "lower the learning rate, add gradient clipping (e.g. `Trainer(gradient_clip_val=1.0)`), check the data,"
            ' and train in bfloat16 instead of float16 (`Trainer(precision="bf16-mixed")`)'
        ),
    ),
    "explosion": (
        "a learning rate too high",
        "reduce the learning rate (or lengthen its warm-up), add gradient clipping (`Trainer(gradient_clip_val=1.0)`)",
    ),
    "plateau": (
        "the optimizer is stuck in a local minimum",
        "a learning-rate scheduler (warm-up then cosine decay, or `ReduceLROnPlateau`) or a larger batch size",
    ),
    "no_decrease": (
        "a learning rate too low, or an architecture issue",
        "increase the learning rate and check that gradients reach every layer (see `train/grad_norm`)",
    ),
    "oscillation": (
        "a learning rate too high or a batch too small",
        "reduce the learning rate or increase the batch size (or `Trainer(accumulate_grad_batches=...)`)",
    ),
    "overfitting": (
        "overfitting: the model memorizes the training data",
        "regularization (weight decay, dropout, data augmentation), more data, or early stopping (`EarlyStopping`)",
    ),
}

_TITLES = {
    "non_finite_loss": "a non-finite training loss",
    "explosion": "a loss explosion",
    "plateau": "an early plateau of the training loss",
    "no_decrease": "a training loss that does not decrease",
    "oscillation": "an oscillating training loss",
    "overfitting": "overfitting",
}

# 1.4826 * MAD is the standard deviation of Gaussian noise, and ignores a single spike.
_MAD_TO_STD = 1.4826


class TrainingHealthWarning(UserWarning):
    """A warning sign in the loss curves, reported by :class:`TrainingHealthMonitor`.

    Filter it like any warning: ``warnings.filterwarnings("ignore", category=TrainingHealthWarning)``.
    """


class _Finding(NamedTuple):
    """A symptom found by a tracker: its name, the key of its advice in ``_ADVICE`` and what was measured."""

    symptom: str
    advice: str
    detail: str


class _LossTracker:
    r"""Running statistics of the training loss and the rules that read them, on plain floats.

    ``update`` takes one finite loss per training batch. The smoothed loss is the debiased exponential moving average
    :math:`s_n = e_n / (1 - \beta^n)`, :math:`e_n = \beta e_{n-1} + (1 - \beta) x_n`; ``minimum`` and ``peak`` are
    its running extremes, and ``anchor`` is the running minimum as it was when it last improved by a relative
    ``plateau_min_delta``, at batch ``anchor_count``. A threshold of ``None`` switches its rule off.
    """

    def __init__(
        self,
        smoothing: float,
        warmup_steps: int,
        explosion_factor: Optional[float],
        plateau_window: int,
        plateau_min_delta: Optional[float],
        oscillation_window: int,
        oscillation_threshold: Optional[float],
    ) -> None:
        self.smoothing = smoothing
        self.warmup_steps = warmup_steps
        self.explosion_factor = explosion_factor
        self.plateau_window = plateau_window
        self.plateau_min_delta = plateau_min_delta
        self.oscillation_window = oscillation_window
        self.oscillation_threshold = oscillation_threshold
        self.load_state_dict({})

    @property
    def smoothed(self) -> Optional[float]:
        """The smoothed loss, ``None`` before the first update."""
        return self._ema / (1.0 - self.smoothing**self.count) if self.count else None

    def update(self, value: float) -> None:
        """Take the loss of one training batch (finite)."""
        self.count += 1
        self._ema = self.smoothing * self._ema + (1.0 - self.smoothing) * value
        smoothed = self.smoothed
        self.minimum = min(self.minimum, smoothed)
        self.peak = max(self.peak, smoothed)
        if self.anchor_count == 0 or self.minimum < self.anchor - (self.plateau_min_delta or 0.0) * abs(self.anchor):
            self.anchor, self.anchor_count = self.minimum, self.count
        self.recent.append(value)

    def check(self, plateau: bool = True, skip: Iterable[str] = ()) -> list[_Finding]:
        """The symptoms the curve shows now, after the warm-up; ``plateau=False`` leaves the plateau rule out.

        While the loss is exploded, plateau and oscillation are not looked for: the explosion explains them.
        """
        if self.count < max(self.warmup_steps, 1):
            return []
        skip = set(skip)
        explosion = self._explosion()
        if explosion is not None:
            return [] if "explosion" in skip else [explosion]
        rules = [("oscillation", self._oscillation)]
        if plateau:
            rules.insert(0, ("plateau", self._plateau))
        findings = [rule() for name, rule in rules if name not in skip]
        return [finding for finding in findings if finding is not None]

    def _explosion(self) -> Optional[_Finding]:
        """``s_n > explosion_factor * min(s)``, for a positive running minimum."""
        smoothed = self.smoothed
        if self.explosion_factor is None or self.minimum <= 0 or smoothed <= self.explosion_factor * self.minimum:
            return None
        detail = (
            f"the smoothed loss {smoothed:.4g} is {smoothed / self.minimum:.1f} times its running minimum"
            f" {self.minimum:.4g} (explosion_factor={self.explosion_factor})"
        )
        return _Finding("explosion", "explosion", detail)

    def _plateau(self) -> Optional[_Finding]:
        """The running minimum has not improved by a relative ``plateau_min_delta`` for ``max(window, anchor)`` batches.

        The stall must last at least as long as the loss took to reach its level, so a loss that keeps improving at a
        slowing pace (a power law, as language models follow) is not taken for a plateau.
        """
        if self.plateau_min_delta is None:
            return None
        stalled = self.count - self.anchor_count
        if stalled < max(self.plateau_window, self.anchor_count):
            return None
        never = self.anchor_count <= max(self.warmup_steps, 1)
        detail = (
            f"the running minimum of the smoothed loss, {self.minimum:.4g}, has not improved by more than"
            f" {self.plateau_min_delta:.2%} (plateau_min_delta) in the last {stalled} batches"
            + (" since the warm-up" if never else f", after falling from {self.peak:.4g}")
        )
        return _Finding("plateau", "no_decrease" if never else "plateau", detail)

    def _oscillation(self) -> Optional[_Finding]:
        """Robust spread of the last losses around their trend, over ``max(peak - s_n, |s_n|)``."""
        if self.oscillation_threshold is None or len(self.recent) < self.oscillation_window:
            return None
        spread = _detrended_spread(list(self.recent))
        smoothed = self.smoothed
        scale = max(self.peak - smoothed, abs(smoothed))
        if scale <= 0 or spread <= self.oscillation_threshold * scale:
            return None
        detail = (
            f"over the last {len(self.recent)} batches the loss swings by {spread:.4g} (robust standard deviation"
            f" around its trend), {spread / scale:.0%} of its scale {scale:.4g}, the larger of the smoothed loss and"
            f" its decrease so far (oscillation_threshold={self.oscillation_threshold})"
        )
        return _Finding("oscillation", "oscillation", detail)

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "ema": self._ema,
            "minimum": self.minimum,
            "peak": self.peak,
            "anchor": self.anchor,
            "anchor_count": self.anchor_count,
            "recent": list(self.recent),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.count = int(state_dict.get("count", 0))
        self._ema = float(state_dict.get("ema", 0.0))
        self.minimum = float(state_dict.get("minimum", math.inf))
        self.peak = float(state_dict.get("peak", -math.inf))
        self.anchor = float(state_dict.get("anchor", math.inf))
        self.anchor_count = int(state_dict.get("anchor_count", 0))
        self.recent: deque[float] = deque(state_dict.get("recent", ()), maxlen=self.oscillation_window)


def _detrended_spread(values: list[float]) -> float:
    """Robust standard deviation of ``values`` around a robust line through them.

    The line's slope is the median of the slopes between points half the window apart, its intercept the median of
    what the slope leaves; the spread is 1.4826 times the median absolute deviation of the residuals. A spike moves
    none of the three, where it would tilt a least-squares line and inflate a standard deviation.
    """
    half = len(values) // 2
    slope = statistics.median((values[i + half] - values[i]) / half for i in range(len(values) - half))
    intercept = statistics.median(y - slope * x for x, y in enumerate(values))
    residuals = [y - intercept - slope * x for x, y in enumerate(values)]
    center = statistics.median(residuals)
    return _MAD_TO_STD * statistics.median(abs(r - center) for r in residuals)


class _ValidationTracker:
    """Overfitting from the validation loss: above its best for ``patience`` checks while the training loss fell."""

    def __init__(self, patience: Optional[int], name: str) -> None:
        self.patience = patience
        self.name = name
        self.load_state_dict({})

    def update(self, val_loss: float, train_loss: float, step: int) -> Optional[_Finding]:
        """Take one validation loss with the smoothed training loss at that time (both finite)."""
        if val_loss <= self.best:
            self.best, self.train_at_best, self.best_step, self.wait = val_loss, train_loss, step, 0
            return None
        self.wait += 1
        if self.patience is None or self.wait < self.patience or train_loss >= self.train_at_best:
            return None
        detail = (
            f"the validation loss `{self.name}` has stayed above its best {self.best:.4g} (global step"
            f" {self.best_step}) for {self.wait} validation checks and is now {val_loss:.4g}, while the smoothed"
            f" training loss fell from {self.train_at_best:.4g} to {train_loss:.4g}"
        )
        return _Finding("overfitting", "overfitting", detail)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "train_at_best": self.train_at_best, "best_step": self.best_step, "wait": self.wait}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.best = float(state_dict.get("best", math.inf))
        self.train_at_best = float(state_dict.get("train_at_best", math.inf))
        self.best_step = int(state_dict.get("best_step", -1))
        self.wait = int(state_dict.get("wait", 0))


def _total_grad_norm(parameters: Iterable[Tensor]) -> Optional[Tensor]:
    """The 2-norm of all the gradients as one tensor, with no host sync; ``None`` when no parameter has a gradient.

    One ``torch._foreach_norm`` per device, then the norm of the stacked per-tensor norms, as
    ``torch.nn.utils.clip_grad_norm_`` computes it; the per-tensor norms of bfloat16 and float16 gradients are kept
    in float32.
    """
    by_device: dict[torch.device, list[Tensor]] = {}
    for param in parameters:
        if param.grad is not None:
            grad = param.grad.detach()
            grad = grad.coalesce().values() if grad.is_sparse else grad
            by_device.setdefault(grad.device, []).append(grad)
    if not by_device:
        return None
    first = next(iter(by_device))
    norms = [norm.to(first, torch.float32) for grads in by_device.values() for norm in _foreach_norm_float32(grads)]
    return torch.linalg.vector_norm(torch.stack(norms), 2.0)


def _foreach_norm_float32(tensors: list[Tensor]) -> list[Tensor]:
    try:
        return list(torch._foreach_norm(tensors, 2.0, dtype=torch.float32))
    except TypeError:  # an older torch without ``dtype``: norms in the tensors' own dtype
        return list(torch._foreach_norm(tensors, 2.0))


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` expected to be a `bool` but got {value!r}.")


def _check_key(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Argument `{name}` expected to be a non-empty `str` (a metric name) but got {value!r}.")


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an `int` >= {minimum}" + (", or `None` to switch its rule off" if optional else "")
        raise ValueError(f"Argument `{name}` expected to be {expected}, but got {value!r}.")


def _check_float(name: str, value: Any, expected: str, inside: Any, optional: bool = False) -> None:
    """Check a number against the predicate ``inside``; ``expected`` says in words what ``inside`` accepts."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not inside(value):
        expected += ", or `None` to switch its rule off" if optional else ""
        raise ValueError(f"Argument `{name}` expected to be {expected}, but got {value!r}.")


class TrainingHealthMonitor(Callback):
    r"""Watch the training and validation losses for the warning signs of unhealthy training, and log vital signs.

    The training loss is what ``training_step`` returns (a tensor, or a dict holding it under ``train_loss_key``),
    read once per training batch; under gradient accumulation it is the batch's loss, not Lightning's share of it.
    Under DDP it is averaged across processes first (one all-reduce of a scalar per batch), so every process takes
    the same decisions, stops together and saves the same state. The validation loss is
    ``trainer.callback_metrics[val_loss_key]`` after each validation run. The sanity check and runs other than
    ``fit`` are ignored. Reading the loss costs one host sync per training batch.

    A **non-finite loss** (NaN or Inf) stops the run (``trainer.should_stop = True``) with a warning that names the
    global step of the batch and the likely fixes, and the optimizer step of that batch is skipped, so that the
    validation and the checkpoints that end the run see the last finite weights. (``min_epochs`` or ``min_steps``
    keep a run going after ``should_stop``; every step of a non-finite loss is then skipped.) The other symptoms are each reported once, as a
    :class:`TrainingHealthWarning` with the likely cause and what to try. With the smoothed loss
    :math:`s_n = e_n / (1 - \beta^n)`, :math:`e_n = \beta e_{n-1} + (1 - \beta) x_n` (:math:`x_n` the loss of
    batch :math:`n`, :math:`\beta` = ``smoothing``), its running minimum :math:`m_n` and maximum :math:`p_n`, and
    from batch ``warmup_steps`` on:

    - **explosion**: :math:`s_n > \text{explosion\_factor} \cdot m_n` (with :math:`m_n > 0`).
    - **early plateau**: :math:`m_n` has not improved by a relative ``plateau_min_delta`` for
      :math:`\max(\text{plateau\_window}, a)` batches, :math:`a` the batch at which it last did, and the global step
      is within the first ``plateau_until`` of ``trainer.estimated_stepping_batches``. Requiring the stall to last
      as long as the loss took to get there keeps a loss that improves at a slowing pace (a power law) from being
      taken for a plateau. A loss that has not improved since the warm-up is reported as not decreasing.
    - **oscillation**: over the last ``oscillation_window`` losses, the robust spread of the residuals around a
      robust line (slope: the median slope between points half the window apart; spread: 1.4826 times the median
      absolute deviation, the standard deviation of Gaussian noise; a single spike moves neither) is above
      ``oscillation_threshold`` times :math:`\max(p_n - s_n, |s_n|)`: the swings are large against both the loss
      and the decrease it has made.
    - **overfitting**: the validation loss has stayed above its best for ``overfit_patience`` validation checks
      while the smoothed training loss fell below its value at that best.

    The rules assume a loss bounded below by 0 (cross-entropy, mean squared error, ...); switch them off
    (``None``) for losses that can be negative. Each report is also kept in :attr:`reports` (symptom to message)
    and logged to the trainer's loggers as ``health/<symptom>`` = 1 at the step it was found (``non_finite_loss``,
    ``explosion``, ``plateau``, ``oscillation``, ``overfitting``). The state (smoothed loss, running extremes,
    last losses, best validation loss, what was reported, the step of a non-finite loss) is saved in checkpoints,
    so a resumed run keeps watching and reports nothing twice.

    Logged through ``pl_module.log`` at every step (``on_step=True``, so loggers and ``trainer.callback_metrics`` see
    them):

    - ``train/grad_norm``: the 2-norm of all the gradients of the optimizer's parameters, taken before the optimizer
      steps and before clipping, as ``torch.nn.utils.clip_grad_norm_`` computes it (a tensor: no host sync); under
      sharded strategies (FSDP, DeepSpeed) the norm of this process's shard.
    - ``train/lr``: the learning rate of each parameter group, the one the optimizer applies at this step.
    - ``train/perplexity``: ``exp`` of the batch's training loss, for language-model losses in nats (on request);
      the perplexity of a whole epoch is ``exp`` of its mean loss, which
      :class:`~torchmetrics_ext.text.CausalLMPerplexity` computes.

    With several optimizers the names end in ``/opt<i>``, with several parameter groups in ``/pg<j>``
    (``train/lr/opt1/pg0``).

    Args:
        train_loss_key: key of the loss in the dict ``training_step`` returns (a tensor return is taken as it is).
        val_loss_key: name of the logged validation loss in ``trainer.callback_metrics``.
        warmup_steps: training batches before the explosion, plateau and oscillation rules apply.
        smoothing: weight :math:`\beta` of the past in the moving average of the training loss, in ``[0, 1)``;
            0.95 averages over about 20 batches.
        explosion_factor: how many times its running minimum the smoothed loss may reach before it counts as an
            explosion (> 1). A diverging cross-entropy climbs back towards its initial value, several times its
            minimum; ``None`` switches the rule off.
        plateau_window: fewest batches without relative improvement that count as a plateau.
        plateau_min_delta: relative improvement of the running minimum, in ``(0, 1)``, below which the loss counts as
            stalled; ``None`` switches the rule off.
        plateau_until: fraction of the planned optimizer steps, in ``(0, 1]``, during which a plateau counts as
            early and is reported; the whole run when the number of steps is unknown.
        oscillation_window: number of recent training losses the oscillation rule looks at (>= 3).
        oscillation_threshold: largest swing, as a fraction of the loss's scale, that is not an oscillation (> 0);
            ``None`` switches the rule off.
        overfit_patience: validation checks the validation loss must stay above its best (>= 1); ``None`` switches
            the rule off.
        stop_on_non_finite: whether a NaN or infinite training loss stops the run; ``False`` only warns.
        log_grad_norm: whether to log ``train/grad_norm``.
        log_lr: whether to log ``train/lr``.
        log_perplexity: whether to log ``train/perplexity``.

    Raises:
        ValueError: on an argument of the wrong type or outside its range.

    Example:
        >>> from torchmetrics_ext.callbacks.health import TrainingHealthMonitor
        >>> monitor = TrainingHealthMonitor(val_loss_key="val/loss", log_perplexity=True)
        >>> monitor.state_key
        "TrainingHealthMonitor{'train_loss_key': 'loss', 'val_loss_key': 'val/loss'}"
        >>> # L.Trainer(callbacks=[monitor]).fit(model); then monitor.reports maps each symptom found to its message
        >>> monitor.reports, monitor.non_finite_step
        ({}, None)

    """

    def __init__(
        self,
        train_loss_key: str = "loss",
        val_loss_key: str = "val/loss",
        warmup_steps: int = 100,
        smoothing: float = 0.95,
        explosion_factor: Optional[float] = 3.0,
        plateau_window: int = 500,
        plateau_min_delta: Optional[float] = 0.01,
        plateau_until: float = 0.5,
        oscillation_window: int = 100,
        oscillation_threshold: Optional[float] = 0.25,
        overfit_patience: Optional[int] = 3,
        stop_on_non_finite: bool = True,
        log_grad_norm: bool = True,
        log_lr: bool = True,
        log_perplexity: bool = False,
    ) -> None:
        super().__init__()
        _check_key("train_loss_key", train_loss_key)
        _check_key("val_loss_key", val_loss_key)
        _check_int("warmup_steps", warmup_steps, 0)
        _check_float("smoothing", smoothing, "a float in [0, 1)", lambda v: 0 <= v < 1)
        _check_float("explosion_factor", explosion_factor, "a float > 1", lambda v: 1 < v < math.inf, optional=True)
        _check_int("plateau_window", plateau_window, 1)
        _check_float("plateau_min_delta", plateau_min_delta, "a float in (0, 1)", lambda v: 0 < v < 1, optional=True)
        _check_float("plateau_until", plateau_until, "a float in (0, 1]", lambda v: 0 < v <= 1)
        _check_int("oscillation_window", oscillation_window, 3)
        _check_float(
            "oscillation_threshold", oscillation_threshold, "a float > 0", lambda v: 0 < v < math.inf, optional=True
        )
        _check_int("overfit_patience", overfit_patience, 1, optional=True)
        for name, flag in (
            ("stop_on_non_finite", stop_on_non_finite),
            ("log_grad_norm", log_grad_norm),
            ("log_lr", log_lr),
            ("log_perplexity", log_perplexity),
        ):
            _check_bool(name, flag)

        self.train_loss_key = train_loss_key
        self.val_loss_key = val_loss_key
        self.plateau_until = plateau_until
        self.stop_on_non_finite = stop_on_non_finite
        self.log_grad_norm = log_grad_norm
        self.log_lr = log_lr
        self.log_perplexity = log_perplexity
        self._tracker = _LossTracker(
            smoothing,
            warmup_steps,
            explosion_factor,
            plateau_window,
            plateau_min_delta,
            oscillation_window,
            oscillation_threshold,
        )
        self._validation = _ValidationTracker(overfit_patience, val_loss_key)
        self.reports: dict[str, str] = {}
        self.non_finite_step: Optional[int] = None
        self._batch_step = 0
        self._skip_step = False
        self._plateau_until_step = math.inf
        self._config_warned: set[str] = set()

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(train_loss_key=self.train_loss_key, val_loss_key=self.val_loss_key)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # the planned optimizer steps are known once the dataloaders are: inf for an endless run
        self._plateau_until_step = self.plateau_until * trainer.estimated_stepping_batches

    @override
    def on_train_batch_start(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int
    ) -> None:
        self._batch_step = trainer.global_step  # the step ``training_step`` sees, for the messages

    @override
    def on_train_batch_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._should_skip(trainer):
            return
        loss = self._training_loss(trainer, pl_module, outputs)
        if loss is None:
            return
        # the mean over processes: every rank sees the same value, so their decisions agree (the stop above all)
        loss = trainer.strategy.reduce(loss, reduce_op="mean")
        if self.log_perplexity:
            pl_module.log("train/perplexity", torch.exp(loss), on_step=True, on_epoch=False)
        value = loss.item()
        if not math.isfinite(value):
            self._on_non_finite(trainer, value, batch_idx)
            return
        self._tracker.update(value)
        early = self._batch_step <= self._plateau_until_step
        for finding in self._tracker.check(plateau=early, skip=self.reports):
            self._report(trainer, finding, self._batch_step)

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: Tensor) -> None:
        if not self.stop_on_non_finite or self._should_skip(trainer):
            return
        finite = bool(torch.isfinite(loss.detach()).all())
        # every process skips the step if one of them saw a non-finite loss
        self._skip_step |= not trainer.strategy.reduce_boolean_decision(finite, all=True)

    @override
    def on_before_optimizer_step(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer: torch.optim.Optimizer
    ) -> None:
        if self._skip_step:
            # a step on the gradients of a non-finite loss would write NaN into the weights that validation and
            # the checkpoints then use: optimizers leave parameters without a gradient untouched
            self._skip_step = False
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    parameter.grad = None
            return
        if trainer.state.fn != TrainerFn.FITTING or not (self.log_grad_norm or self.log_lr):
            return
        index = next((i for i, opt in enumerate(trainer.optimizers) if opt is optimizer), 0)
        suffix = f"/opt{index}" if len(trainer.optimizers) > 1 else ""
        if self.log_grad_norm:
            norm = _total_grad_norm(p for group in optimizer.param_groups for p in group["params"])
            if norm is not None:
                pl_module.log(f"train/grad_norm{suffix}", norm, on_step=True, on_epoch=False)
        if self.log_lr:
            groups = optimizer.param_groups
            for j, group in enumerate(groups):
                lr = group["lr"]
                lr = lr.detach().clone() if isinstance(lr, Tensor) else float(lr)
                name = f"train/lr{suffix}" + (f"/pg{j}" if len(groups) > 1 else "")
                pl_module.log(name, lr, on_step=True, on_epoch=False)

    @override
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # after the module's own ``on_validation_epoch_end``, so a loss logged there is read too
        if self._should_skip(trainer) or self._validation.patience is None or "overfitting" in self.reports:
            return
        value = trainer.callback_metrics.get(self.val_loss_key)
        if value is None:
            self._warn_config(
                "val_loss_key",
                f"TrainingHealthMonitor: the validation loss `{self.val_loss_key}` is not among the logged metrics"
                f" ({', '.join(f'`{key}`' for key in trainer.callback_metrics) or 'none'}), so overfitting is not"
                " watched. Log it in `validation_step` or pass `val_loss_key` (or `overfit_patience=None`).",
            )
            return
        value = torch.as_tensor(value, device=pl_module.device).detach().to(dtype=torch.float32, copy=True)
        val_loss = trainer.strategy.reduce(value, reduce_op="mean")
        val_loss, train_loss = val_loss.item(), self._tracker.smoothed
        if train_loss is None or not math.isfinite(val_loss):
            return
        finding = self._validation.update(val_loss, train_loss, trainer.global_step)
        if finding is not None:
            self._report(trainer, finding, trainer.global_step)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "tracker": self._tracker.state_dict(),
            "validation": self._validation.state_dict(),
            "reports": dict(self.reports),
            "non_finite_step": self.non_finite_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._tracker.load_state_dict(state_dict.get("tracker", {}))
        self._validation.load_state_dict(state_dict.get("validation", {}))
        self.reports = dict(state_dict.get("reports", {}))
        self.non_finite_step = state_dict.get("non_finite_step")

    @staticmethod
    def _should_skip(trainer: "pl.Trainer") -> bool:
        return trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking

    def _training_loss(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any) -> Optional[Tensor]:
        """The batch's training loss as a float32 scalar copy, or ``None`` when there is none to read."""
        if isinstance(outputs, Mapping):
            loss = outputs.get(self.train_loss_key)
        else:
            loss, outputs = outputs, {}
        if loss is None:
            if outputs or not pl_module.automatic_optimization:  # an empty output is a skipped automatic step
                self._warn_config(
                    "train_loss_key",
                    f"TrainingHealthMonitor: `training_step` returned no `{self.train_loss_key}`"
                    f" (keys: {', '.join(f'`{key}`' for key in outputs) or 'none'}), so the training loss is not"
                    " watched. Return it, or pass the right `train_loss_key`.",
                )
            return None
        loss = torch.as_tensor(loss, device=pl_module.device).detach().to(dtype=torch.float32, copy=True)
        if loss.numel() != 1:
            self._warn_config(
                "train_loss_shape",
                f"TrainingHealthMonitor: the training loss `{self.train_loss_key}` has shape {tuple(loss.shape)};"
                " a scalar was expected, so it is not watched.",
            )
            return None
        if pl_module.automatic_optimization and self.train_loss_key == "loss":
            loss *= trainer.accumulate_grad_batches  # Lightning hands on the loss divided by this
        return loss.reshape(())

    def _on_non_finite(self, trainer: "pl.Trainer", value: float, batch_idx: int) -> None:
        step = self._batch_step
        if self.non_finite_step is None:
            self.non_finite_step = step
        if self.stop_on_non_finite:
            trainer.should_stop = True
        facts = [f"the training loss is {value} (epoch {trainer.current_epoch}, batch {batch_idx})"]
        if trainer.optimizers and trainer.optimizers[0].param_groups:
            facts.append(f"the learning rate is {float(trainer.optimizers[0].param_groups[0]['lr']):.3g}")
        if not trainer.gradient_clip_val:
            facts.append("gradient clipping is off")
        facts.append(f"precision is {trainer.precision}")
        detail = ", ".join(facts) + ("; stopping the run" if self.stop_on_non_finite else "")
        self._report(trainer, _Finding("non_finite_loss", "non_finite_loss", detail), step)

    def _report(self, trainer: "pl.Trainer", finding: _Finding, step: int) -> None:
        """Warn once per symptom, keep the message in ``reports`` and log ``health/<symptom>`` = 1."""
        if finding.symptom in self.reports:
            return
        cause, fix = _ADVICE[finding.advice]
        message = (
            f"TrainingHealthMonitor detected {_TITLES[finding.advice]} at global step {step}: {finding.detail}."
            f" Likely cause: {cause}. Try: {fix}."
        )
        self.reports[finding.symptom] = message
        rank_zero_warn(message, category=TrainingHealthWarning)
        # the step Lightning logs its own metrics at, as its LearningRateMonitor does
        log_step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
        for logger in trainer.loggers:
            logger.log_metrics({f"health/{finding.symptom}": 1.0}, step=log_step)

    def _warn_config(self, key: str, message: str) -> None:
        if key not in self._config_warned:
            self._config_warned.add(key)
            rank_zero_warn(message)

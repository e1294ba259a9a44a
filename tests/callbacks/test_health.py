"""TrainingHealthMonitor: the rules on scripted loss curves, then the callback inside real Trainer runs on the CPU."""

import inspect
import math
import random
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.callbacks.lightning_models import BigramLM, LeaveProcessGroup, token_loader
from tests.callbacks.lightning_models import trainer as make_trainer
from tests.test_docstrings import _documented_args
from torchmetrics_ext.callbacks import ValidationMetrics
from torchmetrics_ext.text import CausalLMPerplexity
from torchmetrics_ext.callbacks.health import (
    TrainingHealthMonitor,
    TrainingHealthWarning,
    _detrended_spread,
    _LossTracker,
    _total_grad_norm,
    _ValidationTracker,
)

# Windows short enough that runs of a few hundred steps exercise every rule.
FAST = {"warmup_steps": 10, "smoothing": 0.8, "plateau_window": 30, "oscillation_window": 20}
# The constructor's defaults, as the tracker takes them.
TRACKER_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(TrainingHealthMonitor.__init__).parameters.items()
    if name != "self" and name in inspect.signature(_LossTracker.__init__).parameters
}


def _noise(n, scale, seed=0):
    rng = random.Random(seed)
    return [rng.gauss(0.0, scale) for _ in range(n)]


def healthy(n, seed=0):
    """Decays from 2.5 towards 0.5 with 1% noise."""
    return [2.0 * math.exp(-t / 40) + 0.5 + e for t, e in zip(range(n), _noise(n, 0.01, seed), strict=True)]


def exploding(n, at=60):
    """Healthy, then grows 20% a step from step ``at``."""
    return [v * (1.2 ** max(0, t - at)) for t, v in enumerate(healthy(n))]


def plateauing(n):
    """Falls fast from 3 to 1, then stays there."""
    return [2.0 * math.exp(-t / 8) + 1.0 + e for t, e in zip(range(n), _noise(n, 0.002), strict=True)]


def flat(n):
    return [2.0 + e for e in _noise(n, 0.002)]


def oscillating(n, start=60):
    """Healthy, then jumps up and down by 0.6 every step from step ``start``."""
    return [v + (0.6 if t % 2 else -0.6) * (t >= start) for t, v in enumerate(healthy(n))]


def _tracker(**kwargs):
    args = {**TRACKER_DEFAULTS, **kwargs}
    return _LossTracker(**args)


def _first_findings(tracker, curve, plateau=True):
    """Feed the curve; the first finding of each symptom, with the index of the loss that raised it."""
    found = {}
    for step, value in enumerate(curve):
        tracker.update(value)
        for finding in tracker.check(plateau=plateau, skip=found):
            found[finding.symptom] = (step, finding)
    return found


# ---------------------------------------------------------------------------------------------------------------------
# The rules, without a Trainer
# ---------------------------------------------------------------------------------------------------------------------


def test_smoothed_loss_is_the_debiased_moving_average():
    tracker = _tracker(smoothing=0.9)
    assert tracker.smoothed is None
    tracker.update(4.0)
    assert tracker.smoothed == pytest.approx(4.0)  # debiased: no pull towards 0
    tracker.update(2.0)
    assert tracker.smoothed == pytest.approx((0.9 * 0.1 * 4.0 + 0.1 * 2.0) / (1 - 0.9**2))
    assert (tracker.minimum, tracker.peak) == (pytest.approx(tracker.smoothed), 4.0)


@pytest.mark.parametrize(
    ("curve", "symptom", "advice", "steps"),
    [
        (exploding(200, at=60), "explosion", "explosion", range(61, 75)),
        (plateauing(200), "plateau", "plateau", range(95, 110)),  # stalls for as long as it fell
        (flat(200), "plateau", "no_decrease", range(30, 32)),
        (oscillating(200, start=60), "oscillation", "oscillation", range(60, 75)),
    ],
    ids=["explosion", "plateau", "no-decrease", "oscillation"],
)
def test_each_rule_finds_its_symptom_and_only_it(curve, symptom, advice, steps):
    found = _first_findings(_tracker(**FAST), curve)
    assert list(found) == [symptom]
    step, finding = found[symptom]
    assert step in steps
    assert finding.advice == advice


def test_healthy_curves_show_nothing():
    assert _first_findings(_tracker(**FAST), healthy(400)) == {}
    # a language model's loss, a power law in the step with noise, with the default thresholds: it keeps improving
    # at a slowing pace, which a fixed window would take for a plateau
    n = 20000
    lm_curve = [2.0 + 8.8 * (1 + t / 50) ** -0.5 + e for t, e in zip(range(n), _noise(n, 0.05), strict=True)]
    assert _first_findings(_tracker(), lm_curve) == {}


def test_a_single_spike_is_not_an_oscillation():
    curve = healthy(300)
    curve[150] += 20.0
    assert "oscillation" not in _first_findings(_tracker(**FAST, explosion_factor=None), curve)
    values = [1.0 + 0.01 * (t % 3) for t in range(40)]
    values[39] = 100.0
    assert _detrended_spread(values) < 0.05


def test_rules_switched_off_or_left_out_find_nothing():
    assert _first_findings(_tracker(**{**FAST, "explosion_factor": None}), exploding(100)) == {}
    assert _first_findings(_tracker(**{**FAST, "oscillation_threshold": None}), oscillating(100)) == {}
    assert _first_findings(_tracker(**{**FAST, "plateau_min_delta": None}), flat(200)) == {}
    assert _first_findings(_tracker(**FAST), flat(200), plateau=False) == {}
    assert _first_findings(_tracker(**{**FAST, "warmup_steps": 500}), exploding(200)) == {}


def test_overfitting_rule():
    tracker = _ValidationTracker(patience=2, name="val/loss")
    assert tracker.update(1.0, train_loss=2.0, step=10) is None
    assert tracker.update(1.1, train_loss=1.9, step=20) is None  # above its best once
    finding = tracker.update(1.2, train_loss=1.8, step=30)
    assert finding.symptom == "overfitting"
    assert "best 1 (global step 10) for 2 validation checks" in finding.detail
    # the validation loss rising while the training loss rises too is not overfitting
    tracker = _ValidationTracker(patience=2, name="val/loss")
    for step, (val, train) in enumerate([(1.0, 2.0), (1.1, 2.1), (1.2, 2.2), (1.3, 2.3)]):
        assert tracker.update(val, train, step) is None


# ---------------------------------------------------------------------------------------------------------------------
# Arguments and state
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_loss_key": ""}, "`train_loss_key` expected to be a non-empty `str`"),
        ({"val_loss_key": None}, "`val_loss_key` expected to be a non-empty `str`"),
        ({"warmup_steps": -1}, r"`warmup_steps` expected to be an `int` >= 0, but got -1"),
        ({"warmup_steps": 2.0}, "`warmup_steps` expected to be an `int`"),
        ({"smoothing": 1.0}, r"`smoothing` expected to be a float in \[0, 1\), but got 1.0"),
        ({"smoothing": float("nan")}, "`smoothing` expected"),
        ({"explosion_factor": 1.0}, "`explosion_factor` expected to be a float > 1, or `None` to switch its rule off"),
        ({"explosion_factor": "3"}, "`explosion_factor` expected"),
        ({"plateau_window": 0}, "`plateau_window` expected to be an `int` >= 1"),
        ({"plateau_min_delta": 0.0}, r"`plateau_min_delta` expected to be a float in \(0, 1\)"),
        ({"plateau_until": 0}, r"`plateau_until` expected to be a float in \(0, 1\]"),
        ({"oscillation_window": 2}, "`oscillation_window` expected to be an `int` >= 3"),
        ({"oscillation_threshold": -0.1}, "`oscillation_threshold` expected to be a float > 0"),
        ({"overfit_patience": 0}, "`overfit_patience` expected to be an `int` >= 1, or `None`"),
        ({"overfit_patience": True}, "`overfit_patience` expected"),
        ({"stop_on_non_finite": 1}, "`stop_on_non_finite` expected to be a `bool` but got 1"),
        ({"log_perplexity": "yes"}, "`log_perplexity` expected to be a `bool`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingHealthMonitor(**kwargs)


def test_switched_off_rules_and_integers_for_floats_are_accepted():
    TrainingHealthMonitor(
        explosion_factor=None, plateau_min_delta=None, oscillation_threshold=None, overfit_patience=None
    )
    TrainingHealthMonitor(explosion_factor=10, smoothing=0, plateau_until=1)


def test_docstring_documents_exactly_the_arguments():
    names = [name for name in inspect.signature(TrainingHealthMonitor.__init__).parameters if name != "self"]
    assert sorted(_documented_args(inspect.getdoc(TrainingHealthMonitor) + "\n")) == sorted(names)


def test_state_round_trip_and_defaults_for_missing_keys(tmp_path):
    monitor = TrainingHealthMonitor(**FAST)
    for value in exploding(120):
        monitor._tracker.update(value)
    monitor._validation.update(0.7, 1.0, step=40)
    monitor.reports["explosion"] = "reported"
    monitor.non_finite_step = 7
    # plain values only: the state survives a checkpoint loaded with ``weights_only=True``
    torch.save(monitor.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)

    restored = TrainingHealthMonitor(**FAST)
    restored.load_state_dict(state)
    assert restored.state_dict() == monitor.state_dict()
    assert restored._tracker.smoothed == monitor._tracker.smoothed

    fresh = TrainingHealthMonitor(**FAST)
    old = TrainingHealthMonitor(**FAST)
    old.load_state_dict({"reports": {"plateau": "reported"}})  # a checkpoint from before a key existed
    assert old.reports == {"plateau": "reported"}
    assert old._tracker.state_dict() == fresh._tracker.state_dict()
    assert old._validation.state_dict() == fresh._validation.state_dict()
    assert old.non_finite_step is None


def test_state_key_names_the_watched_losses():
    assert TrainingHealthMonitor().state_key != TrainingHealthMonitor(val_loss_key="val/nll").state_key
    assert TrainingHealthMonitor().state_key == TrainingHealthMonitor(explosion_factor=5.0).state_key


# ---------------------------------------------------------------------------------------------------------------------
# Inside the Trainer
# ---------------------------------------------------------------------------------------------------------------------


class MemoryLogger(Logger):
    """Keeps what the trainer logs, by step."""

    def __init__(self):
        super().__init__()
        self.rows = []

    @property
    def name(self):
        return "memory"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def values(self, key):
        return [float(metrics[key]) for _, metrics in self.rows if key in metrics]

    def steps(self, key):
        return [step for step, metrics in self.rows if key in metrics]


class ScriptedModule(L.LightningModule):
    """``training_step`` returns ``train_losses[global_step]``; validation logs ``val_losses[current_epoch]``."""

    def __init__(self, train_losses, val_losses=(), sanity_val_loss=0.0, out_dir=None):
        super().__init__()
        self.param = nn.Parameter(torch.zeros(1))
        self.train_losses = list(train_losses)
        self.val_losses = list(val_losses)
        self.sanity_val_loss = sanity_val_loss
        self.out_dir = out_dir

    def training_step(self, batch, batch_idx):
        return self.param.sum() * 0 + self.train_losses[self.global_step]

    def validation_step(self, batch, batch_idx):
        value = self.sanity_val_loss if self.trainer.sanity_checking else self.val_losses[self.current_epoch]
        self.log("val/loss", value)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n):
    return DataLoader(TensorDataset(torch.zeros(n, 2)), batch_size=1)


def _trainer(**kwargs):
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
    }
    return L.Trainer(**{**defaults, **kwargs})


def _fit(trainer, model, *loaders, **kwargs):
    """Fit; return the messages of the TrainingHealthWarnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, *loaders, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, TrainingHealthWarning)]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_the_run_naming_its_step(bad):
    losses = [1.0] * 7 + [bad] + [1.0] * 22
    monitor = TrainingHealthMonitor()
    logger = MemoryLogger()
    trainer = _trainer(callbacks=[monitor], logger=logger)
    messages = _fit(trainer, ScriptedModule(losses), _loader(30))

    assert trainer.global_step == 8  # the optimizer stepped on the bad batch, then the run stopped
    assert monitor.non_finite_step == 7
    [message] = messages
    assert message.startswith("TrainingHealthMonitor detected a non-finite training loss at global step 7:")
    assert f"the training loss is {bad}" in message and "stopping the run" in message
    for fix in ("lower the learning rate", "gradient_clip_val=1.0", "check the data", "bf16-mixed"):
        assert fix in message
    assert "gradient clipping is off" in message and "learning rate is 0.1" in message
    assert monitor.reports == {"non_finite_loss": message}
    assert logger.values("health/non_finite_loss") == [1.0]


def test_non_finite_loss_only_warns_when_asked_and_warns_once():
    losses = [1.0] * 5 + [math.nan] * 3 + [1.0] * 12
    monitor = TrainingHealthMonitor(stop_on_non_finite=False)
    trainer = _trainer(callbacks=[monitor])
    messages = _fit(trainer, ScriptedModule(losses), _loader(20))
    assert trainer.global_step == 20
    assert len(messages) == 1 and "global step 5" in messages[0] and "stopping" not in messages[0]
    assert monitor.non_finite_step == 5


def _overfit_run(val_losses, epochs=8, batches=10):
    monitor = TrainingHealthMonitor(overfit_patience=3, **FAST)
    logger = MemoryLogger()
    # one sanity-check batch logs a validation loss of 0: counted, it would be a best no epoch beats
    trainer = _trainer(callbacks=[monitor], logger=logger, max_epochs=epochs, num_sanity_val_steps=1)
    model = ScriptedModule(healthy(epochs * batches), val_losses, sanity_val_loss=0.0)
    messages = _fit(trainer, model, _loader(batches), _loader(1))
    return monitor, logger, messages


def test_overfitting_is_reported_once():
    monitor, logger, messages = _overfit_run([1.0, 0.8, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
    [message] = messages
    # best after epoch 2 (step 30); above it after epochs 3, 4 and 5 (step 60)
    assert message.startswith("TrainingHealthMonitor detected overfitting at global step 60:")
    assert "`val/loss` has stayed above its best 0.7 (global step 30) for 3 validation checks" in message
    assert "regularization" in message and "more data" in message and "early stopping" in message
    assert list(monitor.reports) == ["overfitting"]
    assert logger.values("health/overfitting") == [1.0]


def test_healthy_run_raises_no_health_warning():
    monitor, logger, messages = _overfit_run([1.0, 0.9, 0.85, 0.8, 0.78, 0.76, 0.75, 0.74])
    assert messages == []
    assert monitor.reports == {}
    assert not [key for _, metrics in logger.rows for key in metrics if key.startswith("health/")]


@pytest.mark.parametrize(
    ("curve", "symptom"),
    [(exploding(150), "explosion"), (plateauing(150), "plateau"), (oscillating(150), "oscillation")],
    ids=["explosion", "plateau", "oscillation"],
)
def test_training_curve_symptoms_are_reported_once_and_logged(curve, symptom):
    monitor = TrainingHealthMonitor(plateau_until=1.0, **FAST)  # the plateau is found at step ~100 of 150
    logger = MemoryLogger()
    trainer = _trainer(callbacks=[monitor], logger=logger, max_steps=len(curve))
    messages = _fit(trainer, ScriptedModule(curve), _loader(len(curve)))
    assert list(monitor.reports) == [symptom]
    assert messages == [monitor.reports[symptom]]
    assert messages[0].startswith("TrainingHealthMonitor detected") and "Likely cause:" in messages[0]
    assert logger.values(f"health/{symptom}") == [1.0]
    assert trainer.global_step == len(curve)  # only a non-finite loss stops the run


@pytest.mark.parametrize(("plateau_until", "reported"), [(1.0, True), (0.1, False)])
def test_plateau_is_reported_only_early_in_the_run(plateau_until, reported):
    monitor = TrainingHealthMonitor(plateau_until=plateau_until, **FAST)
    trainer = _trainer(callbacks=[monitor], max_steps=150)
    messages = _fit(trainer, ScriptedModule(flat(150)), _loader(150))  # stalled from the start: found at step 30
    assert ("plateau" in monitor.reports) is reported
    if reported:
        assert "does not decrease" in messages[0] and "increase the learning rate" in messages[0]


class TinyRegression(L.LightningModule):
    """A two-layer regression net that records the loss, gradient norm and learning rates of every step itself."""

    def __init__(self, groups=1):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.groups = groups
        self.losses, self.norms, self.lrs = [], [], []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.losses.append(loss.item())
        return loss

    def on_before_optimizer_step(self, optimizer):
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        self.lrs.append([group["lr"] for group in optimizer.param_groups])

    def configure_optimizers(self):
        params = [{"params": self.net[0].parameters()}, {"params": self.net[2].parameters(), "lr": 0.05}]
        optimizer = torch.optim.SGD(params if self.groups == 2 else self.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _regression_loader(n=16, batch_size=2):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True).sin()), batch_size=batch_size)


def test_logged_grad_norm_lr_and_perplexity_match_the_references():
    monitor = TrainingHealthMonitor(log_perplexity=True)
    logger = MemoryLogger()
    model = TinyRegression()
    # clipping happens after the hooks: the logged norm is the one before clipping
    trainer = _trainer(callbacks=[monitor], logger=logger, max_epochs=2, gradient_clip_val=0.01)
    assert _fit(trainer, model, _regression_loader()) == []
    assert len(model.norms) == trainer.global_step == 16
    assert logger.values("train/grad_norm") == pytest.approx(model.norms, rel=1e-6)
    assert logger.values("train/lr") == pytest.approx([lrs[0] for lrs in model.lrs], rel=1e-6)
    assert logger.values("train/lr")[:3] == pytest.approx([0.1, 0.09, 0.081])
    assert logger.values("train/perplexity") == pytest.approx([math.exp(loss) for loss in model.losses], rel=1e-6)
    assert logger.steps("train/grad_norm") == logger.steps("train/perplexity") == list(range(16))


def test_gradient_accumulation_and_parameter_groups():
    monitor = TrainingHealthMonitor(log_perplexity=True)
    logger = MemoryLogger()
    model = TinyRegression(groups=2)
    trainer = _trainer(callbacks=[monitor], logger=logger, accumulate_grad_batches=2)
    _fit(trainer, model, _regression_loader())
    assert trainer.global_step == 4 and len(model.norms) == 4
    assert logger.values("train/grad_norm") == pytest.approx(model.norms, rel=1e-6)
    assert logger.values("train/lr/pg0") == pytest.approx([lrs[0] for lrs in model.lrs])
    assert logger.values("train/lr/pg1") == pytest.approx([lrs[1] for lrs in model.lrs])
    # Lightning hands on the loss divided by 2; the perplexity is that of the whole loss, logged on stepping batches
    assert logger.values("train/perplexity") == pytest.approx([math.exp(loss) for loss in model.losses[1::2]])
    assert monitor._tracker.count == 8


def test_grad_norm_matches_torch_with_missing_and_low_precision_gradients():
    generator = torch.Generator().manual_seed(0)
    shapes, dtypes = [(3, 4), (5,), (2, 2), (7,)], [torch.float32, torch.float32, torch.bfloat16, torch.float32]
    params = [
        nn.Parameter(torch.randn(shape, generator=generator).to(dtype))
        for shape, dtype in zip(shapes, dtypes, strict=True)
    ]
    for param in params[:3]:  # the last one has no gradient
        param.grad = torch.randn(param.shape, generator=generator).to(param.dtype)
    grads = [p.grad for p in params[:3]]
    norm = _total_grad_norm(params)
    assert norm.dtype == torch.float32 and norm.shape == ()
    reference = torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads]))
    assert float(norm) == pytest.approx(float(reference), rel=1e-6)
    assert float(norm) == pytest.approx(float(torch.nn.utils.get_total_norm(grads[:2] + [grads[2].float()])), rel=1e-6)
    assert _total_grad_norm([nn.Parameter(torch.zeros(2))]) is None


class TwoOptimizers(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.a, self.b = nn.Linear(2, 1), nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x = batch[0]
        losses = []
        for net, optimizer in zip((self.a, self.b), self.optimizers(), strict=True):
            loss = net(x).pow(2).mean()
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            losses.append(loss.detach())
        return {"loss": losses[0] + losses[1]}

    def configure_optimizers(self):
        return torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.Adam(self.b.parameters(), lr=0.01)


def test_several_optimizers_get_one_name_each():
    monitor = TrainingHealthMonitor()
    logger = MemoryLogger()
    trainer = _trainer(callbacks=[monitor], logger=logger)
    _fit(trainer, TwoOptimizers(), _loader(4))
    logged = {key for _, metrics in logger.rows for key in metrics}
    assert {"train/grad_norm/opt0", "train/grad_norm/opt1", "train/lr/opt0", "train/lr/opt1"} <= logged
    assert logger.values("train/lr/opt1") == pytest.approx([0.01] * 4)  # logged as float32
    assert monitor._tracker.count == 4  # the manual-optimization loss is read as it is


def test_missing_losses_warn_once_and_switches_turn_logging_off():
    monitor = TrainingHealthMonitor(train_loss_key="nll", val_loss_key="val/nll", log_grad_norm=False, log_lr=False)
    logger = MemoryLogger()
    trainer = _trainer(callbacks=[monitor], logger=logger, max_epochs=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(ScriptedModule(healthy(8), [1.0, 0.9]), _loader(4), _loader(1))
    texts = [str(w.message) for w in record if str(w.message).startswith("TrainingHealthMonitor")]
    assert len(texts) == 2  # once each, though both were missing on every batch and every validation
    assert "`training_step` returned no `nll` (keys: `loss`)" in texts[0]
    assert "the validation loss `val/nll` is not among the logged metrics (`val/loss`)" in texts[1]
    assert monitor._tracker.count == 0
    assert not [key for _, metrics in logger.rows for key in metrics if key.startswith("train/")]


def test_resumed_run_keeps_its_state_and_does_not_report_again(tmp_path):
    curve = exploding(100, at=30)
    first = TrainingHealthMonitor(**FAST)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = _trainer(
        callbacks=[first, checkpoint], enable_checkpointing=True, max_epochs=3, default_root_dir=tmp_path
    )
    assert len(_fit(trainer, ScriptedModule(curve), _loader(20))) == 1
    assert list(first.reports) == ["explosion"]
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["callbacks"][first.state_key]
    assert saved == first.state_dict()

    second = TrainingHealthMonitor(**FAST)
    trainer = _trainer(callbacks=[second, ModelCheckpoint(dirpath=tmp_path)], enable_checkpointing=True, max_epochs=5)
    messages = _fit(trainer, ScriptedModule(curve), _loader(20), ckpt_path=tmp_path / "last.ckpt")
    assert trainer.global_step == 100
    assert messages == []  # the loss is still exploded, and was reported before the checkpoint
    assert second.reports == first.reports
    assert second._tracker.count == 100 and second._tracker.minimum == first._tracker.minimum


class RankScriptedModule(ScriptedModule):
    """Rank 0 trains on ``1.0`` throughout, rank 1 on ``3.0`` and NaN at step 5; each saves what its monitor saw."""

    def training_step(self, batch, batch_idx):
        value = 1.0 if self.global_rank == 0 else (math.nan if self.global_step == 5 else 3.0)
        return self.param.sum() * 0 + value

    def on_train_end(self):
        [monitor] = [c for c in self.trainer.callbacks if isinstance(c, TrainingHealthMonitor)]
        state = {"global_step": self.trainer.global_step, **monitor.state_dict()}
        torch.save(state, f"{self.out_dir}/rank{self.global_rank}.pt")


def test_processes_stop_together_when_one_sees_a_non_finite_loss(tmp_path):
    """Under DDP the monitor watches the mean loss of the processes: one NaN stops them all, at the same step."""
    callbacks = [TrainingHealthMonitor(), LeaveProcessGroup()]
    trainer = _trainer(devices=2, strategy="ddp_spawn", callbacks=callbacks, max_epochs=1)
    trainer.fit(RankScriptedModule([], out_dir=str(tmp_path)), _loader(40))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert ranks[0] == ranks[1]  # the same decisions and the same state on both processes
    assert ranks[0]["global_step"] == 6 and ranks[0]["non_finite_step"] == 5
    assert list(ranks[0]["reports"]) == ["non_finite_loss"]
    assert ranks[0]["tracker"]["count"] == 5 and ranks[0]["tracker"]["minimum"] == pytest.approx(2.0)


class _NaNAtStep3(BigramLM):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == 3 else loss


def test_a_nan_loss_takes_no_step_so_validation_and_checkpoints_keep_finite_weights(tmp_path):
    """The stop comes after the batch: its optimizer step must not write NaN into the weights that are saved."""
    model = _NaNAtStep3()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    metrics = ValidationMetrics({"perplexity": CausalLMPerplexity()})
    fit = make_trainer(max_epochs=3, callbacks=[metrics, checkpoint, TrainingHealthMonitor()], enable_checkpointing=True)
    with pytest.warns(TrainingHealthWarning, match="global step 3"):
        fit.fit(model, token_loader(seed=1), token_loader(seed=2))
    assert fit.global_step == 4  # the run stopped after the NaN batch, whose step changed nothing
    assert all(torch.isfinite(p).all() for p in model.parameters())
    saved = torch.load(checkpoint.last_model_path, weights_only=False)["state_dict"]
    assert all(torch.isfinite(value).all() for value in saved.values())
    assert torch.isfinite(fit.callback_metrics["val/perplexity"])

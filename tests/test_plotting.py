"""``plot_training_log``: the curves of a Lightning ``CSVLogger`` log, the best-step and health markers, the errors."""

import sys
import warnings
from pathlib import Path

import pytest

from torchmetrics_ext.plotting import _training_figures, best_step, default_mode, plot_training_log

pytest.importorskip("matplotlib")
pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from tests.callbacks.lightning_models import BigramLM, token_loader, trainer  # noqa: E402
from torchmetrics_ext.callbacks import TrainingHealthMonitor, ValidationMetrics  # noqa: E402
from torchmetrics_ext.text import CausalLMPerplexity, CausalLMTokenAccuracy  # noqa: E402

BATCHES = 4  # training batches per epoch: token_loader() has 16 sequences in batches of 4


class LoggingBigramLM(BigramLM):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("val/loss", out["loss"])
        return out


@pytest.fixture(scope="module")
def lightning_log(tmp_path_factory):
    """A real 4-epoch run: the validation loss falls, jumps at epoch 2 (overfitting reported there), falls again."""
    log_dir = tmp_path_factory.mktemp("run")
    model = LoggingBigramLM(val_scales=(1.0, 0.5, 2.0, 0.8))
    metrics = {"perplexity": CausalLMPerplexity(), "accuracy": CausalLMTokenAccuracy()}
    callbacks = [ValidationMetrics(metrics), TrainingHealthMonitor(warmup_steps=0, overfit_patience=1)]
    logger = CSVLogger(log_dir, name="", version="")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=4, logger=logger, log_every_n_steps=1, callbacks=callbacks).fit(
            model, token_loader(), token_loader(seed=1)
        )
    return Path(logger.log_dir) / "metrics.csv", model


def _hand_val_losses(model):
    """The validation loss of each epoch, recomputed from the logits the model validated (equal batch sizes)."""
    per_batch = [model._loss(logits, labels).item() for logits, labels in model.validated]
    return [sum(per_batch[i : i + BATCHES]) / BATCHES for i in range(0, len(per_batch), BATCHES)]


def _vlines(ax, linestyle):
    """(step, label) of the vertical lines drawn with ``linestyle`` on ``ax``."""
    return [
        (line.get_xdata()[0], line.get_label())
        for line in ax.lines
        if line.get_linestyle() == linestyle and line.get_xdata()[0] == line.get_xdata()[1]
    ]


def test_real_lightning_log_files_and_best_step(lightning_log, tmp_path):
    csv_path, model = lightning_log
    paths = plot_training_log(csv_path, tmp_path / "plots", monitor="val/loss")
    names = ["loss.png", "perplexity.png", "train_grad_norm.png", "train_lr.png", "val_accuracy.png"]
    assert paths == sorted(tmp_path / "plots" / name for name in names)
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in paths)

    losses = _hand_val_losses(model)
    assert len(losses) == 4
    best_epoch = min(range(4), key=losses.__getitem__)
    worst_epoch = max(range(4), key=losses.__getitem__)
    assert best_epoch != worst_epoch
    step, epoch, value = best_step(csv_path, "val/loss")
    assert (step, epoch) == ((best_epoch + 1) * BATCHES - 1, best_epoch)  # validation logs at the epoch's last step
    assert value == pytest.approx(losses[best_epoch], rel=1e-5)
    assert best_step(csv_path, "val/loss", "max")[:2] == ((worst_epoch + 1) * BATCHES - 1, worst_epoch)
    assert best_step(csv_path, "val/perplexity")[1] == best_epoch  # perplexity = exp(loss): same epoch

    figures = _training_figures(csv_path, "val/loss", None)
    assert sorted(figures) == [name[:-4] for name in names]
    for fig in figures.values():
        ax = fig.axes[0]
        assert _vlines(ax, "--") == [(step, f"best val/loss (epoch {best_epoch})")]
        # the monitor reported overfitting at the check where the validation loss rose above its best
        assert [label for _, label in _vlines(ax, ":")] == ["overfitting"]
    curves = {line.get_label() for line in figures["loss"].axes[0].lines}
    assert {"train/loss", "val/loss"} <= curves


HAND_CSV = (
    "epoch,health/explosion,health/plateau,step,train/grad_norm,train/loss,train/lr,val/accuracy,val/fvd,val/loss\n"
    "0,,,0,1.0,3.0,0.1,,,\n"
    "0,,,1,1.5,2.5,0.1,,,\n"
    "0,,,1,,,,0.25,300.0,2.75\n"
    ",1.0,,2,,,,,,\n"
    "1,,,2,9.0,8.0,0.1,,,\n"
    "1,,,3,1.2,2.0,0.05,,,\n"
    "1,,,3,,,,0.5,250.0,2.25\n"
    ",,1.0,3,,,,,,\n"
    "2,,,4,1.1,1.9,0.05,,,\n"
    "2,,,5,1.0,1.8,0.05,,,\n"
    "2,,,5,,,,0.5,260.0,2.5\n"
    ",0.0,,5,,,,,,\n"  # a zero symptom cell: no marker
)


@pytest.fixture
def hand_log(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HAND_CSV)
    return path


def test_hand_log_markers_on_every_plot(hand_log, tmp_path):
    paths = plot_training_log(hand_log, tmp_path / "out", monitor="val/accuracy")
    assert [path.name for path in paths] == [
        "loss.png",
        "train_grad_norm.png",
        "train_lr.png",
        "val_accuracy.png",
        "val_fvd.png",
    ]
    figures = _training_figures(hand_log, "val/accuracy", None)
    for fig in figures.values():
        ax = fig.axes[0]
        # accuracy: "max", ties keep the first row
        assert _vlines(ax, "--") == [(3, "best val/accuracy (epoch 1)")]
        assert sorted(_vlines(ax, ":")) == [(2, "explosion"), (3, "plateau")]
        assert ax.get_xlabel() == "step"
    assert _vlines(_training_figures(hand_log, "val/accuracy", "min")["loss"].axes[0], "--") == [
        (1, "best val/accuracy (epoch 0)")
    ]
    assert best_step(hand_log, "val/fvd") == (3, 1, 250.0)
    assert best_step(hand_log, "val/fvd", "max") == (1, 0, 300.0)
    # no monitor: no best line, the health markers stay
    for fig in _training_figures(hand_log, None, None).values():
        assert _vlines(fig.axes[0], "--") == [] and len(_vlines(fig.axes[0], ":")) == 2


def test_default_mode_rule():
    for name in ("val/accuracy", "val/psnr", "val/SSIM", "val/consistency", "val/flickering"):
        assert default_mode(name) == "max"
    for name in ("val/loss", "val/perplexity", "val/fvd", "val/kvd", "val/warping_error"):
        assert default_mode(name) == "min"


def test_errors(hand_log, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match="nope.csv"):
        plot_training_log(missing, tmp_path / "out")
    no_step = tmp_path / "no_step.csv"
    no_step.write_text("epoch,train/loss\n0,1.0\n")
    with pytest.raises(ValueError, match="folder"):
        plot_training_log(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match=r"no_step\.csv.*`step`"):
        plot_training_log(no_step, tmp_path / "out")
    with pytest.raises(ValueError, match=r"metrics\.csv.*'val/bleu'.*'val/fvd'"):
        plot_training_log(hand_log, tmp_path / "out", monitor="val/bleu")
    with pytest.raises(ValueError, match="mode"):
        plot_training_log(hand_log, tmp_path / "out", monitor="val/fvd", mode="lowest")
    assert not (tmp_path / "out").exists()


def test_missing_matplotlib(hand_log, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "torchmetrics-ext\[plot\]"'):
        plot_training_log(hand_log, tmp_path / "out")


def test_health_columns_are_not_curves(hand_log):
    figures = _training_figures(hand_log, None, None)
    labels = {line.get_label() for fig in figures.values() for line in fig.axes[0].lines}
    assert not any(label.startswith("health/") for label in labels)

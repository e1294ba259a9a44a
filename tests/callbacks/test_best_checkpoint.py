"""BestMetricCheckpoint in real Trainer runs: mode from the metric, safe file names, the best epoch's weights."""

import copy
import os

import lightning as L
import pytest
import torch

from tests.callbacks.lightning_models import BigramLM, token_loader, trainer
from torchmetrics_ext.callbacks import BestMetricCheckpoint, ValidationMetrics
from torchmetrics_ext.text import CausalLMPerplexity, CausalLMTokenAccuracy


class _Recorder(L.Callback):
    """Records, after every validation epoch, the logged values and a copy of the weights."""

    def __init__(self, name: str) -> None:
        self.name, self.values, self.weights = name, [], []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics[self.name]))
            self.weights.append(copy.deepcopy(pl_module.state_dict()))


def _fit(tmp_path, monitor, max_epochs=4, ckpt_path=None, mode=None, **kwargs):
    metrics = ValidationMetrics({"perplexity": CausalLMPerplexity(), "acc": CausalLMTokenAccuracy()})
    best = BestMetricCheckpoint(monitor=monitor, mode=mode, dirpath=tmp_path / "ckpt", **kwargs)
    recorder = _Recorder(monitor)
    model = BigramLM(lr=2.0, val_scales=(1.0, 0.3, -1.0, -0.5))  # a validation curve that moves both ways
    fit = trainer(max_epochs=max_epochs, callbacks=[metrics, best, recorder], enable_checkpointing=True)
    fit.fit(model, token_loader(seed=1), token_loader(seed=2), ckpt_path=ckpt_path)
    return best, recorder


@pytest.mark.parametrize(("monitor", "mode", "pick"), [("val/perplexity", "min", min), ("val/acc", "max", max)])
def test_the_best_checkpoint_is_the_epoch_with_the_best_logged_value(tmp_path, monitor, mode, pick):
    best, recorder = _fit(tmp_path, monitor)
    assert best.mode == mode  # from higher_is_better
    best_epoch = recorder.values.index(pick(recorder.values))
    assert best_epoch < len(recorder.values) - 1  # not merely the last checkpoint
    assert float(best.best_model_score) == pytest.approx(pick(recorder.values))
    # the file sits in dirpath (no "val" sub-folder) and names the epoch and the value
    assert os.path.dirname(best.best_model_path) == str(tmp_path / "ckpt")
    assert os.path.basename(best.best_model_path).startswith(f"epoch={best_epoch}-")
    assert monitor.replace("/", "_") + "=" in best.best_model_path
    restored = BigramLM.load_from_checkpoint(best.best_model_path)
    for name, value in restored.state_dict().items():
        torch.testing.assert_close(value, recorder.weights[best_epoch][name])


def test_an_explicit_mode_wins(tmp_path):
    best, recorder = _fit(tmp_path, "val/perplexity", max_epochs=2, mode="max")
    assert best.mode == "max"
    assert float(best.best_model_score) == pytest.approx(max(recorder.values))


def test_resuming_keeps_the_best_score(tmp_path):
    first, recorder = _fit(tmp_path, "val/perplexity", max_epochs=2, save_last=True)
    resumed, more = _fit(tmp_path, "val/perplexity", max_epochs=4, save_last=True, ckpt_path=first.last_model_path)
    assert len(more.values) == 2  # epochs 2 and 3 only
    assert float(resumed.best_model_score) == pytest.approx(min(recorder.values + more.values))


def test_a_mode_that_cannot_be_inferred_is_a_clear_error(tmp_path):
    best = BestMetricCheckpoint(monitor="val/loss", dirpath=tmp_path)
    with pytest.raises(ValueError, match="Pass `mode='min'` or `mode='max'`"):
        trainer(callbacks=[best], enable_checkpointing=True).fit(BigramLM(), token_loader(), token_loader())


@pytest.mark.parametrize(("kwargs", "message"), [({"monitor": ""}, "`monitor`"), ({"monitor": "a", "mode": "up"}, "`mode`")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BestMetricCheckpoint(**kwargs)


def test_file_names_of_metrics_with_slashes():
    best = BestMetricCheckpoint(monitor="val/perplexity", mode="min", filename="best-{val/perplexity:.2f}-{epoch:02d}")
    name = best.format_checkpoint_name({"epoch": 3, "val/perplexity": torch.tensor(5.126)})
    assert name == "best-val_perplexity=5.13-epoch=03.ckpt"

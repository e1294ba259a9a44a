"""ValidationMetrics in real Trainer runs: logged values against direct float64 computations."""

import math

import pytest
import torch
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy

from tests.callbacks.lightning_models import VOCAB, BigramLM, LeaveProcessGroup, token_loader, trainer
from tests.helpers import reference
from torchmetrics_ext.callbacks import ValidationMetrics
from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity, CausalLMTokenAccuracy

RTOL = 1e-5


def _validated(model: BigramLM, epoch_batches: int):
    """The logits and labels of the last validation epoch of ``model``."""
    last = model.validated[-epoch_batches:]
    return torch.cat([logits for logits, _ in last]), torch.cat([labels for _, labels in last])


def test_logged_values_equal_a_direct_computation_without_the_sanity_check():
    model = BigramLM()
    callback = ValidationMetrics(
        {"perplexity": CausalLMPerplexity(), "cross_entropy": CausalLMCrossEntropy(), "acc": CausalLMTokenAccuracy()}
    )
    fit = trainer(max_epochs=2, callbacks=[callback], num_sanity_val_steps=2)
    fit.fit(model, token_loader(seed=1), token_loader(seed=2))
    logits, labels = _validated(model, epoch_batches=4)
    logged = fit.callback_metrics
    assert math.isclose(float(logged["val/perplexity"]), reference.perplexity(logits, labels), rel_tol=RTOL)
    assert math.isclose(float(logged["val/cross_entropy"]), reference.cross_entropy(logits, labels), rel_tol=RTOL)
    assert math.isclose(float(logged["val/acc"]), reference.token_accuracy(logits, labels), rel_tol=RTOL)
    assert len(model.validated) == 8  # two epochs of four batches: the sanity batches were not counted
    assert "val/perplexity" in fit.progress_bar_metrics


def test_torchmetrics_metrics_and_input_functions():
    """A torchmetrics metric fed by name (``preds``, ``target``) and one fed by a function of the outputs."""

    def shifted(outputs, batch):
        return outputs["logits"][:, :-1].reshape(-1, VOCAB), outputs["labels"][:, 1:].reshape(-1)

    model = BigramLM()
    callback = ValidationMetrics(
        {"accuracy": MulticlassAccuracy(VOCAB, average="micro"), "loss": MeanMetric()},
        prefix="valid_",
        inputs={"accuracy": shifted, "loss": lambda outputs, batch: {"value": outputs["loss"]}},
    )
    fit = trainer(callbacks=[callback])
    fit.validate(model, token_loader())
    logits, labels = _validated(model, epoch_batches=4)
    assert math.isclose(float(fit.callback_metrics["valid_accuracy"]), reference.token_accuracy(logits, labels), rel_tol=RTOL)
    losses = [model._loss(lg, lb) for lg, lb in model.validated]
    assert math.isclose(float(fit.callback_metrics["valid_loss"]), float(torch.stack(losses).mean()), rel_tol=RTOL)


def test_missing_inputs_are_a_clear_error():
    callback = ValidationMetrics({"accuracy": MulticlassAccuracy(VOCAB)})
    with pytest.raises(ValueError, match=r"hold \['preds', 'target'\] for metric 'accuracy'.*inputs=\{'accuracy'"):
        trainer(callbacks=[callback]).validate(BigramLM(), token_loader())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {}}, "`metrics`"),
        ({"metrics": {"ppl": torch.nn.Linear(1, 1)}}, "`metrics`"),
        ({"metrics": {"ppl": CausalLMPerplexity()}, "inputs": {"other": print}}, "`inputs`"),
        ({"metrics": {"ppl": CausalLMPerplexity()}, "prefix": 3}, "`prefix`"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ValidationMetrics(**kwargs)


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed"])
def test_low_precision_gives_the_float64_value_of_the_logits(precision):
    model = BigramLM()
    metric = CausalLMPerplexity()
    fit = trainer(precision=precision, callbacks=[ValidationMetrics({"perplexity": metric})])
    fit.validate(model, token_loader())
    logits, labels = _validated(model, epoch_batches=4)
    assert logits.dtype == (torch.bfloat16 if precision == "bf16-true" else torch.float32)
    assert metric.nll_sum.dtype == torch.float64 and metric.count.dtype == torch.int64
    assert math.isclose(float(fit.callback_metrics["val/perplexity"]), reference.perplexity(logits, labels), rel_tol=RTOL)


class _RealAndFake(Metric):
    """Keeps the sum of its real inputs across resets, as FID keeps its real features with reset_real_features=False."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.reset_real_features = False
        self.real_calls = 0
        self.add_state("real_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("fake_sum", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, values, real: bool) -> None:
        if real:
            self.real_calls += 1
            self.real_sum += values.sum()
        else:
            self.fake_sum += values.sum()

    def compute(self):
        return self.fake_sum - self.real_sum

    def reset(self) -> None:
        real_sum = self.real_sum
        super().reset()
        self.real_sum = real_sum


@pytest.mark.parametrize("positional", [False, True])
def test_reference_statistics_are_computed_once(positional):
    metric = _RealAndFake()

    def both(outputs, batch):
        if positional:  # update(values, real) by position, real as a tensor
            return [(batch[0].float(), torch.tensor(True)), (outputs["logits"].float(), torch.tensor(False))]
        return [{"values": batch[0].float(), "real": True}, {"values": outputs["logits"].float(), "real": False}]

    model = BigramLM()
    fit = trainer(max_epochs=3, callbacks=[ValidationMetrics({"gap": metric}, inputs={"gap": both})])
    fit.fit(model, token_loader(seed=1), token_loader(seed=2))
    fit.validate(model, token_loader(seed=2))  # a validation outside fit does not count as the reference epoch
    assert metric.real_calls == 4  # the four batches of the first epoch, not of every epoch
    logits, labels = _validated(model, epoch_batches=4)
    expected = float(logits.float().sum() - labels.float().sum())  # real_sum kept from the first epoch
    assert math.isclose(float(fit.callback_metrics["val/gap"]), expected, rel_tol=1e-5)


def _ddp_fit(tmp_path):
    model = BigramLM()
    callbacks = [ValidationMetrics({"perplexity": CausalLMPerplexity(), "acc": CausalLMTokenAccuracy()})]
    callbacks.append(LeaveProcessGroup())
    fit = trainer(devices=2, strategy="ddp_spawn", max_epochs=1, callbacks=callbacks, default_root_dir=tmp_path)
    fit.fit(model, token_loader(seed=1), token_loader(seed=2))
    return fit, model


def test_two_processes_log_the_value_of_one(tmp_path):
    """Each rank validates half of the batches; the logged value is that of all of them."""
    fit, model = _ddp_fit(tmp_path)
    logged = {name: float(value) for name, value in fit.callback_metrics.items() if name.startswith("val/")}
    # the same training on one process, then the direct computation over all the validation data
    single = BigramLM()
    single.load_state_dict(model.state_dict())
    logits = single(torch.cat([batch[0] for batch in token_loader(seed=2)]))
    labels = torch.cat([batch[0] for batch in token_loader(seed=2)])
    assert math.isclose(logged["val/perplexity"], reference.perplexity(logits, labels), rel_tol=RTOL)
    assert math.isclose(logged["val/acc"], reference.token_accuracy(logits, labels), rel_tol=RTOL)


def test_a_metric_with_several_values_is_a_clear_error():
    callback = ValidationMetrics(
        {"accuracy": MulticlassAccuracy(VOCAB, average=None)},
        inputs={"accuracy": lambda out, batch: (out["logits"][:, :-1].reshape(-1, VOCAB), out["labels"][:, 1:].reshape(-1))},
    )
    with pytest.raises(ValueError, match="metric 'val/accuracy' to compute a single value"):
        trainer(callbacks=[callback]).validate(BigramLM(), token_loader())


def test_a_kernel_distance_logs_its_mean_and_std():
    from tests.video.common import pool_extractor
    from torchmetrics_ext.video import KernelVideoDistance

    def videos(tokens: torch.Tensor) -> torch.Tensor:  # [B, 12] -> [B, 12, 3, 4, 4] in [0, 1]
        return (tokens.float() / VOCAB)[:, :, None, None, None].expand(-1, -1, 3, 4, 4)

    def both(outputs, batch):
        fake = videos(outputs["logits"].argmax(dim=-1))
        return [{"videos": videos(batch[0]), "real": True}, {"videos": fake, "real": False}]

    kvd = KernelVideoDistance(feature_extractor=pool_extractor(), subsets=1, subset_size=16)
    model = BigramLM()
    fit = trainer(callbacks=[ValidationMetrics({"kvd": kvd}, inputs={"kvd": both})])
    fit.validate(model, token_loader(seed=2))
    expected = KernelVideoDistance(feature_extractor=pool_extractor(), subsets=1, subset_size=16)
    for (logits, labels), (tokens,) in zip(model.validated, token_loader(seed=2)):
        expected.update(videos(tokens), real=True)
        expected.update(videos(logits.argmax(dim=-1)), real=False)
    mean, std = expected.compute()
    assert math.isclose(float(fit.callback_metrics["val/kvd"]), float(mean), rel_tol=1e-6, abs_tol=1e-12)
    assert float(fit.callback_metrics["val/kvd_std"]) == float(std) == 0.0


def test_metrics_that_agree_on_the_first_batch_are_not_merged():
    from torch import nn

    from torchmetrics_ext.video import TemporalConsistency

    encoder = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
    lm = ValidationMetrics({"perplexity": CausalLMPerplexity(), "cross_entropy": CausalLMCrossEntropy()})
    assert list(lm.metrics.compute_groups.values()) == [["perplexity", "cross_entropy"]]  # shared by design
    callback = ValidationMetrics(
        {name: TemporalConsistency(encoder=encoder, reference=name) for name in ("adjacent", "first")}, prefix=""
    )
    static = torch.full((2, 4, 3, 8, 8), 0.5)  # both references give exactly 1: torchmetrics would merge them
    moving = torch.rand(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = {name: TemporalConsistency(encoder=encoder, reference=name) for name in ("adjacent", "first")}
    for videos in (static, moving):
        callback.metrics.update(videos=videos)
        for metric in expected.values():
            metric.update(videos)
    values = callback.metrics.compute()
    assert values["adjacent"] == expected["adjacent"].compute() != expected["first"].compute() == values["first"]

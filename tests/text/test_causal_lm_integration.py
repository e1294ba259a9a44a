"""The causal-LM metrics inside torchmetrics and Lightning: collections, plots, casts, DDP, memory."""

import math

import lightning as L
import pytest
import torch
from torchmetrics import MetricCollection

from tests.helpers import reference
from tests.helpers.ddp import run_distributed
from tests.helpers.reference import random_batch
from tests.text.cases import CLASSES, RTOL
from torchmetrics_ext.functional.text import _causal_lm
from torchmetrics_ext.text import CausalLMCrossEntropy, CausalLMPerplexity, CausalLMTokenAccuracy


def _collection() -> MetricCollection:
    return MetricCollection(
        {"ppl": CausalLMPerplexity(), "ce": CausalLMCrossEntropy(), "acc": CausalLMTokenAccuracy(top_k=2)}
    )


def _expected(logits, labels, **kwargs) -> dict:
    return {
        "ppl": reference.perplexity(logits, labels, **kwargs),
        "ce": reference.cross_entropy(logits, labels, **kwargs),
        "acc": reference.token_accuracy(logits, labels, top_k=2, **kwargs),
    }


def _assert_values(values: dict, expected: dict) -> None:
    for name, value in expected.items():
        assert math.isclose(float(values[name]), value, rel_tol=RTOL), (name, float(values[name]), value)


def test_collection_shares_the_nll_states_and_matches_the_references():
    collection = _collection()
    batches = [random_batch(seed=seed, dtype=torch.bfloat16) for seed in range(3)]
    for logits, labels, _ in batches:
        collection.update(logits, labels)
    assert sorted(map(sorted, collection.compute_groups.values())) == [["acc"], ["ce", "ppl"]]
    logits = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    _assert_values(collection.compute(), _expected(logits, labels))


def test_forward_returns_the_batch_value_and_accumulates():
    metric = CausalLMPerplexity()
    first, second = random_batch(seed=1), random_batch(seed=2)
    batch_value = metric(first[0], first[1])
    assert math.isclose(float(batch_value), reference.perplexity(first[0], first[1]), rel_tol=RTOL)
    metric(second[0], second[1])
    both = reference.perplexity(torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]]))
    assert math.isclose(float(metric.compute()), both, rel_tol=RTOL)


@pytest.mark.parametrize("metric_class", CLASSES)
def test_plot(metric_class):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    metric = metric_class()
    values = []
    for seed in range(3):
        logits, labels, _ = random_batch(seed=seed)
        values.append(metric(logits, labels))
    fig, ax = metric.plot(values)
    assert fig is not None and ax is not None
    fig, ax = metric.plot()
    assert fig is not None


@pytest.mark.parametrize("metric_class", CLASSES)
@pytest.mark.parametrize(
    "cast",
    [
        lambda m: m.to(torch.bfloat16),
        lambda m: m.to(dtype=torch.float16),
        lambda m: m.half(),
        lambda m: m.bfloat16(),
        lambda m: m.set_dtype(torch.bfloat16),
        lambda m: m.type(torch.float16),
    ],
    ids=["to-bf16", "to-fp16", "half", "bfloat16", "set_dtype", "type"],
)
def test_states_keep_their_dtype_under_casts(metric_class, cast):
    logits, labels, _ = random_batch(vocab_size=2000, seq_len=40, scale=6.0)
    metric = metric_class()
    metric.update(logits, labels)
    expected = float(metric.compute())
    metric = cast(metric)
    cached = metric.compute()  # the result cached before the cast is not rounded by it
    assert cached.dtype == torch.float32 and float(cached) == expected
    for name, default in metric._defaults.items():
        assert getattr(metric, name).dtype == default.dtype
        assert default.dtype in (torch.float64, torch.int64), name
    metric.update(logits, labels)  # the value of twice the same batch is the value of the batch
    assert float(metric.compute()) == pytest.approx(expected, rel=RTOL)
    metric.reset()
    assert {metric._defaults[name].dtype for name in metric._defaults} <= {torch.float64, torch.int64}


class _TinyLM(L.LightningModule):
    """Embedding + linear head; records the logits it validates so the test can compute the reference."""

    def __init__(self, vocab_size: int = 300) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 16)
        self.head = torch.nn.Linear(16, vocab_size)
        self.val_ppl = CausalLMPerplexity()
        self.seen = []

    def forward(self, input_ids):
        return 30 * self.head(self.embed(input_ids))  # wide logits: bf16 rounding shows in a bf16 softmax

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0])
        self.seen.append((logits.detach().clone(), batch[0]))
        self.val_ppl.update(logits, batch[0])
        self.log("val_ppl", self.val_ppl)


def test_lightning_bf16_true_precision_keeps_float64_states():
    """The case torchmetrics.text.Perplexity gets wrong: its states become bfloat16 under "bf16-true"."""
    torch.manual_seed(0)
    model = _TinyLM()
    data = torch.utils.data.TensorDataset(torch.randint(300, (32, 24)))
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-true", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (logged,) = trainer.validate(model, torch.utils.data.DataLoader(data, batch_size=8), verbose=False)
    assert model.head.weight.dtype == torch.bfloat16
    assert model.val_ppl.nll_sum.dtype == torch.float64 and model.val_ppl.count.dtype == torch.int64
    logits = torch.cat([seen[0] for seen in model.seen])
    labels = torch.cat([seen[1] for seen in model.seen])
    assert logits.dtype == torch.bfloat16
    assert math.isclose(logged["val_ppl"], reference.perplexity(logits, labels), rel_tol=RTOL)


def _ddp_collection_values(rank: int, world_size: int, batches: list) -> dict:
    collection = _collection()
    for logits, labels, mask in batches[rank::world_size]:
        collection.update(logits, labels, attention_mask=mask)
    return {name: value.item() for name, value in collection.compute().items()}


def test_two_processes_give_the_single_process_value():
    """Ranks see batches with different token counts; the synced value is the value over all tokens."""
    batches = [random_batch(seed=seed, batch_size=1 + seed, dtype=torch.bfloat16) for seed in range(5)]
    single = _collection()
    for logits, labels, mask in batches:
        single.update(logits, labels, attention_mask=mask)
    expected = {name: value.item() for name, value in single.compute().items()}
    for values in run_distributed(_ddp_collection_values, batches):
        assert values == pytest.approx(expected, rel=1e-12)
    logits = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    _assert_values(expected, _expected(logits, labels))


@pytest.mark.parametrize("metric_class", CLASSES)
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_logits_are_read_a_chunk_at_a_time_and_left_untouched(metric_class, chunk_size, monkeypatch):
    """The extra memory of an update is bounded by one chunk: no read takes more rows than a chunk holds."""
    logits, labels, _ = random_batch(batch_size=4, seq_len=64, vocab_size=40000, dtype=torch.bfloat16)
    original = logits.clone()
    read_sizes = []
    read_rows = _causal_lm._read_rows

    def spy(source, rows, span, buffer, writable=False):
        assert source.data_ptr() == logits.data_ptr()  # the logits themselves, not a shifted copy
        assert buffer.shape[0] <= limit
        read_sizes.append(len(rows))
        return read_rows(source, rows, span, buffer, writable)

    limit = chunk_size or _causal_lm._default_chunk_size(40000, logits.device)
    monkeypatch.setattr(_causal_lm, "_read_rows", spy)
    metric_class(chunk_size=chunk_size).update(logits, labels)
    assert read_sizes and max(read_sizes) <= limit
    assert torch.equal(logits, original)

"""Values of the three causal-LM metrics against float64 references, in every dtype and input form."""

import math

import pytest
import torch

from tests.helpers import reference
from tests.helpers.reference import random_batch
from tests.text.cases import METRICS, RTOL

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _assert_close(value: torch.Tensor, expected: float) -> None:
    assert value.dtype == torch.float32
    assert math.isclose(float(value), expected, rel_tol=RTOL), (float(value), expected)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("shift", [True, False])
def test_class_and_function_match_reference(metric_class, metric_fn, reference_fn, dtype, use_mask, shift):
    logits, labels, mask = random_batch(batch_size=4, dtype=dtype)
    if use_mask:  # padding told by the mask alone: the labels there are real token ids
        labels = labels.clamp(min=0)
        kwargs = {"attention_mask": mask}
    else:
        kwargs = {}
    expected = reference_fn(logits, labels, shift=shift, **kwargs)

    _assert_close(metric_fn(logits, labels, shift=shift, **kwargs), expected)
    metric = metric_class(shift=shift)
    for rows in (slice(0, 1), slice(1, 4)):  # token-weighted over updates of unequal size
        metric.update(logits[rows], labels[rows], **{k: v[rows] for k, v in kwargs.items()})
    _assert_close(metric.compute(), expected)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunk_size_does_not_change_the_value(metric_class, metric_fn, reference_fn, chunk_size):
    logits, labels, _ = random_batch(dtype=torch.bfloat16)
    _assert_close(metric_fn(logits, labels, chunk_size=chunk_size), reference_fn(logits, labels))


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_logits_with_any_strides(metric_class, metric_fn, reference_fn):
    """Batch-major views that cannot be flattened, and a vocabulary dimension that is not contiguous."""
    logits, labels, _ = random_batch()
    time_major = logits.transpose(0, 1).contiguous().transpose(0, 1)
    vocab_strided = logits.transpose(1, 2).contiguous().transpose(1, 2)
    expected = reference_fn(logits, labels)
    for view in (time_major, vocab_strided):
        assert not view.is_contiguous()
        _assert_close(metric_fn(view, labels), expected)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_vocabulary_in_low_precision(metric_class, metric_fn, reference_fn, dtype):
    """32k-token vocabulary with wide logits: where a softmax in the logits' dtype loses digits."""
    logits, labels, _ = random_batch(batch_size=2, seq_len=40, vocab_size=32000, dtype=dtype, scale=8.0)
    _assert_close(metric_fn(logits, labels), reference_fn(logits, labels))


@pytest.mark.parametrize("dtype", DTYPES)
def test_confidently_wrong_token_stays_finite(dtype):
    """A margin of 120 against the target underflows a float32 softmax to 0 and its log to -inf."""
    from torchmetrics_ext.functional.text import causal_lm_perplexity

    logits = torch.zeros(1, 8, 100)
    labels = torch.arange(8).unsqueeze(0)
    logits[0, 2, 50] = 120.0  # the target of position 2 is token 3
    logits = logits.to(dtype)
    value = causal_lm_perplexity(logits, labels)
    assert torch.isfinite(value)
    _assert_close(value, reference.perplexity(logits, labels))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [8.0, 20.0, 40.0])
def test_confident_right_predictions_keep_their_relative_precision(dtype, margin):
    """Mean NLL of 1e-4 to 1e-16 nats: the relative error stays within 1e-5 where float32 rounding alone fails."""
    from torchmetrics_ext.functional.text import causal_lm_cross_entropy

    logits, labels, _ = random_batch(batch_size=2, seq_len=12, vocab_size=64, scale=1.0, pad=False)
    logits.scatter_add_(2, labels.roll(-1, dims=1).unsqueeze(2), torch.full((2, 12, 1), margin))
    logits = logits.to(dtype)
    _assert_close(causal_lm_cross_entropy(logits, labels), reference.cross_entropy(logits, labels))


@pytest.mark.parametrize("dtype", DTYPES)
def test_perplexity_is_exp_of_the_hugging_face_loss(dtype):
    from torchmetrics_ext.text import CausalLMPerplexity

    logits, labels, _ = random_batch(batch_size=4, seq_len=33, vocab_size=300, dtype=dtype)
    metric = CausalLMPerplexity()
    metric.update(logits, labels)
    _assert_close(metric.compute(), math.exp(reference.hugging_face_loss(logits, labels)))


@pytest.mark.parametrize("ignore_index", [None, -100, 3])
def test_perplexity_is_a_drop_in_for_torchmetrics_perplexity(ignore_index):
    """``shift=False`` on aligned inputs gives torchmetrics' values (on float32 logits, where torchmetrics is exact)."""
    from torchmetrics.text import Perplexity

    from torchmetrics_ext.text import CausalLMPerplexity

    theirs, ours = Perplexity(ignore_index=ignore_index), CausalLMPerplexity(ignore_index=ignore_index, shift=False)
    for seed in range(3):
        preds = torch.rand(2, 8, 5, generator=torch.Generator().manual_seed(seed))
        target = torch.randint(5, (2, 8), generator=torch.Generator().manual_seed(seed + 10))
        if ignore_index is not None:
            target[0, 6:] = ignore_index
        torch.testing.assert_close(ours(preds, target), theirs(preds, target), rtol=RTOL, atol=0)
    torch.testing.assert_close(ours.compute(), theirs.compute(), rtol=RTOL, atol=0)


def test_shift_inside_equals_torchmetrics_on_shifted_inputs():
    from torchmetrics.text import Perplexity

    from torchmetrics_ext.text import CausalLMPerplexity

    logits, labels, _ = random_batch(vocab_size=20, scale=1.0)
    theirs = Perplexity(ignore_index=-100)(logits[:, :-1], labels[:, 1:])
    torch.testing.assert_close(CausalLMPerplexity()(logits, labels), theirs, rtol=RTOL, atol=0)


@pytest.mark.parametrize("top_k", [2, 5])
def test_top_k_accuracy_matches_torchmetrics_multiclass_accuracy(top_k):
    from torchmetrics.classification import MulticlassAccuracy

    from torchmetrics_ext.functional.text import causal_lm_token_accuracy

    logits, labels, _ = random_batch(batch_size=4, seq_len=30, vocab_size=12, pad=False)  # float32: no ties
    theirs = MulticlassAccuracy(num_classes=12, top_k=top_k, average="micro")(
        logits[:, :-1].reshape(-1, 12), labels[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(causal_lm_token_accuracy(logits, labels, top_k=top_k), theirs)


def test_tied_logits_rank_the_lower_token_id_first():
    """Constant logits predict token 0, as ``argmax`` does: they must not score every target as correct."""
    from torchmetrics_ext.functional.text import causal_lm_token_accuracy

    logits = torch.zeros(1, 5, 4)
    labels = torch.tensor([[0, 0, 1, 2, 3]])  # targets 0, 1, 2, 3
    assert float(causal_lm_token_accuracy(logits, labels)) == 0.25
    assert float(causal_lm_token_accuracy(logits, labels, top_k=3)) == 0.75


def test_long_vocabulary_sums_do_not_drift():
    """Over 256k logits a single float32 log-softmax drifts by about 1e-5 nats; the blocked sums stay near 1e-8.

    Tighter than the package's stated 1e-5, so that losing the blocking fails here rather than at 512k tokens.
    """
    from torchmetrics_ext.functional.text.cross_entropy import _causal_lm_nll_update

    logits, labels, _ = random_batch(batch_size=1, seq_len=48, vocab_size=256000, scale=3.0, pad=False)
    logits = logits.to(torch.bfloat16)
    nll_sum, count = _causal_lm_nll_update(logits, labels, None, -100, True, None, "error")  # float64, unrounded
    assert abs(float(nll_sum) / int(count) - reference.cross_entropy(logits, labels)) < 1e-6


@pytest.mark.parametrize("top_k", [2, 3, 7])
def test_top_k_with_many_ties_matches_a_stable_sort(top_k):
    """Logits of five distinct values tie at the k-th place all the time: the lower token id must rank first."""
    from torchmetrics_ext.functional.text import causal_lm_token_accuracy

    logits, labels, _ = random_batch(batch_size=3, seq_len=40, vocab_size=12, pad=False)
    logits = logits.round().clamp(-2, 2).to(torch.bfloat16)
    expected = reference.token_accuracy(logits, labels, top_k=top_k)
    assert float(causal_lm_token_accuracy(logits, labels, top_k=top_k)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("chunk_size", [3, None])
def test_confident_tokens_of_a_padded_multi_block_vocabulary(chunk_size):
    """40001 logits make two blocks and one padding column; more confident tokens than a chunk holds reuse it."""
    from torchmetrics_ext.functional.text import causal_lm_cross_entropy
    from torchmetrics_ext.functional.text._causal_lm import _vocabulary_blocks

    assert _vocabulary_blocks(40001) == (2, 20001)
    logits, labels, _ = random_batch(batch_size=2, seq_len=12, vocab_size=40001, scale=1.0, pad=False)
    logits.scatter_add_(2, labels.roll(-1, dims=1).unsqueeze(2), torch.full((2, 12, 1), 16.0))
    assert reference.cross_entropy(logits, labels) < 0.0625  # every token takes the log1p path
    _assert_close(causal_lm_cross_entropy(logits, labels, chunk_size=chunk_size), reference.cross_entropy(logits, labels))

"""Bad input to the causal-LM metrics: a ValueError that names the argument, and nothing accumulated."""

import math

import pytest
import torch

from tests.helpers import reference
from tests.helpers.reference import random_batch
from tests.text.cases import CLASSES, METRICS, RTOL

V = 50


def _good():
    return random_batch(batch_size=2, seq_len=6, vocab_size=V)


def _bad_inputs():
    logits, labels, mask = _good()
    out_of_range, negative = labels.clone(), labels.clone()
    out_of_range[0, 3], negative[1, 1] = V, -1
    first_out_of_range = labels.clone()
    first_out_of_range[0, 0] = V  # never a target with shift=True, still not a token id
    masked = mask.clone()
    masked[0, 3] = 0
    two_valued_mask = mask.clone()
    two_valued_mask[0, 0] = 2
    return [
        pytest.param((logits[0], labels), {}, "`logits`", id="logits-2d"),
        pytest.param((logits.long(), labels), {}, "`logits`", id="logits-integer"),
        pytest.param((logits.numpy(), labels), {}, "`logits`", id="logits-not-a-tensor"),
        pytest.param((logits, labels[0]), {}, "`labels`", id="labels-1d"),
        pytest.param((logits, labels.float()), {}, "`labels`", id="labels-float"),
        pytest.param((logits, labels.bool()), {}, "`labels`", id="labels-bool"),
        pytest.param((logits[:1], labels), {}, "[batch_size, seq_len]", id="batch-mismatch"),
        pytest.param((logits[:, :5], labels), {}, "[batch_size, seq_len]", id="seq-len-mismatch"),
        pytest.param((logits, labels.to("meta")), {}, "one device", id="labels-other-device"),
        pytest.param((logits, out_of_range), {}, f"[0, {V})", id="label-equal-to-vocab-size"),
        pytest.param((logits, negative), {}, "but got -1", id="label-negative"),
        pytest.param((logits, first_out_of_range), {}, f"[0, {V})", id="label-out-of-range-before-the-shift"),
        pytest.param((logits, out_of_range, masked), {}, f"[0, {V})", id="label-out-of-range-under-the-mask"),
        pytest.param((logits, labels, mask[:, 1:]), {}, "`attention_mask`", id="mask-shape"),
        pytest.param((logits, labels, mask.float()), {}, "`attention_mask`", id="mask-float"),
        pytest.param((logits, labels, two_valued_mask), {}, "only 0 and 1", id="mask-value-2"),
        pytest.param((logits[:, :1], labels[:, :1]), {}, "seq_len >= 2", id="one-token-with-shift"),
    ]


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
@pytest.mark.parametrize(("args", "kwargs", "message"), _bad_inputs())
def test_bad_input_raises_and_accumulates_nothing(metric_class, metric_fn, reference_fn, args, kwargs, message):
    logits, labels, _ = _good()
    metric = metric_class(**kwargs)
    metric.update(logits, labels)
    before = {name: getattr(metric, name).clone() for name in metric._defaults}
    with pytest.raises(ValueError, match="expected") as error:
        metric.update(*args)
    assert message in str(error.value)
    for name, value in before.items():
        assert torch.equal(getattr(metric, name), value), name
    with pytest.raises(ValueError, match="expected"):
        metric(*args)  # forward resets the states before its update: they must come back
    for name, value in before.items():
        assert torch.equal(getattr(metric, name), value), name
    assert metric._update_count == 1
    with pytest.raises(ValueError, match="expected"):
        metric_fn(*args, **kwargs)
    assert math.isclose(float(metric.compute()), reference_fn(logits, labels), rel_tol=RTOL)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_minus_100_without_ignore_index_is_an_error_with_a_hint(metric_class, metric_fn, reference_fn):
    logits, labels, _ = random_batch(vocab_size=V)  # padded with -100
    with pytest.raises(ValueError, match="ignore_index=-100"):
        metric_class(ignore_index=None).update(logits, labels)


@pytest.mark.parametrize("metric_class", CLASSES)
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ignore_index": "pad"}, "`ignore_index`"),
        ({"ignore_index": True}, "`ignore_index`"),
        ({"shift": 1}, "`shift`"),
        ({"chunk_size": 0}, "`chunk_size`"),
        ({"chunk_size": 2.5}, "`chunk_size`"),
        ({"non_finite": "warn"}, "`non_finite`"),
    ],
)
def test_bad_constructor_arguments(metric_class, kwargs, name):
    with pytest.raises(ValueError, match=name):
        metric_class(**kwargs)


def test_bad_top_k():
    from torchmetrics_ext.functional.text import causal_lm_token_accuracy
    from torchmetrics_ext.text import CausalLMTokenAccuracy

    for top_k in (0, 1.5, True):
        with pytest.raises(ValueError, match="`top_k`"):
            CausalLMTokenAccuracy(top_k=top_k)
    logits, labels, _ = _good()
    with pytest.raises(ValueError, match=f"at most vocab_size {V}"):
        causal_lm_token_accuracy(logits, labels, top_k=V + 1)


def _with_non_finite(value: float, at_target: bool):
    logits, labels, _ = random_batch(batch_size=2, seq_len=8, vocab_size=V, pad=False)
    target = int(labels[0, 4])
    logits[0, 3, target if at_target else (target + 1) % V] = value
    return logits, labels


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
@pytest.mark.parametrize(
    ("value", "at_target"),
    [(float("nan"), False), (float("inf"), False), (float("nan"), True), (float("inf"), True), (float("-inf"), True)],
)
def test_non_finite_logits_raise_or_are_skipped(metric_class, metric_fn, reference_fn, value, at_target):
    logits, labels = _with_non_finite(value, at_target)
    metric = metric_class()
    with pytest.raises(ValueError, match="non_finite='skip'"):
        metric.update(logits, labels)
    assert int(metric.count) == 0

    skipping = metric_class(non_finite="skip")
    skipping.update(logits, labels)
    mask = torch.ones_like(labels)
    mask[0, 4] = 0  # the reference leaves out the one target whose logits are not finite
    assert int(skipping.count) == 2 * 7 - 1
    assert math.isclose(float(skipping.compute()), reference_fn(logits, labels, attention_mask=mask), rel_tol=RTOL)
    assert math.isclose(
        float(metric_fn(logits, labels, non_finite="skip")),
        reference_fn(logits, labels, attention_mask=mask),
        rel_tol=RTOL,
    )


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_minus_inf_away_from_the_target_is_a_probability_of_zero(metric_class, metric_fn, reference_fn):
    """Logits processors rule tokens out with -inf: that is a valid distribution, not an error."""
    logits, labels = _with_non_finite(float("-inf"), at_target=False)
    assert math.isclose(float(metric_fn(logits, labels)), reference_fn(logits, labels), rel_tol=RTOL)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_nothing_counted_warns_and_gives_nan(metric_class, metric_fn, reference_fn):
    logits, labels, _ = _good()
    labels.fill_(-100)
    metric = metric_class()
    metric.update(logits, labels)
    with pytest.warns(UserWarning, match="No target token was counted"):
        assert math.isnan(float(metric.compute()))
    with pytest.warns(UserWarning, match="No target token was counted"):
        assert math.isnan(float(metric_fn(logits, labels)))
    with pytest.warns(UserWarning):  # torchmetrics' own "compute before update" warning comes along
        assert math.isnan(float(metric_class().compute()))


def test_references_agree_on_the_fixture():
    """The two float64 references used above agree with each other where both apply."""
    logits, labels, _ = random_batch(vocab_size=V)
    assert math.isclose(reference.cross_entropy(logits, labels), reference.hugging_face_loss(logits, labels), rel_tol=1e-12)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_a_ruled_out_range_wider_than_a_block(metric_class, metric_fn, reference_fn):
    """Tokens 0..24999 at -inf: the first float32 block of the log-softmax (20000 wide) holds nothing but -inf."""
    from torchmetrics_ext.functional.text._causal_lm import _vocabulary_blocks

    assert _vocabulary_blocks(40000) == (2, 20000)
    logits, labels, _ = random_batch(batch_size=2, seq_len=8, vocab_size=40000, pad=False)
    logits[..., :25000] = float("-inf")
    labels = labels.clamp(min=25000)
    assert math.isclose(float(metric_fn(logits, labels)), reference_fn(logits, labels), rel_tol=RTOL)


@pytest.mark.parametrize(("metric_class", "metric_fn", "reference_fn"), METRICS)
def test_nan_in_a_later_vocabulary_block_is_caught(metric_class, metric_fn, reference_fn):
    logits, labels, _ = random_batch(batch_size=1, seq_len=6, vocab_size=40000, pad=False)
    logits[0, 2, 39000] = float("nan")  # second block of a two-block row
    with pytest.raises(ValueError, match="1 of 5 target tokens"):
        metric_fn(logits, labels)
    mask = torch.ones_like(labels)
    mask[0, 3] = 0
    assert math.isclose(
        float(metric_fn(logits, labels, non_finite="skip")), reference_fn(logits, labels, attention_mask=mask), rel_tol=RTOL
    )

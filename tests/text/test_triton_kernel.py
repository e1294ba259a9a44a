"""The Triton kernel of the causal-LM metrics, run on CPU tensors by Triton's interpreter, and compiled on CUDA.

``TRITON_INTERPRET=1`` must be set before Triton is imported, so the checks run in one subprocess (the interpreter
is slow: tiny sizes) that prints its measurements as JSON; the tests below assert on them. Where a GPU is present
the same checks also run compiled, on CUDA tensors (``CHECK_DEVICE=cuda``, no interpreter).
"""

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

MODES = ["interpreter", *(["cuda"] if torch.cuda.is_available() else [])]

_CHECKS = r"""
import json
import os
import torch
from torchmetrics_ext.functional.text import _causal_lm
from torchmetrics_ext.functional.text._triton_kernel import _triton_available, _triton_row_statistics

torch.manual_seed(0)
DEVICE = os.environ.get("CHECK_DEVICE", "cpu")
out = {"available": _triton_available(torch.zeros(1, device=DEVICE))}


def reference(logits, rows, targets):
    x = logits.reshape(-1, logits.shape[-1])[rows].double()
    nll = -torch.log_softmax(x, 1).gather(1, targets[:, None]).squeeze(1)
    x_y = x.gather(1, targets[:, None])
    lower = torch.arange(x.shape[1]) < targets[:, None]
    rank = (x > x_y).sum(1) + ((x == x_y) & lower).sum(1)  # ties to the lower token id, as argmax
    return nll, rank


def compare(name, logits, rows, targets, block_v=0):
    nll, rank = _triton_row_statistics(logits.to(DEVICE), rows.to(DEVICE), targets.to(DEVICE), block_v=block_v)
    nll, rank = nll.cpu(), rank.cpu()
    ref_nll, ref_rank = reference(logits, rows, targets)
    out[name] = {
        "dtypes": [str(nll.dtype), str(rank.dtype)],
        "mean_rel": abs(nll.double().mean().item() - ref_nll.mean().item()) / ref_nll.mean().item(),
        "row_rel": ((nll.double() - ref_nll).abs() / ref_nll).max().item(),
        "ranks_equal": bool((rank.long() == ref_rank).all()),
        "ranks": ref_rank.tolist(),
    }


rows = torch.tensor([0, 1, 4, 5, 6, 9, 10, 13, 14, 15], dtype=torch.long)
for vocab, block_v in [(1000, 0), (3000, 1024)]:  # 3000: three 1024-wide chunks, the last one partial
    for dtype in ["float32", "float16", "bfloat16"]:
        # distinct logits in each row, no ties: random fp16/bf16 values would tie, so draw each row without
        # replacement from every value of the dtype in [-6, 6] (from a 4e-4-step ramp for float32)
        if dtype == "float32":
            values = torch.arange(-6.0, 6.0, 4e-4, dtype=torch.float32)
        else:
            values = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(getattr(torch, dtype))
            values = values[torch.isfinite(values) & (values.abs() <= 6)].unique()
        logits = torch.stack([values[torch.randperm(len(values))[:vocab]] for _ in range(2 * 8)]).view(2, 8, vocab)
        assert all(len(row.unique()) == vocab for row in logits.view(-1, vocab))
        targets = torch.randint(0, vocab, (len(rows),))
        compare(f"{dtype}-{vocab}", logits, rows, targets, block_v)

# strided logits ([T, B, V] transposed) and rows selected as by the label shift
logits = torch.randn(8, 2, 1000).transpose(0, 1)
compare("strided", logits, rows, torch.randint(0, 1000, (len(rows),)))

# the one documented tie case: rows of equal logits, the rank counts the lower token ids first
tied = torch.zeros(4, 300)
tied[1, 100:200] = 1.0
compare("ties", tied, torch.arange(4), torch.tensor([0, 150, 299, 7]), block_v=128)

# confident right tokens: NLL near 1e-7, kept to its relative precision
confident = torch.zeros(3, 1000)
confident[:, 5] = torch.tensor([20.0, 22.0, 24.0])
compare("confident", confident, torch.arange(3), torch.tensor([5, 5, 5]), block_v=256)

# non-finite rows: NaN, +inf, target -inf, -inf elsewhere
bad = torch.randn(4, 500)
bad[0, 3], bad[1, 400], bad[2, 9], bad[3, 100] = float("nan"), float("inf"), float("-inf"), float("-inf")
bad_targets = torch.tensor([1, 2, 9, 50])
nll, _ = _triton_row_statistics(bad.to(DEVICE), torch.arange(4, device=DEVICE), bad_targets.to(DEVICE), block_v=128)
nll = nll.cpu()
out["non_finite"] = [repr(v) for v in nll.tolist()]
out["non_finite_row3_err"] = abs(nll[3].item() - reference(bad, torch.arange(4), bad_targets)[0][3].item())

# the hook: the metrics through the kernel (as on CUDA) equal the chunked PyTorch core
logits = (torch.randn(2, 9, 777, dtype=torch.bfloat16) * 4).to(DEVICE)
labels = torch.randint(0, 777, (2, 9)).to(DEVICE)
labels[0, 3] = -100
mask = torch.ones(2, 9, dtype=torch.long, device=DEVICE)
mask[1, 7:] = 0
hook = {}
use_triton = _causal_lm._use_triton
assert not use_triton(logits)  # CPU logits, and CUDA ones without TORCHMETRICS_EXT_TRITON=1, take the PyTorch core
for top_k in [1, 5]:
    for need_nll in [True, False]:
        kwargs = dict(attention_mask=mask, top_k=top_k, need_nll=need_nll)
        base = _causal_lm._causal_lm_statistics(logits, labels, **kwargs)
        _causal_lm._use_triton = lambda tensor: True  # the dispatch taken for CUDA logits
        fast = _causal_lm._causal_lm_statistics(logits, labels, **kwargs)
        _causal_lm._use_triton = use_triton
        hook[f"{top_k}-{need_nll}"] = [
            abs(fast.nll_sum.item() - base.nll_sum.item()) / max(base.nll_sum.item(), 1e-300),
            fast.correct.item() == base.correct.item(),
            fast.count.item() == base.count.item(),
        ]
skip_logits = logits.clone()
skip_logits[0, 4, 5] = float("nan")  # predicts the counted label at t=5
base = _causal_lm._causal_lm_statistics(skip_logits, labels, attention_mask=mask, non_finite="skip", top_k=1)
_causal_lm._use_triton = lambda tensor: True
skipped = _causal_lm._causal_lm_statistics(skip_logits, labels, attention_mask=mask, non_finite="skip", top_k=1)
hook["skip_same"] = [base.count.item() == skipped.count.item(), base.correct.item() == skipped.correct.item(),
                     abs(base.nll_sum.item() - skipped.nll_sum.item()) / base.nll_sum.item()]
try:
    _causal_lm._causal_lm_statistics(skip_logits, labels, non_finite="error")
    hook["raises"] = False
except ValueError:
    hook["raises"] = True
hook["skip_count"] = skipped.count.item()
out["hook"] = hook
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module", params=MODES)
def results(request):
    unset = ("TRITON_INTERPRET", "TORCHMETRICS_EXT_TRITON")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update({"TRITON_INTERPRET": "1"} if request.param == "interpreter" else {"CHECK_DEVICE": "cuda"})
    done = subprocess.run([sys.executable, "-c", _CHECKS], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_interpreter_is_available(results):
    assert results["available"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("vocab", [1000, 3000])
def test_nll_and_rank_match_float64_reference(results, dtype, vocab):
    check = results[f"{dtype}-{vocab}"]
    assert check["dtypes"] == ["torch.float32", "torch.int32"]
    assert check["mean_rel"] < 1e-5
    assert check["row_rel"] < 1e-5
    assert check["ranks_equal"]


def test_strided_logits(results):
    assert results["strided"]["row_rel"] < 1e-5
    assert results["strided"]["ranks_equal"]


def test_ties_rank_the_lower_token_id_first(results):
    check = results["ties"]
    assert check["ranks_equal"]
    assert check["ranks"] == [0, 50, 299, 7]  # row 1: 150 is tied with 100..149 above it
    assert check["row_rel"] < 1e-6


def test_confident_tokens_keep_relative_precision(results):
    assert results["confident"]["row_rel"] < 1e-6


def test_non_finite_rows(results):
    assert results["non_finite"][:3] == ["nan", "nan", "inf"]
    assert results["non_finite_row3_err"] < 1e-5  # -inf away from the target is a probability of 0


def test_dispatch_hook_matches_the_pytorch_core(results):
    hook = results["hook"]
    for key in ["1-True", "1-False", "5-True", "5-False"]:
        rel, same_correct, same_count = hook[key]
        assert rel < 1e-6 and same_correct and same_count, key
    assert hook["raises"]
    assert hook["skip_count"] == 12  # 16 targets, one ignore_index, two masked, one NaN row skipped
    same_count, same_correct, rel = hook["skip_same"]
    assert same_count and same_correct and rel < 1e-6

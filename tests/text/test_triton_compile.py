"""The Triton kernel compiled ahead of time for NVIDIA GPUs, on a machine without one.

Triton's own ``ptxas`` turns the kernel into a cubin for sm_90 (H100/H200) and sm_80 (A100) with no GPU present:
this catches what the interpreter cannot (code the compiler rejects, register spills) and checks the facts the
kernel's design rests on. The compile runs in a subprocess so that no ``TRITON_INTERPRET`` of another test leaks in.
"""

import json
import subprocess
import sys

import pytest

pytest.importorskip("triton")

_COMPILE = r"""
import json, os, re, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from torchmetrics_ext.functional.text._triton_kernel import _default_block_v, _num_warps, _row_statistics_kernel

cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
results = []
for arch, dtype, vocab in [(90, "bf16", 128256), (90, "fp16", 128256), (90, "fp32", 128256), (80, "bf16", 128256),
                           (90, "bf16", 1000)]:
    block_v = _default_block_v(vocab)
    signature = {"logits_ptr": f"*{dtype}", "rows_ptr": "*i64", "targets_ptr": "*i64", "nll_ptr": "*fp32",
                 "rank_ptr": "*i32", "seq_len": "i32", "stride_b": "i64", "stride_t": "i64", "stride_v": "i64",
                 "vocab_size": "i32", "BLOCK_V": "constexpr"}
    source = ASTSource(fn=_row_statistics_kernel, signature=signature, constexprs={"BLOCK_V": block_v})
    kernel = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": _num_warps(block_v)})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(kernel.asm["cubin"])
        cubin.flush()
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", cubin.name], capture_output=True, text=True,
                               check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|LOCAL):(\d+)", usage.split("Function _row_statistics_kernel:")[1]))
    ptx = kernel.asm["ptx"]
    results.append({"arch": arch, "dtype": dtype, "block_v": block_v, "num_warps": _num_warps(block_v),
                    **{k.lower(): int(v) for k, v in fields.items()},
                    "approx_log": "lg2.approx" in ptx, "approx_exp": "ex2.approx" in ptx,
                    "target": f".target sm_{arch}" in ptx})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def compiled() -> list:
    env = {key: value for key, value in __import__("os").environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _COMPILE], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_kernel_compiles_for_hopper_and_ampere_in_every_logits_dtype(compiled):
    assert [(r["arch"], r["dtype"]) for r in compiled] == [
        (90, "bf16"),
        (90, "fp16"),
        (90, "fp32"),
        (80, "bf16"),
        (90, "bf16"),
    ]
    assert all(r["target"] for r in compiled)
    assert [(r["block_v"], r["num_warps"]) for r in compiled] == [(4096, 16)] * 4 + [(1024, 4)]


def test_no_register_spills_and_at_most_128_registers_a_thread(compiled):
    for r in compiled:
        assert r["local"] == 0 and r["stack"] == 0, r
        assert r["reg"] <= 128, r
    # bf16 and fp16 logits, the usual case: 64 registers, two 512-thread blocks per SM
    assert max(r["reg"] for r in compiled if r["dtype"] in ("bf16", "fp16") and r["block_v"] == 4096) <= 64


def test_log_is_libdevice_not_the_approximate_instruction(compiled):
    """The log1p form ``log(u) * s / (u - 1)`` needs ``log`` to ~1 ulp near u = 1: ``lg2.approx`` would lose the
    relative precision of a small NLL; the exponentials may be approximate (2 ulp, relative on each term)."""
    assert not any(r["approx_log"] for r in compiled)
    assert all(r["approx_exp"] for r in compiled)

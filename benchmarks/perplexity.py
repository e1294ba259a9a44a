"""Update time, peak extra memory and exactness of CausalLMPerplexity against torchmetrics.text.Perplexity.

Both metrics get the same logits; torchmetrics gets them shifted by hand (``logits[:, :-1]``, ``labels[:, 1:]``),
as its users have to. Each (metric, dtype) runs in a fresh process, so that the peak resident memory of the
process (CPU) or the peak of the CUDA allocator, minus what it held before the first update, is the metric's own.

    python benchmarks/perplexity.py                     # CPU, 4 x 512 x 32000 logits
    python benchmarks/perplexity.py --device cuda --batch 4 --seq-len 2048 --vocab 128256

On CUDA two more rows: the metric with its Triton kernel (``TORCHMETRICS_EXT_TRITON=1``, when Triton imports) and
the floor, one read of the logits (``torch.amax``), the time a one-pass kernel can approach.
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
METRICS = ("torchmetrics", "torchmetrics_ext")
TRITON, FLOOR = "torchmetrics_ext[triton]", "one read (amax)"


def _metrics(device: str) -> tuple[str, ...]:
    if not device.startswith("cuda"):
        return METRICS
    return (*METRICS, *((TRITON,) if importlib.util.find_spec("triton") else ()), FLOOR)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _inputs(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    # made in place in its own dtype, so that no float32 temporary sets the peak before the metric runs
    logits = torch.randn(args.batch, args.seq_len, args.vocab, generator=gen, dtype=DTYPES[args.dtype]).mul_(3)
    labels = torch.randint(args.vocab, (args.batch, args.seq_len), generator=gen)
    labels[:, -args.seq_len // 8 :] = -100  # some padding, as in a real batch
    return logits.to(device), labels.to(device)


def _float64_reference(logits: torch.Tensor, labels: torch.Tensor) -> float:
    nll_sum, count = 0.0, 0
    for b in range(logits.shape[0]):  # one sequence at a time keeps the float64 copy small
        target = labels[b, 1:]
        keep = target != -100
        log_probs = torch.log_softmax(logits[b, :-1][keep].double(), dim=-1)
        nll_sum -= log_probs.gather(1, target[keep].unsqueeze(1)).sum().item()
        count += int(keep.sum())
    return float(torch.tensor(nll_sum / count, dtype=torch.float64).exp())


def run_one(args: argparse.Namespace) -> dict:
    """Measure one metric on one dtype in this process."""
    from torchmetrics.text import Perplexity

    from torchmetrics_ext.text import CausalLMPerplexity

    device = torch.device(args.device)
    logits, labels = _inputs(args, device)
    if args.metric == "torchmetrics":
        metric = Perplexity(ignore_index=-100).to(device)

        def update(logits: torch.Tensor, labels: torch.Tensor) -> None:
            metric.update(logits[:, :-1], labels[:, 1:])  # the shift torchmetrics leaves to its users

    elif args.metric == FLOOR:
        metric = Perplexity(ignore_index=-100).to(device)  # never updated: the row has no value

        def update(logits: torch.Tensor, labels: torch.Tensor) -> None:
            torch.amax(logits)

    else:
        os.environ["TORCHMETRICS_EXT_TRITON"] = "1" if args.metric == TRITON else "0"
        metric = CausalLMPerplexity().to(device)
        update = metric.update
    update(logits[:1, :8], labels[:1, :8])  # warm-up: one-time costs (thread pools) are not the update's memory
    metric.reset()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = _peak_bytes(device)
    update(logits, labels)  # the first full update sets the peak
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    extra = max(0, _peak_bytes(device) - before)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        update(logits, labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    value = float(metric.compute()) if args.metric != FLOOR else float("nan")
    reference = _float64_reference(logits.cpu(), labels.cpu())
    return {
        "metric": args.metric,
        "dtype": args.dtype,
        "ms": 1e3 * sorted(times)[len(times) // 2],
        "extra_mb": extra / 2**20,
        "logits_mb": logits.numel() * logits.element_size() / 2**20,
        "value": value,
        "rel_error": abs(value - reference) / reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    # set in the child processes
    parser.add_argument("--metric", choices=(*METRICS, TRITON, FLOOR), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=list(DTYPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.metric:
        print(json.dumps(run_one(args)))
        return

    print(
        f"logits {args.batch} x {args.seq_len} x {args.vocab} on {args.device}"
        f" ({torch.get_num_threads()} threads, torch {torch.__version__}), median of {args.repeats} updates"
    )
    header = f"{'dtype':<9} {'metric':<24} {'update ms':>10} {'extra MB':>9} {'% logits':>9} {'rel. error':>11}"
    print(header + f" {'speed-up':>9}")
    print("-" * (len(header) + 10))
    for dtype in args.dtypes:
        rows = {}
        for metric in _metrics(args.device):
            child = [sys.executable, __file__, "--metric", metric, "--dtype", dtype]
            for name in ("device", "batch", "seq_len", "vocab", "repeats"):
                child += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
            rows[metric] = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        for metric, row in rows.items():
            speedup = rows["torchmetrics"]["ms"] / row["ms"]
            print(
                f"{dtype:<9} {metric:<24} {row['ms']:>10.2f} {row['extra_mb']:>9.1f}"
                f" {100 * row['extra_mb'] / row['logits_mb']:>8.1f}% {row['rel_error']:>11.2e} {speedup:>8.1f}x"
            )


if __name__ == "__main__":
    main()

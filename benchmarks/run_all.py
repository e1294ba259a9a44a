"""Run every benchmark with one command, print their tables, and write them to BENCHMARKS.md with the machine.

Each benchmark measures its case against its baseline in the same run (torchmetrics' Perplexity, the float32 I3D
path, SciPy's sqrtm); this script runs them one after the other in fresh processes and records where.

    python benchmarks/run_all.py                    # CPU figures of this machine
    python benchmarks/run_all.py --device cuda      # GPU figures, labelled with the card
    python benchmarks/run_all.py --quick            # smaller cases, a smoke test of the suite
"""

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _cases(device: str, quick: bool) -> list[tuple[str, list[str]]]:
    if quick:
        return [
            (
                "Causal-LM perplexity",
                ["perplexity.py", "--batch", "2", "--seq-len", "64", "--vocab", "1000", "--repeats", "2"],
            ),
            ("I3D features", ["i3d_throughput.py", "--batch", "1", "--frames", "9", "--repeats", "1"]),
            ("RAFT optical flow", ["raft_throughput.py", "--batch", "2", "--size", "128", "--updates", "2"]),
            ("Fréchet distance", ["frechet.py", "--dims", "64", "--repeats", "1"]),
        ]
    gpu = device.startswith("cuda")
    perplexity = ["--batch", "4", "--seq-len", "2048", "--vocab", "128256"] if gpu else ["--repeats", "7"]
    return [
        ("Causal-LM perplexity", ["perplexity.py", *perplexity]),
        (
            "I3D features",
            [
                "i3d_throughput.py",
                *(
                    ["--batch", "16", "--repeats", "10", "--fvd-batches", "32"]
                    if gpu
                    else ["--compile", "--fvd-batches", "4"]
                ),
            ],
        ),
        ("RAFT optical flow", ["raft_throughput.py", *(["--repeats", "10"] if gpu else [])]),
        ("Fréchet distance", ["frechet.py"]),
    ]


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        accelerator = torch.cuda.get_device_name(torch.device(device))
    else:
        accelerator = f"no GPU used, {torch.get_num_threads()} threads"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}; {accelerator}; Python {platform.python_version()}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    args = parser.parse_args()
    machine = _machine(args.device)
    sections = [
        "# Benchmarks\n",
        f"Written by `python benchmarks/run_all.py{' --quick' if args.quick else ''} --device {args.device}` on"
        f" {datetime.date.today().isoformat()}.\n",
        f"Machine: {machine}.\n",
    ]
    for title, command in _cases(args.device, args.quick):
        command = [sys.executable, str(HERE / command[0]), *command[1:], "--device", args.device]
        print(f"== {title}: {' '.join(command[1:])}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        output = done.stdout.strip() if done.returncode == 0 else f"failed ({done.returncode}):\n{done.stderr[-2000:]}"
        print(output, flush=True)
        sections.append(
            f"## {title}\n\n`{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(command[1:]))}`"
            f"\n\n```\n{output}\n```\n"
        )
    args.out.write_text("\n".join(sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

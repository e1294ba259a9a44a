"""Feature-extraction throughput of InceptionI3d in clips per second, on 16-frame 224x224 clips (the FVD protocol).

Weights are random (the speed does not depend on them, and nothing is downloaded). On CUDA the same model runs in
float32, TF32 and bfloat16 autocast.

    python benchmarks/i3d_throughput.py                      # CPU
    python benchmarks/i3d_throughput.py --device cuda --batch 32
"""

import argparse
import contextlib
import time

import torch

from torchmetrics_ext.models import InceptionI3d


def _modes(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"float32": contextlib.nullcontext, "bf16 autocast": lambda: torch.autocast("cpu", torch.bfloat16)}
    return {
        "float32": contextlib.nullcontext,
        "tf32": contextlib.nullcontext,
        "bf16 autocast": lambda: torch.autocast("cuda", torch.bfloat16),
    }


def _clips_per_second(model, clips, context, repeats: int, device: torch.device) -> float:
    with torch.inference_mode(), context():
        model(clips)  # warm-up: kernel selection, allocator
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(clips)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return repeats * len(clips) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = InceptionI3d(frozen=True).to(device)
    clips = torch.rand(args.batch, 3, args.frames, 224, 224, device=device) * 2 - 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"InceptionI3d on {name}, torch {torch.__version__}, batch {args.batch} x {args.frames}x224x224")
    print(f"{'mode':<14} {'clips/s':>9}")
    for mode, context in _modes(device).items():
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
        print(f"{mode:<14} {_clips_per_second(model, clips, context, args.repeats, device):>9.2f}")


if __name__ == "__main__":
    main()

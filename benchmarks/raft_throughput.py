"""Optical-flow throughput of torchvision's RAFT through RAFTFlow, in frame pairs per second.

The setting of the anchor figure (torchvision RAFT at 256x256, 12 updates, batch 16; on one H100: large 367
pairs/s, small 581) by default. Weights are random: the speed does not depend on them, and nothing is downloaded.
The time includes what FlowWarpingError adds around RAFT (range mapping, padding, cropping).

    python benchmarks/raft_throughput.py                           # CPU
    python benchmarks/raft_throughput.py --device cuda --repeats 10
"""

import argparse
import time

import torch
from torchvision.models.optical_flow import raft_large, raft_small

from torchmetrics_ext.models import RAFTFlow


def _pairs_per_second(flow: RAFTFlow, frames_a, frames_b, repeats: int, device: torch.device) -> float:
    flow(frames_a, frames_b)  # warm-up: kernel selection, allocator
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        flow(frames_a, frames_b)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return repeats * len(frames_a) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    frames_a = torch.rand(args.batch, 3, args.size, args.size, device=device)
    frames_b = frames_a.roll(3, dims=-1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"RAFTFlow on {name}, torch {torch.__version__}, batch {args.batch} x {args.size}x{args.size}, "
        f"{args.updates} updates, float32"
    )
    print(f"{'model':<11} {'pairs/s':>9}")
    for builder in (raft_small, raft_large):
        flow = RAFTFlow(builder(weights=None), num_flow_updates=args.updates, batch_size=args.batch).to(device)
        print(f"{builder.__name__:<11} {_pairs_per_second(flow, frames_a, frames_b, args.repeats, device):>9.2f}")


if __name__ == "__main__":
    main()

"""I3D feature extraction for FVD: clips per second under each ExtractorOptions, and the FVD each one gives.

Every mode runs ``FrechetVideoDistance.update`` on uint8 videos of ``--frames`` x 224 x 224 already on the device (so
the preprocessing on the device is timed too), with a fresh copy of the same network. The baseline is the
pytorch-i3d-style path: eager float32, TF32 off, no cuDNN autotuning. Each row gives its speed-up over the baseline
and the relative difference of its FVD from the baseline's on the same real and generated videos.

Weights are random unless ``--weights`` names an I3D file (speed does not depend on them; the FVD difference does,
so quote it from a run with the real weights). Nothing is downloaded.

    python benchmarks/i3d_throughput.py                                   # CPU: eager modes
    python benchmarks/i3d_throughput.py --device cuda --batch 16          # GPU: every mode, compiled ones included
    python benchmarks/i3d_throughput.py --device cuda --weights i3d_pretrained_400.pt
"""

import argparse
import time
from typing import Optional

import torch

from torchmetrics_ext.functional.video.preprocess import preprocess_videos
from torchmetrics_ext.models import ExtractorOptions, InceptionI3d, load_i3d
from torchmetrics_ext.video import FrechetVideoDistance

BASELINE = ExtractorOptions(precision="32-true", cudnn_benchmark=False)


def _modes(device: torch.device, compiled: bool) -> dict[str, ExtractorOptions]:
    modes = {"float32 (baseline)": BASELINE}
    if device.type == "cuda":
        modes["+ cudnn autotune"] = ExtractorOptions()
        modes["tf32"] = ExtractorOptions(precision="tf32")
    modes["bf16-mixed"] = ExtractorOptions(precision="bf16-mixed")
    modes["bf16 + channels_last"] = ExtractorOptions(precision="bf16-mixed", channels_last=True)
    if compiled:
        modes["bf16 + cl + compile"] = ExtractorOptions(precision="bf16-mixed", channels_last=True, compile=True)
        if device.type == "cuda":
            modes["bf16 + cl + cuda graphs"] = ExtractorOptions(
                precision="bf16-mixed", channels_last=True, cuda_graphs=True
            )
    return modes


def _network(weights: Optional[str], calibration: torch.Tensor) -> torch.nn.Module:
    """The I3D file given, or random weights whose batch norms are fitted to ``calibration`` clips.

    With PyTorch's default initialisation and identity batch norms the signal fades through I3D's layers and every
    video gets nearly the same features (an FVD near 1e-12); batch norms fitted to real activations keep each layer
    at unit variance, so that the FVD of random weights is a number its rounding can be compared on.
    """
    if weights:
        return load_i3d(weights)
    torch.manual_seed(0)
    network = InceptionI3d(frozen=True)
    norms = [module for module in network.modules() if isinstance(module, torch.nn.BatchNorm3d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum, norm.training = None, True  # cumulative averages of the batch statistics
    with torch.no_grad():
        network(calibration.cpu())
    for norm in norms:
        norm.training = False
    return network


def _videos(count: int, frames: int, seed: int, device: torch.device) -> torch.Tensor:
    """uint8 [count, frames, 3, 224, 224]: smooth random motion, so that the features differ between sets."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, frames, 7, 7, generator=gen).to(device)  # upsampled on the device
    fine = torch.nn.functional.interpolate(coarse, size=(frames, 224, 224), mode="trilinear")
    return (fine * 255).round().to(torch.uint8).transpose(1, 2).contiguous()


def _measure(options: ExtractorOptions, args: argparse.Namespace, device: torch.device, data: dict) -> dict:
    network = _network(args.weights, data["calibration"])
    fvd = FrechetVideoDistance(feature_extractor=network, extractor_options=options).to(device)
    for batch in data["real"]:
        fvd.update(batch, real=True)
    for batch in data["fake"]:  # also the warm-up: compilation, cuDNN autotuning, CUDA graph capture
        fvd.update(batch, real=False)
    value = float(fvd.compute())
    timed = data["fake"][0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(args.repeats):
        fvd.update(timed, real=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"clips_per_s": args.repeats * len(timed) / (time.perf_counter() - start), "fvd": value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per mode")
    parser.add_argument("--fvd-batches", type=int, default=2, help="batches a side for the FVD comparison")
    parser.add_argument("--weights", help="an I3D file for load_i3d (default: random weights)")
    parser.add_argument("--compile", action="store_true", help="also the torch.compile modes (default on CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch._dynamo.config.cache_size_limit = 64  # one compiled network per mode, each with its own guards
    data = {
        side: [_videos(args.batch, args.frames, seed + 100 * i, device) for i in range(args.fvd_batches)]
        for side, seed in (("real", 0), ("fake", 1))
    }
    data["calibration"] = preprocess_videos(_videos(2, args.frames, seed=7, device=torch.device("cpu")))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    weights = args.weights or "random weights"
    print(
        f"FrechetVideoDistance.update with InceptionI3d on {name}, torch {torch.__version__}, {weights},"
        f" batch {args.batch} x {args.frames}x224x224 uint8 on the device, {args.repeats} timed batches;"
        f" FVD of {args.batch * args.fvd_batches} clips a side"
    )
    print(f"{'mode':<26} {'clips/s':>9} {'speed-up':>9} {'FVD':>12} {'FVD rel. diff':>14}")
    baseline = None
    for mode, options in _modes(device, args.compile or device.type == "cuda").items():
        row = _measure(options, args, device, data)
        baseline = baseline or row
        diff = abs(row["fvd"] - baseline["fvd"]) / abs(baseline["fvd"])
        speedup = row["clips_per_s"] / baseline["clips_per_s"]
        print(f"{mode:<26} {row['clips_per_s']:>9.2f} {speedup:>8.2f}x {row['fvd']:>12.6g} {diff:>14.2e}")


if __name__ == "__main__":
    main()

"""Time and accuracy of the Fréchet distance: frechet_distance (float64) against SciPy's sqrtm and torchmetrics' FID.

Covariances of ``n`` Gaussian samples of ``d`` dimensions a side (full rank: n = 2d), as FVD gets them from I3D
features. The reference value is SciPy's pytorch-fid formula; the table gives each method's time (median of
``--repeats``) and its difference from SciPy relative to the distance. ``frechet_distance`` takes its full-rank
path here (Cholesky, eigvalsh); the row below it times the path it takes for singular covariances (eigh, SVD).
torchmetrics' FID formula (``eigvals`` of the non-symmetric product) runs on the same device, in float64.

    python benchmarks/frechet.py                    # CPU, d = 400 and 2048
    python benchmarks/frechet.py --device cuda
"""

import argparse
import time

import numpy as np
import scipy.linalg
import torch

from torchmetrics.image.fid import _compute_fid

from torchmetrics_ext.functional.video import frechet_distance
from torchmetrics_ext.functional.video.frechet import _range_factor, _symmetric


def _gaussians(dim: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5
    features = torch.randn(2 * dim, dim, generator=gen, dtype=torch.float64) @ mixing + 0.1 * seed
    return features.mean(0), torch.cov(features.T)


def _scipy(mu1, sigma1, mu2, sigma2) -> float:
    diff = (mu1 - mu2).numpy()
    covmean = scipy.linalg.sqrtm(sigma1.numpy() @ sigma2.numpy()).real
    return float(diff @ diff + np.trace(sigma1.numpy()) + np.trace(sigma2.numpy()) - 2 * np.trace(covmean))


def _singular_path(mu1, sigma1, mu2, sigma2) -> torch.Tensor:
    """The distance through the path frechet_distance takes for singular covariances, on any input."""
    sigma1, sigma2 = _symmetric(sigma1), _symmetric(sigma2)
    trace_sqrt = torch.linalg.svdvals(_range_factor(sigma1).mT @ _range_factor(sigma2)).sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt


def _median_time(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dims", type=int, nargs="+", default=[400, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Fréchet distance on {name}, torch {torch.__version__}, scipy {scipy.__version__}, float64")
    print(f"{'d':>5} {'method':<28} {'ms':>9} {'rel. diff vs scipy':>19} {'speed-up':>9}")
    for dim in args.dims:
        (mu1, sigma1), (mu2, sigma2) = _gaussians(dim, 1), _gaussians(dim, 2)
        base_s, reference = _median_time(lambda: _scipy(mu1, sigma1, mu2, sigma2), args.repeats, torch.device("cpu"))
        print(f"{dim:>5} {'scipy sqrtm (pytorch-fid)':<28} {base_s * 1e3:>9.1f} {0.0:>19.1e} {1.0:>8.1f}x")
        on_device = [t.to(device) for t in (mu1, sigma1, mu2, sigma2)]
        methods = {
            "frechet_distance": lambda: frechet_distance(*on_device).item(),
            "  its singular path (SVD)": lambda: _singular_path(*on_device).item(),
            "torchmetrics FID (eigvals)": lambda: _compute_fid(*on_device).item(),
        }
        for method, run in methods.items():
            run()  # warm-up: library loading, GPU context and solver workspaces
            seconds, value = _median_time(run, args.repeats, device)
            diff = abs(value - reference) / abs(reference)
            print(f"{dim:>5} {method:<28} {seconds * 1e3:>9.1f} {diff:>19.1e} {base_s / seconds:>8.1f}x")


if __name__ == "__main__":
    main()

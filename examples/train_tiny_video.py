"""Train a tiny next-frame predictor on synthetic moving-shape videos and track it with the video metrics.

Run it from the repository root. The first run downloads the pretrained networks of the metrics (the I3D of FVD,
torchvision's RAFT and ViT-B/16) into torch hub's folder; on a machine without internet, ask for random weights
by name::

    python examples/train_tiny_video.py                   # pretrained I3D, RAFT-small and ViT-B/16
    python examples/train_tiny_video.py --random-weights  # offline: random networks, a smoke test only

The script draws videos of coloured discs gliding and bouncing on a dark background (16 frames of 32x32). A small
convolutional network learns to predict frame t+1 from frames t-1 and t, trained on whole rollouts from the first two
real frames (teacher forcing alone does worse than copying the last frame, as errors compound unseen). At
validation it rolls every video out the same way, and ``ValidationMetrics`` scores the rollouts:

- ``fvd`` and ``kvd``: Fréchet and kernel video distance on I3D features (the real side extracted once);
- ``warping_error``: the flow warping error of the rollouts, with RAFT's flow and Lai et al.'s occlusion masks;
- ``temporal_consistency``: cosine similarity of consecutive frames' embeddings (VBench's variant);
- ``flickering``: VBench's temporal flickering;
- ``psnr`` and ``ssim``: per-frame PSNR and SSIM of the predicted frames against the real ones.

``BestMetricCheckpoint`` keeps the checkpoint of the lowest FVD (with ``--random-weights``, of the highest PSNR: a
random I3D's FVD says nothing). The set sizes are those of a smoke test, not of
the FVD protocol (2048 videos a side): the distances are biased upwards and noisy, and with ``--random-weights``
none of the network-based numbers (FVD, KVD, warping error, consistency) is comparable with published ones.
"""

import argparse
import math
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from torchmetrics_ext.callbacks import BestMetricCheckpoint, ValidationMetrics
from torchmetrics_ext.video import (
    FlowWarpingError,
    FrechetVideoDistance,
    KernelVideoDistance,
    PerFrameImageMetric,
    TemporalConsistency,
    TemporalFlickering,
)

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def moving_shapes(num_videos: int, frames: int = 16, size: int = 32, seed: int = 0) -> Tensor:
    """Videos of one to three coloured discs moving at constant speed and bouncing off the borders.

    Args:
        num_videos: how many videos to draw.
        frames: frames per video.
        size: height and width of the frames.
        seed: the seed of the random positions, speeds, radii and colours.

    Returns:
        ``[num_videos, frames, 3, size, size]`` float32 in [0, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    videos = torch.zeros(num_videos, frames, 3, size, size)
    for video in videos:
        video += torch.rand(3, 1, 1, generator=generator) * 0.2  # a dark background
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            radius = 3 + 3 * torch.rand(1, generator=generator)
            position = radius + (size - 2 * radius) * torch.rand(2, generator=generator)
            velocity = (torch.rand(2, generator=generator) - 0.5) * 4  # up to 2 pixels a frame
            color = 0.3 + 0.7 * torch.rand(3, 1, 1, generator=generator)
            for frame in video:
                distance = ((coords[None, :] - position[0]) ** 2 + (coords[:, None] - position[1]) ** 2).sqrt()
                alpha = (radius + 0.5 - distance).clamp(0, 1)  # a one-pixel soft edge: sub-pixel motion shows
                frame.mul_(1 - alpha).add_(alpha * color)
                position += velocity
                for axis in range(2):  # bounce
                    if not radius <= position[axis] <= size - 1 - radius:
                        velocity[axis] = -velocity[axis]
                        position[axis] = position[axis].clamp(radius, size - 1 - radius)
    return videos


class FramePredictor(nn.Module):
    """Predicts frame t+1 from frames t-1 and t: a residual over frame t, from a few 3x3 convolutions.

    Args:
        width: channels of the hidden layers.
    """

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),  # sees 2-pixel motions from both frames
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, previous: Tensor, current: Tensor) -> Tensor:
        """Frame t+1 ``[N, 3, H, W]`` in [0, 1] from frames t-1 and t of the same shape."""
        return (current + self.net(torch.cat([previous, current], dim=1))).clamp(0, 1)


class VideoPredictor(L.LightningModule):
    """Trains :class:`FramePredictor` on whole rollouts and validates them.

    Args:
        width: channels of the hidden layers.
        lr: AdamW learning rate.
    """

    def __init__(self, width: int = 48, lr: float = 2e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = FramePredictor(width)

    def rollout(self, videos: Tensor) -> Tensor:
        """Videos ``[B, T, 3, H, W]`` generated from the first two frames of ``videos``, one frame at a time."""
        frames = [videos[:, 0], videos[:, 1]]
        for _ in range(videos.shape[1] - 2):
            frames.append(self.model(frames[-2], frames[-1]))
        return torch.stack(frames, dim=1)

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> Tensor:
        """Mean squared error of a whole rollout: trained on its own predictions, the model learns to correct them."""
        (videos,) = batch
        loss = F.mse_loss(self.rollout(videos)[:, 2:], videos[:, 2:])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Roll out every validation video; the ``ValidationMetrics`` callback takes the real and generated ones."""
        (videos,) = batch
        generated = self.rollout(videos)
        self.log("val/loss", F.mse_loss(generated, videos))
        return {"real": videos, "generated": generated}

    def on_validation_end(self) -> None:
        """Print the validation metrics of the epoch, once they are logged."""
        if self.trainer.sanity_checking:
            return
        values = {name.removeprefix("val/"): float(v) for name, v in self.trainer.callback_metrics.items()}
        self.print(
            f"epoch {self.current_epoch}: fvd {values['fvd']:.4g}, kvd {values['kvd']:.4g}, warping error"
            f" {values['warping_error']:.5f}, consistency {values['temporal_consistency']:.4f}, flickering"
            f" {values['flickering']:.4f}, psnr {values['psnr']:.2f} dB, ssim {values['ssim']:.4f}"
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Return AdamW over all the parameters."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_metrics(args: argparse.Namespace) -> ValidationMetrics:
    """The video metrics, with pretrained networks or, with ``--random-weights``, random ones built here."""
    if args.random_weights:
        from torchvision.models import resnet18
        from torchvision.models.optical_flow import raft_large, raft_small

        from torchmetrics_ext.models import InceptionI3d, RAFTFlow

        i3d = InceptionI3d(frozen=True)
        raft = RAFTFlow((raft_small if args.flow == "raft_small" else raft_large)(weights=None), args.flow_updates)
        encoder = resnet18(weights=None)
        encoder.fc = nn.Identity()  # the 512-d pooled features: [N, 3, H, W] -> [N, 512]
        detector, flow, flow_options = i3d, raft, {}
    else:
        detector, flow, flow_options, encoder = "i3d", args.flow, {"num_flow_updates": args.flow_updates}, "vit_b_16"
    half = max(2, args.val_videos // 2)
    metrics = {
        # the real side is extracted during the first validation and kept: reset_real_features=False
        "fvd": FrechetVideoDistance(feature_extractor=detector, reset_real_features=False),
        "kvd": KernelVideoDistance(feature_extractor=detector, reset_real_features=False, subsets=50, subset_size=half),
        "warping_error": FlowWarpingError(flow=flow, **flow_options),
        "temporal_consistency": TemporalConsistency(encoder=encoder, reference="vbench"),
        "flickering": TemporalFlickering(),
        "psnr": PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0)),
        "ssim": PerFrameImageMetric(StructuralSimilarityIndexMeasure(data_range=1.0)),
    }
    real_and_generated = lambda out, batch: [  # noqa: E731
        {"videos": out["real"], "real": True},
        {"videos": out["generated"], "real": False},
    ]
    generated = lambda out, batch: {"videos": out["generated"]}  # noqa: E731
    # the first two frames are given, not predicted (their PSNR would be infinite): score frames 2..T-1
    compared = lambda out, batch: {"preds": out["generated"][:, 2:], "target": out["real"][:, 2:]}  # noqa: E731
    inputs = {
        "fvd": real_and_generated,
        "kvd": real_and_generated,
        "warping_error": generated,
        "temporal_consistency": generated,
        "flickering": generated,
        "psnr": compared,
        "ssim": compared,
    }
    return ValidationMetrics(metrics, prefix="val/", inputs=inputs)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line; the defaults take a few minutes on two CPU cores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-videos", type=int, default=512)
    parser.add_argument("--val-videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16, help="frames per video (I3D needs at least 9)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--flow", choices=("raft_small", "raft_large"), default="raft_small")
    parser.add_argument("--flow-updates", type=int, default=12, help="RAFT's refinements")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="random I3D, RAFT and frame encoder instead of downloading pretrained ones: numbers not comparable",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto", help='"cpu", "gpu", "mps" or "auto"')
    parser.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINTS, help="where the best checkpoint goes")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train the predictor as ``args`` says and return the metrics of the last validation and the best checkpoint.

    Args:
        args: the options of :func:`parse_args`.

    Returns:
        The last validation's metrics by name (``"fvd"``, ``"psnr"``, ...) as floats, the PSNR of repeating the
        last given frame (``"psnr_repeat_last_frame"``), and ``"best_path"``, ``"best_score"`` and ``"monitor"`` of
        the best checkpoint.
    """
    L.seed_everything(args.seed, workers=True)
    train_videos = moving_shapes(args.train_videos, args.frames, seed=args.seed)
    val_videos = moving_shapes(args.val_videos, args.frames, seed=args.seed + 1)
    train_loader = DataLoader(TensorDataset(train_videos), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(val_videos), batch_size=args.batch_size)
    metrics = build_metrics(args)
    monitor = "val/psnr" if args.random_weights else "val/fvd"  # the mode (max, min) comes from the metric
    best = BestMetricCheckpoint(monitor=monitor, dirpath=args.checkpoint_dir)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        max_epochs=args.epochs,
        logger=False,
        num_sanity_val_steps=0,
        callbacks=[metrics, best],
        enable_progress_bar=args.progress_bar,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")  # tensors in memory: no workers needed
        warnings.filterwarnings("ignore", ".*covariance is singular.*")  # a smoke-test set is smaller than 400
        trainer.fit(VideoPredictor(lr=args.lr), train_loader, val_loader)
    values = {
        name.removeprefix("val/"): float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith("val/")
    }
    best_score = math.nan if best.best_model_score is None else float(best.best_model_score)
    # the baseline of a predictor: repeat the last given frame
    still = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
    still.update(val_videos[:, 1:2].expand_as(val_videos[:, 2:]), val_videos[:, 2:])
    baseline = {"psnr_repeat_last_frame": float(still.compute())}
    return {**values, **baseline, "best_path": best.best_model_path, "best_score": best_score, "monitor": monitor}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Train, print the final metrics and the best checkpoint, and return the final metrics."""
    args = parse_args(argv)
    if args.random_weights:
        print("--random-weights: I3D, RAFT and the frame encoder are random; FVD, KVD, warping error and consistency")
        print("are NOT comparable with published numbers (PSNR, SSIM and flickering do not use a network).")
    metrics = train(args)
    print(
        f"final val psnr {metrics['psnr']:.2f} dB (repeating the last given frame: "
        f"{metrics['psnr_repeat_last_frame']:.2f} dB), ssim {metrics['ssim']:.4f}, fvd {metrics['fvd']:.4g}"
    )
    print(f"best checkpoint: {metrics['best_path']} ({metrics['monitor']} {metrics['best_score']:.4g})")
    return metrics


if __name__ == "__main__":
    main()

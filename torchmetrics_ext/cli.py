"""The ``torchmetrics-ext`` command: score folders of videos outside a training loop.

    torchmetrics-ext fvd REAL FAKE [--num-videos 2048 --frames 16 --start random]   # the fvd2048_16f protocol
    torchmetrics-ext kvd REAL FAKE
    torchmetrics-ext video-metrics VIDEOS [--reference REF]
    torchmetrics-ext plot-log metrics.csv --out plots/ [--monitor val/fvd]

Exit codes: 0 when the metrics were computed (files skipped with ``--skip-bad`` are listed); 1 when the data or
the weights do not allow it (an unreadable file, too few videos, a failed download); 2 for a wrong command line,
options that do not go together included.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

EXIT_OK, EXIT_DATA_ERROR, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure the user can act on: printed as one line and exit code 1, without a traceback."""


class UsageError(CommandError):
    """Options that do not go together: exit code 2, as argparse's own errors."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _start(text: str) -> Any:
    if text == "random":
        return text
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a frame index >= 0 or 'random', got {text}")
    return value


def _add_clip_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clips (the protocol)")
    group.add_argument("--num-videos", type=_positive_int, help="use the first N videos of each input (sorted)")
    group.add_argument("--frames", type=_positive_int, default=16, help="frames per clip")
    group.add_argument("--all-frames", action="store_true", help="every frame of each video instead of --frames")
    group.add_argument("--stride", type=_positive_int, default=1, help="take every N-th frame")
    group.add_argument("--start", type=_start, default=0, help="first frame of each clip, or 'random'")
    group.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    run = parser.add_argument_group("run")
    run.add_argument("--batch-size", type=_positive_int, default=8, help="clips per batch")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    run.add_argument("--num-workers", type=int, default=0, help="processes decoding videos while the model runs")
    run.add_argument("--skip-bad", action="store_true", help="report unreadable videos and go on without them")
    run.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout only)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``torchmetrics-ext`` command."""
    parser = argparse.ArgumentParser(
        prog="torchmetrics-ext",
        description="Score folders of videos with the metrics of torchmetrics-ext.",
        epilog="Inputs: a folder of video files (mp4, webm, avi, gif, ...), a folder of frame folders (png, jpg), "
        "video files, or a .npy/.npz/.pt tensor file; for fvd and kvd REAL may be a file written by --save-stats.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in (("fvd", "Fréchet Video Distance"), ("kvd", "Kernel Video Distance")):
        sub = commands.add_parser(
            name, help=f"{summary} between real and generated videos", formatter_class=parser.formatter_class
        )
        sub.add_argument("real", help="real videos, or saved real statistics")
        sub.add_argument("fake", help="generated videos")
        sub.add_argument("--weights", help="I3D weights file (state dict or TorchScript); default: download once")
        sub.add_argument("--save-stats", metavar="PATH", help="save the real side's statistics to reuse as REAL")
        if name == "fvd":
            sub.add_argument("--ddof", type=int, choices=(0, 1), default=1, help="1: TensorFlow's FVD, 0: StyleGAN-V")
        else:
            sub.add_argument("--subsets", type=_positive_int, default=100)
            sub.add_argument("--subset-size", type=_positive_int, help="default: min(1000, videos of a side)")
        speed = sub.add_argument_group("I3D speed (see ExtractorOptions; the default is exact float32)")
        speed.add_argument("--precision", choices=("32-true", "tf32", "bf16-mixed"), default="32-true")
        speed.add_argument("--channels-last", action="store_true", help="channels_last_3d inputs and weights")
        speed.add_argument("--compile", action="store_true", help="torch.compile the network")
        speed.add_argument("--cuda-graphs", action="store_true", help="CUDA graphs (torch.compile reduce-overhead)")
        speed.add_argument("--no-cudnn-benchmark", action="store_true", help="no cuDNN algorithm autotuning")
        _add_clip_options(sub)
    sub = commands.add_parser(
        "video-metrics",
        help="warping error, temporal consistency, flickering; PSNR/SSIM/LPIPS against a reference",
        formatter_class=parser.formatter_class,
    )
    sub.add_argument("videos", help="the videos to score")
    sub.add_argument("--reference", help="reference videos, paired with VIDEOS in sorted order (PSNR, SSIM, LPIPS)")
    sub.add_argument(
        "--metrics",
        help="comma-separated subset of " + ", ".join(VIDEO_METRICS) + " (default: all but lpips; psnr and ssim with"
        " --reference)",
    )
    sub.add_argument("--flow", choices=("raft_large", "raft_small"), default="raft_large")
    sub.add_argument("--flow-weights", help="torchvision weights name (C_T_V2, ...) or a saved RAFT state dict")
    sub.add_argument("--flow-updates", type=_positive_int, default=12, help="RAFT's refinements")
    sub.add_argument("--flow-from-reference", action="store_true", help="Lai's protocol: the reference's flow")
    sub.add_argument("--encoder", default="vit_b_16", help="vit_b_16, or a TorchScript file mapping frames to [N, D]")
    sub.add_argument("--consistency", choices=("adjacent", "first", "vbench"), default="vbench")
    _add_clip_options(sub)
    sub = commands.add_parser(
        "plot-log", help="PNG curves from a Lightning CSV log (metrics.csv)", formatter_class=parser.formatter_class
    )
    sub.add_argument("csv", help="the metrics.csv of a CSVLogger run")
    sub.add_argument("--out", required=True, help="folder for the PNG files")
    sub.add_argument("--monitor", help="mark the best value of this column (the best checkpoint), e.g. val/fvd")
    sub.add_argument("--mode", choices=("min", "max"), help="whether lower or higher is better for --monitor")
    return parser


VIDEO_METRICS = ("warping_error", "temporal_consistency", "flickering", "psnr", "ssim", "lpips")


# ---------------------------------------------------------------------------------------------------------------
# reading clips


def _sources(path: str, args: argparse.Namespace) -> list:
    from torchmetrics_ext.io import find_videos

    sources = find_videos(path)
    return sources[: args.num_videos] if args.num_videos else sources


def _sampling(args: argparse.Namespace) -> Any:
    from torchmetrics_ext.io import ClipSampling

    return ClipSampling(None if args.all_frames else args.frames, args.stride, args.start, args.seed)


def _loader(sources: list, args: argparse.Namespace, reference: Optional[list] = None) -> Any:
    """Batches of clips decoded by ``--num-workers`` processes; with ``reference``, of (video, reference) pairs."""
    from torch.utils.data import DataLoader

    from torchmetrics_ext.io import VideoClipDataset, collate_clips

    dataset = VideoClipDataset(sources, _sampling(args))
    if reference is None:
        return DataLoader(dataset, args.batch_size, num_workers=args.num_workers, collate_fn=collate_clips)
    paired = _PairedClips(dataset, VideoClipDataset(reference, _sampling(args)))
    return DataLoader(paired, args.batch_size, num_workers=args.num_workers, collate_fn=_collate_pairs)


class _PairedClips:
    """The clips of two datasets side by side: video i with reference i."""

    def __init__(self, videos: Any, reference: Any) -> None:
        self.videos, self.reference = videos, reference

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        return self.videos[index], self.reference[index]


def _collate_pairs(pairs: list) -> dict[str, Any]:
    """Like ``collate_clips``, for pairs: a pair is skipped whole when either side is bad or the shapes differ."""
    import torch

    errors, groups = [], {}
    for video, reference in pairs:
        for item in (video, reference):
            if item["error"] is not None:
                errors.append((item["source"], item["error"]))
        if video["error"] is None and reference["error"] is None:
            if video["clip"].shape != reference["clip"].shape:
                message = (
                    f"clip of shape {list(video['clip'].shape)} but its reference {reference['source']} has"
                    f" {list(reference['clip'].shape)}"
                )
                errors.append((video["source"], message))
            else:
                groups.setdefault(tuple(video["clip"].shape), []).append((video["clip"], reference["clip"]))
    clips = [(torch.stack([a for a, _ in group]), torch.stack([b for _, b in group])) for group in groups.values()]
    return {"sources": [video["source"] for video, _ in pairs], "clips": clips, "errors": errors}


class _Report:
    """What happened to the videos of one input: clips used and files skipped."""

    def __init__(self, path: str) -> None:
        self.path, self.clips, self.skipped = path, 0, []

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "clips": self.clips, "skipped": [{"video": s, "error": e} for s, e in self.skipped]}


def _clip_batches(
    path: str, args: argparse.Namespace, report: _Report, desc: str, reference: Optional[str] = None
) -> Iterator[Any]:
    """Batches of clips ``[B, T, 3, H, W]`` uint8 of the videos at ``path`` (with ``reference``: pairs of batches,
    video i with reference video i in sorted order); bad videos stop the run or are skipped with ``--skip-bad``."""
    from tqdm import tqdm

    sources = _sources(path, args)
    references = None if reference is None else _sources(reference, args)
    if references is not None and len(references) != len(sources):
        raise CommandError(
            f"{len(sources)} videos in {path} but {len(references)} in {reference}: every video needs its reference"
        )
    with tqdm(total=len(sources), desc=desc, unit="clip", disable=args.no_progress, file=sys.stderr) as bar:
        for batch in _loader(sources, args, references):
            for source, error in batch["errors"]:
                if not args.skip_bad:
                    raise CommandError(f"{error} (pass --skip-bad to leave such videos out)")
                report.skipped.append((source, error))
                bar.write(f"skipped {source}: {error}", file=sys.stderr)
            for clips in batch["clips"]:
                yield clips
                report.clips += (clips[0] if isinstance(clips, tuple) else clips).shape[0]
            bar.update(len(batch["sources"]))
    if report.clips == 0:
        raise CommandError(f"no readable video in {path}")


def _protocol(args: argparse.Namespace) -> dict[str, Any]:
    frames = "all" if args.all_frames else args.frames
    return {
        "num_videos": args.num_videos,
        "frames": frames,
        "stride": args.stride,
        "start": args.start,
        "seed": args.seed,
    }


# ---------------------------------------------------------------------------------------------------------------
# fvd and kvd


def _saved_statistics(path: str) -> Optional[dict]:
    """The content of a ``save_real_statistics`` file, or None for anything else."""
    import torch

    if not (Path(path).is_file() and Path(path).suffix == ".pt"):
        return None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a video tensor file that is not a plain dict, say: read as videos later
        return None
    return content if isinstance(content, dict) and "states" in content and "metric" in content else None


def _run_distance(args: argparse.Namespace) -> dict[str, Any]:
    from torchmetrics_ext.video import FrechetVideoDistance, KernelVideoDistance

    statistics = _saved_statistics(args.real)
    extractor_options = {
        "precision": args.precision,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "cuda_graphs": args.cuda_graphs,
        "cudnn_benchmark": not args.no_cudnn_benchmark,
    }
    options = {"weights": args.weights, "reset_real_features": False, "extractor_options": extractor_options}
    if args.command == "fvd":
        metric = FrechetVideoDistance(ddof=args.ddof, **options)
    else:
        metric = KernelVideoDistance(subsets=args.subsets, subset_size=args.subset_size or 1000, **options)
    metric = metric.to(args.device)
    real, fake = _Report(args.real), _Report(args.fake)
    if statistics is not None:
        metric.load_real_statistics(args.real)
        real.clips = int(
            statistics["states"]["real_features_num_samples"]
            if "real_features_num_samples" in statistics["states"]
            else statistics["states"]["real_features"].shape[0]
        )
    else:
        for clips in _clip_batches(args.real, args, real, "real"):
            metric.update(clips, real=True)
    if args.save_stats:
        metric.save_real_statistics(args.save_stats)
    for clips in _clip_batches(args.fake, args, fake, "fake"):
        metric.update(clips, real=False)
    if args.command == "kvd" and args.subset_size is None:
        metric.subset_size = min(1000, real.clips, fake.clips)
    value = metric.compute()
    results = {"fvd": float(value)} if args.command == "fvd" else {"kvd": float(value[0]), "kvd_std": float(value[1])}
    settings = {
        "feature_extractor": "i3d",
        "weights": args.weights or "i3d_pretrained_400.pt (default)",
        "extractor_options": extractor_options,
    }
    settings.update(
        {"ddof": args.ddof} if args.command == "fvd" else {"subsets": args.subsets, "subset_size": metric.subset_size}
    )
    return {
        "command": args.command,
        "results": results,
        "real": real.as_dict(),
        "fake": fake.as_dict(),
        "protocol": _protocol(args),
        "settings": settings,
        "saved_statistics": args.save_stats,
    }


# ---------------------------------------------------------------------------------------------------------------
# video-metrics


def _video_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """The metrics to compute, by name."""
    import torch
    from torchmetrics.image import (
        LearnedPerceptualImagePatchSimilarity,
        PeakSignalNoiseRatio,
        StructuralSimilarityIndexMeasure,
    )

    from torchmetrics_ext.video import FlowWarpingError, PerFrameImageMetric, TemporalConsistency, TemporalFlickering

    names = args.metrics.split(",") if args.metrics else [n for n in VIDEO_METRICS if n != "lpips"]
    if not args.metrics and not args.reference:
        names = [n for n in names if n not in ("psnr", "ssim")]
    unknown = [n for n in names if n not in VIDEO_METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)} in --metrics; choose from {', '.join(VIDEO_METRICS)}")
    paired = [n for n in names if n in ("psnr", "ssim", "lpips")]
    if paired and not args.reference:
        raise UsageError(f"--metrics {','.join(paired)} needs reference videos: pass --reference")
    metrics = {}
    for name in names:
        if name == "warping_error":
            metrics[name] = FlowWarpingError(
                flow=args.flow, weights=args.flow_weights, num_flow_updates=args.flow_updates
            )
        elif name == "temporal_consistency":
            encoder = args.encoder if args.encoder == "vit_b_16" else torch.jit.load(args.encoder, map_location="cpu")
            metrics[name] = TemporalConsistency(
                encoder=encoder, reference=args.consistency, batch_size=args.batch_size * 4
            )
        elif name == "flickering":
            metrics[name] = TemporalFlickering()
        elif name == "psnr":
            metrics[name] = PerFrameImageMetric(PeakSignalNoiseRatio(data_range=1.0))
        elif name == "ssim":
            metrics[name] = PerFrameImageMetric(StructuralSimilarityIndexMeasure(data_range=1.0))
        else:
            metrics[name] = PerFrameImageMetric(LearnedPerceptualImagePatchSimilarity(normalize=True))
    return {name: metric.to(args.device) for name, metric in metrics.items()}


def _run_video_metrics(args: argparse.Namespace) -> dict[str, Any]:
    metrics = _video_metrics(args)
    report = _Report(args.videos)
    batches = _clip_batches(args.videos, args, report, "videos", reference=args.reference)
    for batch in batches:
        clips, reference = batch if args.reference else (batch, None)
        for name, metric in metrics.items():
            if name in ("psnr", "ssim", "lpips"):
                metric.update(clips, reference)
            elif name == "warping_error" and args.flow_from_reference and reference is not None:
                metric.update(clips, source=reference)
            else:
                metric.update(clips)
    results = {name: float(metric.compute()) for name, metric in metrics.items()}
    settings = {
        "flow": args.flow,
        "flow_weights": args.flow_weights or "DEFAULT",
        "flow_updates": args.flow_updates,
        "flow_from_reference": args.flow_from_reference,
        "encoder": args.encoder,
        "consistency": args.consistency,
    }
    output = {
        "command": args.command,
        "results": results,
        "videos": report.as_dict(),
        "protocol": _protocol(args),
        "settings": settings,
    }
    if args.reference:
        output["reference"] = {"path": args.reference, "clips": report.clips, "skipped": []}  # paired: skips above
    return output


def _run_plot_log(args: argparse.Namespace) -> dict[str, Any]:
    from torchmetrics_ext.plotting import plot_training_log

    written = plot_training_log(args.csv, args.out, monitor=args.monitor, mode=args.mode)
    return {"command": args.command, "results": {}, "written": [str(path) for path in written]}


# ---------------------------------------------------------------------------------------------------------------
# output


def _summary(output: dict[str, Any]) -> str:
    lines = [f"{name:<22} {value:.6g}" for name, value in output["results"].items()]
    for side in ("real", "fake", "videos", "reference"):
        if side in output:
            report = output[side]
            lines.append(f"{side:<22} {report['clips']} clips from {report['path']}")
            lines += [f"  skipped {item['video']}: {item['error']}" for item in report["skipped"]]
    if "protocol" in output:
        lines.append("protocol               " + ", ".join(f"{k}={v}" for k, v in output["protocol"].items()))
    if output.get("saved_statistics"):
        lines.append(f"real statistics saved  {output['saved_statistics']}")
    lines += [f"wrote {path}" for path in output.get("written", [])]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (``sys.argv[1:]`` when None) and return the exit code.

    Args:
        argv: the arguments after the program name.

    Returns:
        0 on success, 1 when the data or the weights do not allow the computation, 2 for a wrong command line
        (argparse exits with it).

    Example:
        >>> from torchmetrics_ext.cli import build_parser
        >>> build_parser().parse_args(["fvd", "real/", "fake/", "--start", "random"]).start
        'random'

    """
    args = build_parser().parse_args(argv)
    runners = {
        "fvd": _run_distance,
        "kvd": _run_distance,
        "video-metrics": _run_video_metrics,
        "plot-log": _run_plot_log,
    }
    try:
        output = runners[args.command](args)
    except (CommandError, ValueError, RuntimeError, OSError) as error:
        # the package's errors name the file or argument and what to do: one line, no traceback
        print(f"torchmetrics-ext {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_DATA_ERROR
    if getattr(args, "json", None) != "-":
        print(_summary(output))
    if getattr(args, "json", None):
        text = json.dumps(output, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The command line as a user runs it: a subprocess on folders of videos the test encodes, offline weights."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.optical_flow import raft_small

from tests.helpers.media import smooth_frames, write_frame_folder, write_video
from torchmetrics_ext.io import ClipSampling, find_videos, read_clip
from torchmetrics_ext.video import FrechetVideoDistance, TemporalFlickering


class Detector(nn.Module):
    """Stands for StyleGAN-V's scripted I3D: a fixed random projection of pooled clips to 400 features."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d((2, 4, 4))
        self.project = nn.Linear(96, 400)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        return self.project(self.pool(x).flatten(1))


def run(*args, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "torchmetrics_ext", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == expect, done.stderr
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Real videos (mp4 and webm), generated ones (frame folders), a scripted detector in place of I3D, a RAFT
    state dict and a scripted frame encoder: random weights saved by the test, nothing downloaded."""
    root = tmp_path_factory.mktemp("cli")
    (root / "real").mkdir()
    for i in range(3):
        codec = "libx264" if i % 2 == 0 else "libvpx-vp9"
        write_video(
            root / "real" / f"v{i}{'.mp4' if i % 2 == 0 else '.webm'}", smooth_frames(12, 32, 32, seed=i), codec
        )
    for i in range(3):
        write_frame_folder(root / "fake" / f"v{i}", (smooth_frames(12, 32, 32, seed=10 + i) * 0.8).astype(np.uint8))
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Detector()), root / "i3d.pt")  # loaded as StyleGAN-V's i3d_torchscript.pt
    torch.save(raft_small(weights=None).state_dict(), root / "raft_small.pth")
    torch.jit.save(torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())), root / "encoder.pt")
    return root


def _clips(path: Path, frames: int) -> torch.Tensor:
    return torch.stack([read_clip(s, ClipSampling(frames)) for s in find_videos(path)])


def test_fvd_matches_the_metric_and_saved_statistics_give_the_same_value(data, tmp_path):
    stats, out = tmp_path / "real_stats.pt", tmp_path / "fvd.json"
    common = ["--weights", data / "i3d.pt", "--frames", 9, "--batch-size", 2, "--no-progress"]
    done = run("fvd", data / "real", data / "fake", *common, "--save-stats", stats, "--json", out)
    result = json.loads(out.read_text())
    assert result["real"]["clips"] == result["fake"]["clips"] == 3 and result["protocol"]["frames"] == 9
    assert "fvd" in done.stdout and "3 clips from" in done.stdout
    metric = FrechetVideoDistance(weights=str(data / "i3d.pt"))
    metric.update(_clips(data / "real", 9), real=True)
    metric.update(_clips(data / "fake", 9), real=False)
    assert math.isclose(result["results"]["fvd"], float(metric.compute()), rel_tol=1e-4)
    again = json.loads(run("fvd", stats, data / "fake", *common, "--json", "-").stdout)
    assert math.isclose(again["results"]["fvd"], result["results"]["fvd"], rel_tol=1e-6)


def test_fvd_speed_options_reach_the_metric_and_keep_the_value(data):
    common = [data / "real", data / "fake", "--weights", data / "i3d.pt", "--frames", 9, "--no-progress", "--json", "-"]
    exact = json.loads(run("fvd", *common).stdout)
    fast = json.loads(run("fvd", *common, "--precision", "bf16-mixed", "--channels-last").stdout)
    assert exact["settings"]["extractor_options"]["precision"] == "32-true"
    assert fast["settings"]["extractor_options"] == {
        "precision": "bf16-mixed",
        "channels_last": True,
        "compile": False,
        "cuda_graphs": False,
        "cudnn_benchmark": True,
    }
    assert fast["results"]["fvd"] != exact["results"]["fvd"]  # bf16 did run
    assert math.isclose(fast["results"]["fvd"], exact["results"]["fvd"], rel_tol=2e-2)
    # the scripted detector cannot be compiled: said once, run eagerly in float32, the same value
    done = run("fvd", *common, "--compile", "--no-cudnn-benchmark")
    compiled = json.loads(done.stdout)
    assert compiled["settings"]["extractor_options"]["compile"] is True
    assert compiled["settings"]["extractor_options"]["cudnn_benchmark"] is False
    assert done.stderr.count("not applied to TorchScript") == 1
    assert math.isclose(compiled["results"]["fvd"], exact["results"]["fvd"], rel_tol=1e-6)
    assert "--precision" in run("fvd", "--help").stdout
    run("kvd", *common, "--precision", "fp8", expect=2)


def test_kvd_reports_mean_and_std_with_a_subset_size_that_fits(data):
    done = run(
        "kvd",
        data / "real",
        data / "fake",
        "--weights",
        data / "i3d.pt",
        "--frames",
        9,
        "--subsets",
        5,
        "--no-progress",
        "--json",
        "-",
    )
    result = json.loads(done.stdout)
    assert set(result["results"]) == {"kvd", "kvd_std"} and result["settings"]["subset_size"] == 3


def test_video_metrics_with_a_reference_offline(data, tmp_path):
    out = tmp_path / "vm.json"
    run(
        "video-metrics",
        data / "fake",
        "--reference",
        data / "real",
        "--flow",
        "raft_small",
        "--flow-weights",
        data / "raft_small.pth",
        "--flow-updates",
        1,
        "--encoder",
        data / "encoder.pt",
        "--frames",
        4,
        "--num-workers",
        2,
        "--no-progress",
        "--json",
        out,
    )
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"warping_error", "temporal_consistency", "flickering", "psnr", "ssim"}
    assert all(math.isfinite(v) for v in result["results"].values()) and result["videos"]["clips"] == 3
    flickering = TemporalFlickering()
    flickering.update(_clips(data / "fake", 4))
    assert math.isclose(result["results"]["flickering"], float(flickering.compute()), rel_tol=1e-6)


def test_a_bad_file_stops_the_run_or_is_skipped(data, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for video in (data / "real").iterdir():
        (real / video.name).write_bytes(video.read_bytes())
    (real / "broken.mp4").write_bytes(b"not a video at all")
    args = ["flickering", "--frames", 4, "--no-progress"]
    done = run("video-metrics", real, "--metrics", *args, expect=1)
    assert "broken.mp4: cannot decode" in done.stderr and "--skip-bad" in done.stderr and "Traceback" not in done.stderr
    result = json.loads(run("video-metrics", real, "--metrics", *args, "--skip-bad", "--json", "-").stdout)
    assert result["videos"]["clips"] == 3 and result["videos"]["skipped"][0]["video"].endswith("broken.mp4")
    short = run("video-metrics", data / "real", "--metrics", "flickering", "--frames", 40, "--no-progress", expect=1)
    assert "has 12 frames, the clip needs 40" in short.stderr


def test_usage_errors_and_the_console_script():
    assert "usage:" in run("fvd", expect=2).stderr
    assert "--metrics psnr needs reference videos" in run("video-metrics", ".", "--metrics", "psnr", expect=2).stderr
    assert "unknown metric(s) fid" in run("video-metrics", ".", "--metrics", "fid", expect=2).stderr
    script = Path(sys.executable).parent / "torchmetrics-ext"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "video-metrics" in done.stdout


def test_plot_log_writes_curves_and_names_a_missing_file(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train/loss,val/loss,val/fvd,health/plateau\n"
        "0,0,2.0,,,\n0,1,1.5,,,\n0,1,,1.4,300.0,\n1,2,1.2,,,1\n1,3,1.1,,,\n1,3,,1.2,250.0,\n"
    )
    done = run("plot-log", csv, "--out", tmp_path / "plots", "--monitor", "val/fvd")
    assert (tmp_path / "plots" / "loss.png").is_file() and (tmp_path / "plots" / "val_fvd.png").is_file()
    assert "wrote" in done.stdout
    assert "missing.csv" in run("plot-log", tmp_path / "missing.csv", "--out", tmp_path, expect=1).stderr

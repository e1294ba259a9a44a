"""The examples run end to end: a few training steps of the tiny language model already beat a uniform guess."""

import importlib.util
import math
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name: str):
    # The examples are scripts, not a package: load one from its file.
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tiny_lm_beats_a_uniform_guess(capsys, tmp_path):
    example = _load_example("train_tiny_lm")
    argv = ["--epochs", "2", "--steps-per-epoch", "15", "--batch-size", "16", "--context", "64"]
    metrics = example.main(argv + ["--accelerator", "cpu", "--no-progress-bar", "--checkpoint-dir", str(tmp_path)])

    assert math.isfinite(metrics["perplexity"])
    assert 1.0 < metrics["perplexity"] < metrics["vocab_size"]
    assert math.isclose(metrics["cross_entropy"], math.log(metrics["perplexity"]), rel_tol=1e-5)
    assert 0.0 < metrics["token_accuracy"] < 1.0
    assert metrics["best_perplexity"] <= metrics["perplexity"] + 1e-6
    assert metrics["best_path"].startswith(str(tmp_path)) and "val_perplexity=" in metrics["best_path"]
    printed = capsys.readouterr().out
    assert "epoch 1: val perplexity" in printed
    assert "final val perplexity" in printed
    assert "best checkpoint:" in printed


def test_train_tiny_video_runs_offline_with_every_video_metric(capsys, tmp_path):
    example = _load_example("train_tiny_video")
    argv = ["--random-weights", "--epochs", "1", "--train-videos", "32", "--val-videos", "4", "--frames", "9"]
    argv += ["--flow-updates", "2", "--accelerator", "cpu", "--no-progress-bar", "--checkpoint-dir", str(tmp_path)]
    metrics = example.main(argv)

    names = ["fvd", "kvd", "kvd_std", "warping_error", "temporal_consistency", "flickering", "psnr", "ssim"]
    assert all(math.isfinite(metrics[name]) for name in names), metrics
    assert metrics["fvd"] >= 0 and metrics["warping_error"] >= 0
    assert 0 < metrics["flickering"] <= 1 and -1 <= metrics["temporal_consistency"] <= 1
    assert 0 < metrics["ssim"] <= 1 and metrics["psnr"] > 5  # a predictor of a dark background is not random
    assert metrics["best_path"].startswith(str(tmp_path)) and "val_psnr=" in metrics["best_path"]
    printed = capsys.readouterr().out
    assert "NOT comparable" in printed and "epoch 0: fvd" in printed and "best checkpoint:" in printed

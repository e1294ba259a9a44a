"""VideoClipDataset and collate_clips: DataLoader workers, batches by shape, errors returned instead of raised."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader

import torchmetrics_ext.io.dataset as dataset_module
from tests.helpers.media import smooth_frames, write_frame_folder, write_video
from torchmetrics_ext.io import ClipSampling, VideoClipDataset, collate_clips, find_videos, read_clip


@pytest.fixture
def videos(tmp_path):
    """A folder of six videos: four good ones of two sizes, a broken file and one too short for 8 frames."""
    write_video(tmp_path / "a.mp4", smooth_frames(9, 16, 16, seed=1), "libx264")
    write_video(tmp_path / "b.webm", smooth_frames(9, 24, 32, seed=2), "libvpx-vp9")
    (tmp_path / "c.mp4").write_bytes(b"broken")
    write_frame_folder(tmp_path / "d", smooth_frames(10, 16, 16, seed=3))
    write_video(tmp_path / "e.avi", smooth_frames(5, 16, 16, seed=4), "mjpeg")
    np.save(tmp_path / "f.npy", smooth_frames(8, 24, 32, seed=5)[None])
    return tmp_path


def test_items_hold_the_clip_or_the_error(videos):
    sources = find_videos(videos)
    data = VideoClipDataset(sources, ClipSampling(8))
    assert len(data) == 6
    item = data[0]
    assert item["source"] == str(videos / "a.mp4") and item["error"] is None
    assert torch.equal(item["clip"], read_clip(sources[0], ClipSampling(8)))
    broken = data[2]
    assert broken["clip"] is None and broken["source"].endswith("c.mp4")
    assert broken["error"].startswith(f"{videos / 'c.mp4'}: cannot decode")
    short = data[4]
    assert short["clip"] is None and "e.avi: has 5 frames, the clip needs 8" in short["error"]


def test_workers_give_the_same_batches_grouped_by_shape(videos):
    data = VideoClipDataset(find_videos(videos), ClipSampling(8, start="random", seed=1))
    runs = [list(DataLoader(data, batch_size=6, num_workers=w, collate_fn=collate_clips)) for w in (0, 2)]
    for batches in runs:
        (batch,) = batches
        names = [s.rsplit("/", 1)[-1] for s in batch["sources"]]
        assert names == ["a.mp4", "b.webm", "c.mp4", "d", "e.avi", "f.npy[0]"]
        assert [tuple(c.shape) for c in batch["clips"]] == [(2, 8, 3, 16, 16), (2, 8, 3, 24, 32)]
        assert all(c.dtype == torch.uint8 for c in batch["clips"])
        assert batch["indices"] == [[0, 3], [1, 5]]
        errors = [(s.rsplit("/", 1)[-1], "has 5 frames" in e) for s, e in batch["errors"]]
        assert errors == [("c.mp4", False), ("e.avi", True)]
    for serial, parallel in zip(runs[0][0]["clips"], runs[1][0]["clips"]):
        assert torch.equal(serial, parallel)  # random starts do not depend on the worker
    smaller = list(DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate_clips))
    assert [b["indices"] for b in smaller] == [[[0, 3], [1]], [[1]]]  # positions within each batch


def test_size_resizes_every_clip_to_one_shape(videos):
    sources = find_videos(videos)
    data = VideoClipDataset(sources, ClipSampling(8), size=(16, 16))
    batch = collate_clips([data[i] for i in range(len(data))])
    assert [tuple(c.shape) for c in batch["clips"]] == [(4, 8, 3, 16, 16)] and batch["indices"] == [[0, 1, 3, 5]]
    original = read_clip(sources[1], ClipSampling(8))
    expected = F.interpolate(original.float(), size=(16, 16), mode="bilinear", align_corners=False, antialias=False)
    assert torch.equal(batch["clips"][0][1], expected.round().clamp(0, 255).to(torch.uint8))
    assert torch.equal(batch["clips"][0][0], read_clip(sources[0], ClipSampling(8)))  # the right size: unchanged
    upscaled = VideoClipDataset(sources[:1], ClipSampling(2), size=[20, 30])[0]["clip"]
    assert upscaled.shape == (2, 3, 20, 30) and upscaled.dtype == torch.uint8


def test_an_unexpected_failure_is_returned_too(videos, monkeypatch):
    def failing(source, sampling):
        raise MemoryError("out of memory")

    monkeypatch.setattr(dataset_module, "read_clip", failing)
    item = VideoClipDataset(find_videos(videos / "a.mp4"), ClipSampling(8))[0]
    assert item["clip"] is None and item["error"] == f"{videos / 'a.mp4'}: MemoryError: out of memory"


def test_collate_clips_without_good_clips_and_with_one_shape():
    bad = [{"source": f"{i}.mp4", "clip": None, "error": f"{i}.mp4: bad"} for i in range(2)]
    assert collate_clips(bad) == {
        "sources": ["0.mp4", "1.mp4"],
        "clips": [],
        "errors": [("0.mp4", "0.mp4: bad"), ("1.mp4", "1.mp4: bad")],
        "indices": [],
    }
    clips = [torch.full((2, 3, 4, 4), i, dtype=torch.uint8) for i in range(3)]
    batch = collate_clips([{"source": str(i), "clip": c, "error": None} for i, c in enumerate(clips)])
    assert len(batch["clips"]) == 1 and torch.equal(batch["clips"][0], torch.stack(clips))
    assert batch["errors"] == [] and batch["indices"] == [[0, 1, 2]]


_SIZE = "Argument `size` expected None or (height, width), two positive ints,"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampling": {"num_frames": 8}}, "Argument `sampling` expected a `ClipSampling` but got dict."),
        ({"size": (16,)}, f"{_SIZE} but got (16,)."),
        ({"size": (0, 16)}, f"{_SIZE} but got (0, 16)."),
        ({"size": (16.0, 16)}, f"{_SIZE} but got (16.0, 16)."),
    ],
)
def test_dataset_validates_its_arguments(kwargs, message):
    arguments = {"sources": [], "sampling": ClipSampling(), **kwargs}
    with pytest.raises(ValueError) as error:
        VideoClipDataset(**arguments)
    assert str(error.value) == message

"""Reading videos: PyAV codecs, frame folders, tensor files, clips, bad files, and the DataLoader path."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers.media import CODECS, smooth_frames, write_frame_folder, write_video
from torchmetrics_ext.io import (
    ClipSampling,
    VideoClipDataset,
    VideoReadError,
    collate_clips,
    find_videos,
    read_clip,
    read_video,
)


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("size", [(32, 48), (22, 36)])
def test_every_codec_decodes_to_the_frames_written(tmp_path, codec, size):
    frames = smooth_frames(10, *size, seed=1)
    path = write_video(tmp_path / f"clip{CODECS[codec][0]}", frames, codec)
    video = read_video(path)
    assert video.dtype == torch.uint8 and tuple(video.shape) == (10, *size, 3)
    error = np.abs(video.numpy().astype(float) - frames).mean()
    assert error < (25 if codec == "gif" else 12), error  # lossy codecs; a 256-colour palette for gif
    assert np.abs(video.numpy().astype(float) - frames[::-1]).mean() > 2 * error  # the frames are in order


def test_frame_folders_are_exact_and_naturally_sorted(tmp_path):
    frames = smooth_frames(12, 16, 20, seed=2)
    write_frame_folder(tmp_path / "videos" / "b", frames)
    write_frame_folder(tmp_path / "videos" / "a", frames[:11])
    sources = find_videos(tmp_path / "videos")
    assert [s.path.name for s in sources] == ["a", "b"] and {s.kind for s in sources} == {"frames"}
    assert torch.equal(read_video(sources[1]), torch.from_numpy(frames))  # frame_10 after frame_9: natural order
    assert [s.kind for s in find_videos(tmp_path / "videos" / "b")] == ["frames"]  # a folder of images is a video
    write_frame_folder(tmp_path / "jpg", frames[:3], pattern="img{}.jpg")
    assert np.abs(read_video(tmp_path / "jpg").numpy().astype(float) - frames[:3]).mean() < 8  # JPEG is lossy


def test_frame_folder_with_mixed_sizes_is_an_error(tmp_path):
    write_frame_folder(tmp_path / "v", smooth_frames(2, 8, 8))
    write_frame_folder(tmp_path / "v", smooth_frames(1, 8, 10), pattern="frame_9{}.png")
    with pytest.raises(VideoReadError, match="frames of different sizes"):
        read_video(tmp_path / "v")


@pytest.mark.parametrize("layout", ["THWC", "TCHW"])
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_tensor_files_in_both_layouts_float_and_grayscale(tmp_path, layout, suffix):
    videos = np.random.default_rng(3).integers(0, 256, (3, 5, 6, 7, 3), dtype=np.uint8)
    stored = videos if layout == "THWC" else videos.transpose(0, 1, 4, 2, 3)
    path = tmp_path / f"videos{suffix}"
    if suffix == ".npy":
        np.save(path, stored)
    elif suffix == ".npz":
        np.savez(path, videos=stored)
    else:
        torch.save({"videos": torch.from_numpy(stored.copy()).float() / 255}, path)  # float in [0, 1]
    sources = find_videos(path)
    assert [str(s) for s in sources] == [f"{path}[{i}]" for i in range(3)]
    for i, source in enumerate(sources):
        assert torch.equal(read_video(source), torch.from_numpy(videos[i]))
    gray = tmp_path / "gray.npy"
    np.save(gray, videos[:1, :, :, :, :1])
    assert torch.equal(read_video(gray)[..., 2], torch.from_numpy(videos[0, ..., 0]))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: (p / "random.mp4").write_bytes(np.random.default_rng(0).bytes(2000)), "random.mp4: cannot decode"),
        (lambda p: (p / "empty.mp4").write_bytes(b""), "empty.mp4: cannot decode"),
        (lambda p: (p / "text.webm").write_text("not a video"), "text.webm: cannot decode"),
        (lambda p: np.save(p / "ints.npy", np.zeros((1, 2, 4, 4, 3), dtype=np.int32)), "ints.npy.0.: expected uint8"),
        (lambda p: np.save(p / "shape.npy", np.zeros((1, 2, 4, 4, 5), dtype=np.uint8)), "expected 1 or 3 channels"),
        (lambda p: (p / "bad.pt").write_bytes(b"garbage"), "bad.pt: not a readable tensor file"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, make, reason):
    make(tmp_path)
    with pytest.raises(VideoReadError, match=reason):
        for source in find_videos(tmp_path):
            read_video(source)


def test_missing_paths_unknown_types_and_empty_folders(tmp_path):
    with pytest.raises(VideoReadError, match="missing: no such file or folder"):
        find_videos(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(VideoReadError, match=r"notes.txt: unknown file type .txt"):
        find_videos(tmp_path / "notes.txt")
    with pytest.raises(VideoReadError, match="no video found"):
        find_videos(tmp_path)


def test_clip_sampling(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(40, dtype=np.uint8).reshape(2, 20, 1, 1, 1))
    first, second = find_videos(tmp_path / "v.npy")
    assert read_clip(first, ClipSampling(4, stride=3, start=2))[:, 0, 0, 0].tolist() == [2, 5, 8, 11]
    assert read_clip(first, ClipSampling(None, stride=5))[:, 0, 0, 0].tolist() == [0, 5, 10, 15]
    random = ClipSampling(5, start="random", seed=7)
    starts = [read_clip(s, random)[0, 0, 0, 0].item() % 20 for s in (first, second)]
    assert starts == [read_clip(s, random)[0, 0, 0, 0].item() % 20 for s in (first, second)]  # reproducible
    seeds = {tuple(ClipSampling(5, start="random", seed=seed).frame_indices(20, "x")) for seed in range(20)}
    assert len(seeds) > 5 and all(0 <= idx[0] and idx[-1] < 20 for idx in seeds)
    with pytest.raises(VideoReadError, match=r"has 20 frames, the clip needs 31 = start 0 \+ \(16 - 1\) \* 2 \+ 1"):
        read_clip(first, ClipSampling(16, stride=2))
    for kwargs in ({"num_frames": 0}, {"stride": 0}, {"start": -1}, {"start": "middle"}):
        with pytest.raises(ValueError, match="Argument"):
            ClipSampling(**kwargs)


def test_a_clip_decodes_only_the_frames_it_needs(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", smooth_frames(60, 16, 16), "libx264")
    decoded = []
    import torchmetrics_ext.io.reading as reading

    original = reading._decode_video_file
    monkeypatch.setattr(reading, "_decode_video_file", lambda p, last: decoded.append(last) or original(p, last))
    clip = read_clip(path, ClipSampling(4, stride=2, start=3))
    assert clip.shape == (4, 3, 16, 16) and decoded == [9]


def test_data_loader_workers_give_the_same_clips_grouped_by_shape_and_errors_do_not_raise(tmp_path):
    write_video(tmp_path / "a.mp4", smooth_frames(9, 16, 16, seed=1), "libx264")
    write_video(tmp_path / "b.webm", smooth_frames(9, 24, 32, seed=2), "libvpx-vp9")
    write_video(tmp_path / "c.mp4", smooth_frames(9, 16, 16, seed=3), "libx264")
    (tmp_path / "d.mp4").write_bytes(b"broken")
    dataset = VideoClipDataset(find_videos(tmp_path), ClipSampling(8))
    batches = [list(DataLoader(dataset, 4, num_workers=w, collate_fn=collate_clips)) for w in (0, 2)]
    for batch in (batches[0][0], batches[1][0]):
        assert [tuple(c.shape) for c in batch["clips"]] == [(2, 8, 3, 16, 16), (1, 8, 3, 24, 32)]
        assert batch["indices"] == [[0, 2], [1]] and len(batch["errors"]) == 1
        assert batch["errors"][0][0].endswith("d.mp4") and "cannot decode" in batch["errors"][0][1]
    for serial, parallel in zip(batches[0][0]["clips"], batches[1][0]["clips"]):
        assert torch.equal(serial, parallel)
    resized = VideoClipDataset(find_videos(tmp_path / "b.webm"), ClipSampling(8), size=(16, 16))[0]["clip"]
    assert resized.shape == (8, 3, 16, 16) and resized.dtype == torch.uint8

"""find_videos and VideoSource: what an input holds, in which order, and the errors of an input without videos."""

from pathlib import Path

import numpy as np
import pytest
import torch

import torchmetrics_ext.io.tensor_files as tensor_files
from tests.helpers.media import smooth_frames, write_frame_folder, write_video
from torchmetrics_ext.io import (
    IMAGE_EXTENSIONS,
    TENSOR_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoReadError,
    VideoSource,
    find_videos,
)


def _names(sources):
    return [(s.path.name, s.kind, s.index) for s in sources]


def test_extensions():
    assert VIDEO_EXTENSIONS == (".mp4", ".webm", ".avi", ".gif", ".mov", ".mkv")
    assert IMAGE_EXTENSIONS == (".png", ".jpg", ".jpeg")
    assert TENSOR_EXTENSIONS == (".npy", ".npz", ".pt")


def test_video_source_str_and_validation(tmp_path):
    assert str(VideoSource(tmp_path / "a.mp4", "video")) == str(tmp_path / "a.mp4")
    assert str(VideoSource("v.npz", "tensor", 12)) == "v.npz[12]"
    assert VideoSource("a.mp4", "video") == VideoSource(Path("a.mp4"), "video")  # a str path becomes a Path
    assert hash(VideoSource("v.npy", "tensor", 1)) == hash(VideoSource(Path("v.npy"), "tensor", 1))  # frozen
    with pytest.raises(ValueError, match="Argument `kind` expected"):
        VideoSource("a.mp4", "movie")
    with pytest.raises(ValueError, match="Argument `index` expected an int >= 0"):
        VideoSource("v.npy", "tensor")
    with pytest.raises(ValueError, match="Argument `index` expected to be None"):
        VideoSource("a.mp4", "video", 0)


def test_a_folder_mixes_kinds_in_natural_order_and_ignores_the_rest(tmp_path):
    frames = smooth_frames(3, 8, 8)
    write_video(tmp_path / "v10.mp4", frames, "libx264")
    write_video(tmp_path / "v2.gif", frames, "gif")
    np.save(tmp_path / "v3.npy", np.zeros((2, 3, 4, 4, 3), dtype=np.uint8))
    write_frame_folder(tmp_path / "v1", frames)
    (tmp_path / "v4").mkdir()  # a folder without images is not a video
    write_video(tmp_path / "v4" / "deeper.mp4", frames, "libx264")  # non-recursive
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "cover.png").write_bytes(b"")  # images beside videos are not a video
    (tmp_path / ".hidden.mp4").write_bytes(b"")  # hidden files are ignored
    expected = [
        ("v1", "frames", None),
        ("v2.gif", "video", None),
        ("v3.npy", "tensor", 0),
        ("v3.npy", "tensor", 1),
        ("v10.mp4", "video", None),
    ]
    assert _names(find_videos(tmp_path)) == expected
    assert _names(find_videos(str(tmp_path))) == expected  # a str is a path too
    assert find_videos(tmp_path) == find_videos(tmp_path)  # deterministic


def test_frame_folders(tmp_path):
    for name in ("clip_10", "clip_9", "Clip_1"):
        write_frame_folder(tmp_path / "frames" / name, smooth_frames(2, 4, 4))
    assert [s.path.name for s in find_videos(tmp_path / "frames")] == ["Clip_1", "clip_9", "clip_10"]
    single = find_videos(tmp_path / "frames" / "clip_9")  # images directly in the folder: one video
    assert _names(single) == [("clip_9", "frames", None)]
    write_frame_folder(tmp_path / "jpeg", smooth_frames(2, 4, 4), pattern="{}.JPEG")  # case of the extension
    assert _names(find_videos(tmp_path / "jpeg")) == [("jpeg", "frames", None)]


def test_several_inputs_keep_their_order(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((1, 3, 4, 4, 3), dtype=np.uint8))
    write_video(tmp_path / "a.mp4", smooth_frames(3, 8, 8), "libx264")
    sources = find_videos([tmp_path / "b.npy", str(tmp_path / "a.mp4")])
    assert _names(sources) == [("b.npy", "tensor", 0), ("a.mp4", "video", None)]


@pytest.mark.parametrize("suffix", TENSOR_EXTENSIONS)
def test_tensor_files_list_one_source_per_video(tmp_path, suffix):
    videos = np.zeros((3, 2, 4, 5, 3), dtype=np.uint8)
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, videos)
    elif suffix == ".npz":
        np.savez_compressed(path, other=np.zeros(2), videos=videos)  # several arrays: the one named videos
    else:
        torch.save({"videos": torch.from_numpy(videos), "fps": 8}, path)
    assert [str(s) for s in find_videos(path)] == [f"{path}[{i}]" for i in range(3)]
    np.save(tmp_path / "one.npy", videos[0])  # a 4-d array is one video
    assert _names(find_videos(tmp_path / "one.npy")) == [("one.npy", "tensor", 0)]


def test_listing_an_npz_reads_its_header_only(tmp_path, monkeypatch):
    np.savez(tmp_path / "v.npz", np.zeros((4, 2, 3, 3, 3), dtype=np.uint8))  # one array, any name

    def no_load(path):
        raise AssertionError("the frames were loaded")

    monkeypatch.setattr(tensor_files, "load_videos", no_load)
    assert len(find_videos(tmp_path / "v.npz")) == 4


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: np.savez(p / "two.npz", a=np.zeros(1), b=np.zeros(1)), r"two.npz: an .npz file needs one array"),
        (lambda p: torch.save({"frames": torch.zeros(1)}, p / "d.pt"), r"d.pt: a .pt dict needs the key 'videos'"),
        (lambda p: torch.save([1, 2], p / "l.pt"), r"l.pt: expected an array of videos, but got list"),
        (lambda p: np.save(p / "flat.npy", np.zeros((4, 4, 3))), r"flat.npy: expected videos .* but got shape"),
        (lambda p: np.save(p / "none.npy", np.zeros((0, 2, 4, 4, 3))), r"none.npy: no video found"),
        (lambda p: (p / "junk.npz").write_bytes(b"junk"), r"junk.npz: not a readable tensor file"),
        (lambda p: (p / "junk.pt").write_bytes(b"junk"), r"junk.pt: not a readable tensor file"),
        (lambda p: (p / "junk.npy").write_bytes(b"junk"), r"junk.npy: not a readable tensor file"),
    ],
)
def test_unreadable_tensor_files(tmp_path, make, reason):
    make(tmp_path)
    with pytest.raises(VideoReadError, match=reason):
        find_videos(next(tmp_path.iterdir()))


def test_missing_paths_unknown_types_and_folders_without_videos(tmp_path):
    with pytest.raises(VideoReadError, match=r"missing.mp4: no such file or folder"):
        find_videos(tmp_path / "missing.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(VideoReadError, match=r"notes.txt: unknown file type .txt; expected a video file"):
        find_videos(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match=r"empty: no video found \(looked for video files .*\.mp4.*\.npy.*\.png"):
        find_videos(tmp_path / "empty")
    with pytest.raises(VideoReadError, match="no video found"):
        find_videos(tmp_path)  # only notes.txt
    write_video(tmp_path / "empty" / "a.mp4", smooth_frames(2, 8, 8), "libx264")
    with pytest.raises(VideoReadError, match="missing: no such file"):
        find_videos([tmp_path / "empty", tmp_path / "missing"])  # every input is checked

"""read_video and read_clip: PyAV codecs, frame folders, tensor files, clip sampling and bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

import torchmetrics_ext.io.reading as reading
from tests.helpers.media import smooth_frames, write_frame_folder, write_video
from torchmetrics_ext.io import ClipSampling, VideoReadError, find_videos, read_clip, read_video


def _mae(video: torch.Tensor, frames: np.ndarray) -> float:
    return float(np.abs(video.numpy().astype(np.float64) - frames).mean())


# ---------------------------------------------------------------------------------------------------------------
# video files


@pytest.mark.parametrize(
    ("codec", "suffix", "size", "tolerance"),
    [
        ("libx264", ".mp4", (32, 48), 10),
        ("libx264", ".mkv", (64, 64), 10),
        ("libx264", ".mov", (16, 24), 10),
        ("mpeg4", ".avi", (32, 48), 10),
        ("mpeg4", ".mp4", (35, 21), 15),  # odd sizes: chroma of the last row and column is shared
        ("libvpx-vp9", ".webm", (21, 35), 10),
        ("mjpeg", ".avi", (35, 21), 10),
        ("gif", ".gif", (32, 48), 25),  # a fixed 256-colour palette
    ],
)
def test_video_files_decode_to_the_frames_written(tmp_path, codec, suffix, size, tolerance):
    frames = smooth_frames(10, *size, seed=1)
    path = write_video(tmp_path / f"clip{suffix}", frames, codec)
    video = read_video(path)
    assert video.dtype == torch.uint8 and tuple(video.shape) == (10, *size, 3)
    error = _mae(video, frames)
    assert error < tolerance, error
    assert _mae(video, frames[::-1]) > 2 * error  # in order
    assert torch.equal(read_video(find_videos(path)[0]), video)  # a VideoSource or a path


def test_read_clip_of_a_video_file(tmp_path):
    path = write_video(tmp_path / "a.webm", smooth_frames(20, 16, 24, seed=2), "libvpx-vp9")  # no count in header
    video = read_video(path)
    clip = read_clip(path, ClipSampling(4, stride=3, start=2))
    assert clip.shape == (4, 3, 16, 24) and clip.dtype == torch.uint8 and clip.is_contiguous()
    assert torch.equal(clip, video[2:12:3].permute(0, 3, 1, 2))
    every = read_clip(path, ClipSampling(None, stride=6, start=1))
    assert torch.equal(every, video[1::6].permute(0, 3, 1, 2))  # frames 1, 7, 13, 19
    assert torch.equal(read_clip(path, ClipSampling(None)), video.permute(0, 3, 1, 2))
    sampling = ClipSampling(5, stride=2, start="random", seed=3)
    start = sampling.frame_indices(20, str(path))[0]
    assert torch.equal(read_clip(path, sampling), video[start : start + 9 : 2].permute(0, 3, 1, 2))
    with pytest.raises(VideoReadError, match=r"a.webm: has 20 frames, the clip needs 31 = start 0 \+ \(16 - 1\) \* 2"):
        read_clip(path, ClipSampling(16, stride=2))
    with pytest.raises(VideoReadError, match=r"a.webm: has 20 frames, the clip needs 21 = start 20 \+"):
        read_clip(path, ClipSampling(1, start=20))
    with pytest.raises(VideoReadError, match=r"a.webm: has 20 frames, the clip needs 25 = \(13 - 1\) \* 2 \+ 1"):
        read_clip(path, ClipSampling(13, stride=2, start="random"))
    with pytest.raises(VideoReadError, match=r"a.webm: has 20 frames, the clip starts at frame 20"):
        read_clip(path, ClipSampling(None, start=20))


def test_read_clip_decodes_no_further_than_its_last_frame(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", smooth_frames(60, 16, 16), "libx264")
    decoded = []
    original = reading._decode_video_file

    def counting(p, last):
        for frame in original(p, last):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(reading, "_decode_video_file", counting)
    clip = read_clip(path, ClipSampling(4, stride=2, start=3))
    assert clip.shape == (4, 3, 16, 16) and len(decoded) == 10  # frames 0..9 of 60
    decoded.clear()
    sampling = ClipSampling(3, start="random", seed=0)
    last = sampling.frame_indices(60, str(path))[-1]  # the length comes from the header: no decoding pass
    assert last < 59 and read_clip(path, sampling).shape == (3, 3, 16, 16) and len(decoded) == last + 1


def test_a_header_that_promises_too_many_frames_draws_again(tmp_path, monkeypatch):
    frames = smooth_frames(12, 16, 16, seed=4)
    path = write_video(tmp_path / "a.mp4", frames, "libx264")
    video = read_video(path).permute(0, 3, 1, 2)
    monkeypatch.setattr(reading, "_video_file_count", lambda p: 1000)
    for seed in range(8):
        clip = read_clip(path, ClipSampling(4, start="random", seed=seed))
        starts = [s for s in range(9) if torch.equal(video[s : s + 4], clip)]
        assert len(starts) == 1
    with pytest.raises(VideoReadError, match=r"has 12 frames, the clip needs 13"):
        read_clip(path, ClipSampling(13, start="random"))


# ---------------------------------------------------------------------------------------------------------------
# frame folders


def test_frame_folders_are_exact_and_naturally_sorted(tmp_path):
    frames = smooth_frames(12, 15, 20, seed=2)
    write_frame_folder(tmp_path / "v", frames)  # frame_0.png ... frame_11.png: frame_10 after frame_9
    assert torch.equal(read_video(tmp_path / "v"), torch.from_numpy(frames))
    clip = read_clip(tmp_path / "v", ClipSampling(3, stride=4, start=1))
    assert torch.equal(clip, torch.from_numpy(frames[[1, 5, 9]]).permute(0, 3, 1, 2))
    write_frame_folder(tmp_path / "jpg", frames[:3], pattern="img{}.jpg")
    assert _mae(read_video(tmp_path / "jpg"), frames[:3]) < 8  # JPEG is lossy


def test_grayscale_alpha_palette_and_16_bit_images_become_rgb(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (2, 5, 7), dtype=np.uint8)
    (tmp_path / "v").mkdir()
    Image.fromarray(gray[0]).save(tmp_path / "v" / "f0.png")  # L
    Image.fromarray(gray[1].astype(np.uint16) * 257).save(tmp_path / "v" / "f1.png")  # I;16
    Image.fromarray(np.dstack([gray[0]] * 3 + [gray[1]])).save(tmp_path / "v" / "f2.png")  # RGBA
    video = read_video(tmp_path / "v")
    assert video.shape == (3, 5, 7, 3)
    for i, expected in enumerate([gray[0], gray[1], gray[0]]):
        assert all(torch.equal(video[i, ..., c], torch.from_numpy(expected)) for c in range(3))


def test_frame_folder_with_mixed_sizes_or_a_bad_image_is_an_error(tmp_path):
    write_frame_folder(tmp_path / "v", smooth_frames(2, 8, 8))
    write_frame_folder(tmp_path / "v", smooth_frames(1, 8, 10), pattern="frame_9{}.png")
    with pytest.raises(VideoReadError, match=r"v: frames of different sizes \[\(8, 8\), \(8, 10\)\]"):
        read_video(tmp_path / "v")
    assert read_clip(tmp_path / "v", ClipSampling(2)).shape == (2, 3, 8, 8)  # the clip's frames agree
    write_frame_folder(tmp_path / "w", smooth_frames(2, 8, 8))
    (tmp_path / "w" / "frame_2.png").write_bytes(b"not a png")
    with pytest.raises(VideoReadError, match=r"frame_2.png: cannot decode the image"):
        read_video(tmp_path / "w")


# ---------------------------------------------------------------------------------------------------------------
# tensor files


def _save(path, array):
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".npz":
        np.savez(path, videos=array)
    else:
        torch.save(torch.from_numpy(np.ascontiguousarray(array)), path)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
@pytest.mark.parametrize("layout", ["THWC", "TCHW"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_tensor_files_in_both_layouts_uint8_and_float(tmp_path, suffix, layout, dtype):
    videos = np.random.default_rng(3).integers(0, 256, (3, 5, 6, 7, 3), dtype=np.uint8)
    stored = videos if layout == "THWC" else videos.transpose(0, 1, 4, 2, 3)
    stored = stored if dtype == "uint8" else stored.astype(np.float32) / 255
    _save(tmp_path / f"v{suffix}", stored)
    sources = find_videos(tmp_path / f"v{suffix}")
    for i, source in enumerate(sources):
        assert torch.equal(read_video(source), torch.from_numpy(videos[i]))  # exact, float via round(x * 255)
    clip = read_clip(sources[2], ClipSampling(2, stride=2, start=1))
    assert torch.equal(clip, torch.from_numpy(videos[2, [1, 3]]).permute(0, 3, 1, 2))


@pytest.mark.parametrize("layout", ["THW1", "T1HW"])
def test_grayscale_tensors_are_repeated_to_rgb(tmp_path, layout):
    gray = np.random.default_rng(4).integers(0, 256, (4, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "g.npy", gray[:, :, :, None] if layout == "THW1" else gray[:, None])
    video = read_video(tmp_path / "g.npy")
    assert video.shape == (4, 6, 5, 3) and all(torch.equal(video[..., c], torch.from_numpy(gray)) for c in range(3))


def test_half_precision_and_float64_round_like_float32(tmp_path):
    values = np.arange(256, dtype=np.float64) / 255
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        torch.save(torch.from_numpy(values).to(dtype).view(1, 1, 16, 16, 1), tmp_path / "h.pt")
        expected = (torch.from_numpy(values).to(dtype).float() * 255).round().to(torch.uint8).view(1, 16, 16)
        assert torch.equal(read_video(tmp_path / "h.pt")[..., 0], expected), dtype


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((1, 2, 4, 4, 3), dtype=np.int32), r"v.npy\[0\]: expected uint8 or floating point .* got int32"),
        (np.zeros((1, 2, 4, 4, 3), dtype=bool), r"expected uint8 or floating point frames in \[0, 1\], but got bool"),
        (np.zeros((1, 2, 4, 4, 5), dtype=np.uint8), r"v.npy\[0\]: expected 1 or 3 channels"),
        (np.full((1, 2, 4, 4, 3), 2.0), r"floating point frames must lie in \[0, 1\], but range over \[2.0, 2.0\]"),
        (np.full((1, 2, 4, 4, 3), np.nan), r"floating point frames must lie in \[0, 1\]"),
        (np.zeros((1, 0, 4, 4, 3), dtype=np.uint8), r"v.npy\[0\]: the video has 0 frames"),
    ],
)
def test_wrong_tensor_contents_are_errors(tmp_path, array, reason):
    np.save(tmp_path / "v.npy", array)
    with pytest.raises(VideoReadError, match=reason):
        read_video(find_videos(tmp_path / "v.npy")[0])


def test_a_tensor_file_changed_on_disk_is_read_again(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4, 4, 3), dtype=np.uint8))
    source = find_videos(tmp_path / "v.npy")[1]
    assert read_video(source).max() == 0
    np.save(tmp_path / "v.npy", np.full((2, 3, 4, 4, 3), 7, dtype=np.uint8))
    assert read_video(source).max() == 7


# ---------------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("random.mp4", np.random.default_rng(0).bytes(2000), r"random.mp4: cannot decode \(\w+"),
        ("empty.mp4", b"", r"empty.mp4: cannot decode \(\w+"),
        ("text.webm", b"this is not a video\n", r"text.webm: cannot decode \(\w+"),
        ("garbage.avi", b"RIFF" + bytes(200), r"garbage.avi: (cannot decode|no frame could be decoded)"),
    ],
)
def test_bad_video_files_name_the_file_and_the_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(VideoReadError, match=reason):
        read_video(tmp_path / name)
    with pytest.raises(VideoReadError, match=reason):
        read_clip(tmp_path / name, ClipSampling(2, start="random"))


def test_a_truncated_video_and_an_audio_only_file(tmp_path):
    import av

    path = write_video(tmp_path / "a.mp4", smooth_frames(12, 16, 16), "libx264")
    (tmp_path / "cut.mp4").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match="cut.mp4: "):
        read_video(tmp_path / "cut.mp4")
    with av.open(str(tmp_path / "sound.mkv"), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoReadError, match="sound.mkv: no video stream"):
        read_video(tmp_path / "sound.mkv")


def test_paths_that_are_not_one_video(tmp_path):
    with pytest.raises(VideoReadError, match=r"missing.mp4: no such file or folder"):
        read_video(tmp_path / "missing.mp4")
    np.save(tmp_path / "two.npy", np.zeros((2, 3, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(VideoReadError, match=r"two.npy: holds 2 videos"):
        read_video(tmp_path / "two.npy")
    write_frame_folder(tmp_path / "gone", smooth_frames(2, 4, 4))
    source = find_videos(tmp_path / "gone")[0]
    for image in (tmp_path / "gone").iterdir():
        image.unlink()
    (tmp_path / "gone").rmdir()
    with pytest.raises(VideoReadError, match=r"gone: cannot list the frame images"):
        read_video(source)


# ---------------------------------------------------------------------------------------------------------------
# clip sampling


def test_clip_sampling_fixed_stride_and_every_frame():
    assert ClipSampling().frame_indices(16) == list(range(16))
    assert ClipSampling(4, stride=3, start=2).frame_indices(12) == [2, 5, 8, 11]
    assert ClipSampling(4, stride=3, start=2).frame_indices(None) == [2, 5, 8, 11]  # the reader checks the length
    assert ClipSampling(None, stride=5).frame_indices(20) == [0, 5, 10, 15]
    assert ClipSampling(None, stride=5, start=3).frame_indices(20) == [3, 8, 13, 18]
    assert ClipSampling(None, start="random").frame_indices(3) == [0, 1, 2]
    assert ClipSampling(4, stride=2).span == 7 and ClipSampling(None).span is None
    message = r"^v.mp4: has 10 frames, the clip needs 31 = start 0 \+ \(16 - 1\) \* 2 \+ 1$"
    with pytest.raises(VideoReadError, match=message):
        ClipSampling(16, stride=2).frame_indices(10, "v.mp4")
    with pytest.raises(VideoReadError, match=r"^has 0 frames, the clip starts at frame 0$"):
        ClipSampling(None).frame_indices(0)


def test_random_starts_are_reproducible_differ_across_videos_and_fit():
    sampling = ClipSampling(5, stride=2, start="random", seed=7)
    starts = {name: sampling.frame_indices(40, name)[0] for name in (f"v{i}.mp4" for i in range(30))}
    assert starts == {name: sampling.frame_indices(40, name)[0] for name in reversed(list(starts))}  # order-free
    assert len(set(starts.values())) > 10 and all(0 <= s <= 40 - 9 for s in starts.values())
    other_seed = ClipSampling(5, stride=2, start="random", seed=8)
    assert [other_seed.frame_indices(40, n)[0] for n in starts] != list(starts.values())
    assert ClipSampling(5, stride=2, start="random").frame_indices(9, "x") == [0, 2, 4, 6, 8]  # one start fits
    assert sampling.frame_indices(40, "v0.mp4") == [starts["v0.mp4"] + 2 * i for i in range(5)]
    with pytest.raises(ValueError, match="needs the number of frames"):
        sampling.frame_indices(None, "x")


def test_random_starts_are_pinned():
    # str seeds go through SHA-512 in random.Random: the same in every process, whatever PYTHONHASHSEED
    assert ClipSampling(2, start="random").frame_indices(99, "a") == [9, 10]
    assert ClipSampling(16, start="random", seed=5).frame_indices(1000, "videos/x.mp4")[0] == 770


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, "Argument `num_frames` expected a positive int or None but got 0."),
        ({"num_frames": 2.0}, "Argument `num_frames` expected a positive int or None but got 2.0."),
        ({"num_frames": True}, "Argument `num_frames` expected a positive int or None but got True."),
        ({"stride": 0}, "Argument `stride` expected a positive int but got 0."),
        ({"stride": None}, "Argument `stride` expected a positive int but got None."),
        ({"start": -1}, "Argument `start` expected an int >= 0 or 'random' but got -1."),
        ({"start": "middle"}, "Argument `start` expected an int >= 0 or 'random' but got 'middle'."),
        ({"seed": "0"}, "Argument `seed` expected an int but got '0'."),
    ],
)
def test_clip_sampling_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        ClipSampling(**kwargs)

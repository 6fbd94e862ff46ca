"""Tests for msvq_codec.video: every input kind, exact resampling, clipping, writers, errors, discovery.

All videos are generated here; the real-data test reads /work/shared/data when present and skips otherwise.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from msvq_codec.errors import InputError, MsvqError, UsageError
from msvq_codec.video import (
    FOURCCS,
    find_inputs,
    is_frame_folder,
    iter_clips,
    iter_frames,
    output_kind,
    probe,
    resampled_count,
    resize_frame,
    write_video,
)
from msvq_codec.video.read import _declared_fps

REPO = Path(__file__).resolve().parents[1]
UCF = Path("/work/shared/data/ucf101/videos")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")


# --------------------------------------------------------------------------------------------- helpers


def make_frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` smooth, distinct RGB frames: moving gradients plus a moving bright square."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        t = k + seed
        r = 128 + 100 * np.sin((x + 2 * t) / w * 2 * np.pi)
        g = 128 + 100 * np.cos((y + t) / h * 2 * np.pi)
        b = np.full_like(x, (40 + 7 * t) % 200)
        frame = np.stack([r, g, b], -1)
        sx, sy = (3 * t) % (w - 12), (2 * t) % (h - 12)
        frame[sy:sy + 12, sx:sx + 12] = 250
        out[k] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def cv2_write(path: Path, frames: np.ndarray, fps: float, fourcc: str) -> Path:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def ffmpeg_write(path: Path, frames: np.ndarray, fps: float, args: list[str]) -> Path:
    h, w = frames.shape[1:3]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", *args, str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True)
    return path


def read_all(path, **kw) -> np.ndarray:
    return np.stack(list(iter_frames(path, **kw)))


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------------------------------ input kinds

CV2_KINDS = [(".avi", "MJPG"), (".mp4", "mp4v"), (".mkv", "FFV1"), (".mov", "mp4v")]
FFMPEG_KINDS = [
    (".webm", 16, ["-c:v", "libvpx", "-b:v", "2M"], 16.0),
    (".264", 16, ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "h264"], 25.0),  # raw: no rate stored
    (".h264", 16, ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "h264"], 25.0),
    (".mpg", 25, ["-c:v", "mpeg1video", "-q:v", "2"], 25.0),
    (".mpeg", 25, ["-c:v", "mpeg2video", "-q:v", "2"], 25.0),
    (".m4v", 16, ["-c:v", "libx264", "-pix_fmt", "yuv420p"], 16.0),
    (".flv", 16, ["-c:v", "flv1", "-q:v", "2"], 16.0),
    (".wmv", 16, ["-c:v", "wmv2", "-q:v", "2"], 16.0),
]


@pytest.mark.parametrize("suffix,fourcc", CV2_KINDS)
def test_opencv_written_containers(tmp_path, suffix, fourcc):
    frames = make_frames(20)
    path = cv2_write(tmp_path / f"clip{suffix}", frames, 16, fourcc)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.fps) == ("video", 64, 48, 16.0)
    got = read_all(path)
    assert got.shape == frames.shape and got.dtype == np.uint8
    assert mean_abs(got, frames) < 6
    clips = list(iter_clips(path))
    assert len(clips) == 1 and clips[0].shape == (32, 64, 64, 3)


@needs_ffmpeg
@pytest.mark.parametrize("suffix,rate,args,expected_fps", FFMPEG_KINDS, ids=[k[0] for k in FFMPEG_KINDS])
def test_ffmpeg_written_containers(tmp_path, suffix, rate, args, expected_fps):
    frames = make_frames(20)
    path = ffmpeg_write(tmp_path / f"clip{suffix}", frames, rate, args)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.fps) == ("video", 64, 48, expected_fps)
    got = read_all(path)
    assert got.shape == frames.shape
    assert mean_abs(got, frames) < 8
    stream = iter_clips(path)
    clips = list(stream)
    assert stream.frame_count == resampled_count(20, expected_fps) == math.ceil(20 * 16 / expected_fps)
    assert len(clips) == 1


def test_frame_folder_png_natural_order(tmp_path):
    frames = make_frames(12)
    folder = tmp_path / "seq"
    folder.mkdir()
    for k, f in enumerate(frames):  # unpadded numbers: 'frame_10' must follow 'frame_9'
        cv2.imwrite(str(folder / f"frame_{k + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    (folder / "cover.png").write_bytes((folder / "frame_1.png").read_bytes())  # no number: ignored
    assert is_frame_folder(folder)
    info = probe(folder)
    assert (info.kind, info.width, info.height, info.fps, info.declared_frames) == ("frames", 64, 48, 25.0, 12)
    np.testing.assert_array_equal(read_all(folder), frames)
    assert probe(folder, input_fps=16).fps == 16.0


def test_frame_folder_jpg_gray_16bit_mixed_sizes(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    rgb = make_frames(2)
    cv2.imwrite(str(folder / "0001.jpg"), cv2.cvtColor(rgb[0], cv2.COLOR_RGB2BGR))
    gray = rgb[1, :, :, 1]
    cv2.imwrite(str(folder / "0002.png"), gray)
    gray16 = (np.arange(40 * 30, dtype=np.uint32).reshape(30, 40) * 50).astype(np.uint16)
    cv2.imwrite(str(folder / "0003.png"), gray16)
    rgb16 = rgb[0].astype(np.uint16) * 257
    cv2.imwrite(str(folder / "0004.tif"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    got = list(iter_frames(folder))
    assert [f.shape for f in got] == [(48, 64, 3), (48, 64, 3), (30, 40, 3), (48, 64, 3)]
    assert all(f.dtype == np.uint8 for f in got)
    assert mean_abs(got[0], rgb[0]) < 4  # JPEG
    np.testing.assert_array_equal(got[1], np.repeat(gray[:, :, None], 3, -1))
    np.testing.assert_array_equal(got[2][:, :, 0], np.round(gray16 / 257).astype(np.uint8))
    np.testing.assert_array_equal(got[3], rgb[0])
    clips = list(iter_clips(folder, input_fps=16))
    assert len(clips) == 1 and clips[0].shape == (32, 64, 64, 3)


def test_npy_gray_and_rgb(tmp_path):
    gray = make_frames(5)[..., 0]
    np.save(tmp_path / "gray.npy", gray)
    got = read_all(tmp_path / "gray.npy")
    np.testing.assert_array_equal(got, np.repeat(gray[..., None], 3, -1))
    info = probe(tmp_path / "gray.npy")
    assert (info.kind, info.width, info.height, info.fps, info.declared_frames) == ("npy", 64, 48, 16.0, 5)


# ----------------------------------------------------------------------------------- resampling, clips


@pytest.mark.parametrize("n", [1, 31, 32, 33, 100])
def test_16fps_npy_is_exact(tmp_path, n):
    frames = make_frames(n, 64, 64)
    np.save(tmp_path / "x.npy", frames)
    stream = iter_clips(tmp_path / "x.npy")
    clips = list(stream)
    assert stream.frame_count == n
    assert len(clips) == math.ceil(n / 32)
    assert all(c.shape == (32, 64, 64, 3) and c.dtype == np.uint8 for c in clips)
    flat = np.concatenate(clips)
    np.testing.assert_array_equal(flat[:n], frames)  # 64x64 at 16 fps: untouched
    assert (flat[n:] == frames[-1]).all()  # padding repeats the last real frame


def test_clip_stream_reiterates_and_hands_out_fresh_arrays(tmp_path):
    np.save(tmp_path / "x.npy", make_frames(70, 64, 64))
    stream = iter_clips(tmp_path / "x.npy")
    first = list(stream)
    assert len({id(c) for c in first}) == 3
    second = list(stream)
    assert stream.frame_count == 70
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("src_fps,n,expected", [(25, 100, 64), (30, 100, 54), (8, 10, 20), (30000 / 1001, 107, 58)])
def test_resampling_by_timestamps(tmp_path, src_fps, n, expected):
    frames = make_frames(n, 64, 64)
    np.save(tmp_path / "x.npy", frames)
    stream = iter_clips(tmp_path / "x.npy", input_fps=src_fps)
    flat = np.concatenate(list(stream))
    assert stream.frame_count == expected == resampled_count(n, src_fps)
    for k in range(expected):  # output frame k at time k/16 shows source frame floor(k * src / 16)
        src = min(int(k * src_fps / 16 + 1e-9), n - 1)
        np.testing.assert_array_equal(flat[k], frames[src])


def test_25fps_video_gives_64_frames(tmp_path):
    path = cv2_write(tmp_path / "v25.avi", make_frames(100), 25, "MJPG")
    stream = iter_clips(path)
    assert stream.info.fps == 25.0 and stream.info.declared_frames == 100
    assert len(list(stream)) == 2 and stream.frame_count == 64


def test_30fps_video(tmp_path):
    path = cv2_write(tmp_path / "v30.mp4", make_frames(45), 30, "mp4v")
    stream = iter_clips(path, size=32, clip_frames=16)
    clips = list(stream)
    assert stream.frame_count == math.ceil(45 * 16 / 30) == 24
    assert len(clips) == 2 and clips[0].shape == (16, 32, 32, 3)


def test_absurd_or_missing_fps_means_25():
    for bad in (0.0, float("nan"), -5.0, 1000.0, 90000.0):
        assert _declared_fps(bad, ".mp4") == 25.0
    assert _declared_fps(29.97, ".264") == 25.0
    assert _declared_fps(59.94, ".MKV") == 59.94


@needs_ffmpeg
def test_absurd_container_fps(tmp_path):
    path = ffmpeg_write(tmp_path / "fast.mkv", make_frames(10), 2000, ["-c:v", "ffv1"])
    assert probe(path).fps == 25.0
    assert probe(path, input_fps=50).fps == 50.0


def test_resize_frame_antialiases_big_downscale():
    stripes = np.zeros((1080, 1920, 3), np.uint8)
    stripes[:, ::2] = 255  # a 1-pixel pattern: must average to mid-gray, not alias into bands
    small = resize_frame(stripes, 64, 64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    assert abs(float(small.mean()) - 127.5) < 3 and small.std() < 3
    frame = make_frames(1, 64, 64)[0]
    assert resize_frame(frame, 64, 64) is frame
    assert resize_frame(frame, 200, 100).shape == (100, 200, 3)  # upscaling: plain bicubic


def test_non_square_is_squashed(tmp_path):
    np.save(tmp_path / "wide.npy", make_frames(3, 24, 160))
    clip = next(iter(iter_clips(tmp_path / "wide.npy")))
    assert clip.shape == (32, 64, 64, 3)


# ---------------------------------------------------------------------------------------------- writers


def test_write_npy_exact(tmp_path):
    frames = make_frames(33)
    assert write_video(tmp_path / "out.npy", iter(frames), fps=16) == 33
    loaded = np.load(tmp_path / "out.npy", allow_pickle=False)
    np.testing.assert_array_equal(loaded, frames)
    np.testing.assert_array_equal(read_all(tmp_path / "out.npy"), frames)
    assert write_video(tmp_path / "one.npy", frames[:1], fps=16) == 1
    assert np.load(tmp_path / "one.npy").shape == (1, 48, 64, 3)


def test_write_png_folder_exact(tmp_path):
    frames = make_frames(12)
    out = tmp_path / "pngs"
    assert output_kind(out) == "frames"
    assert write_video(out, frames, fps=16) == 12
    assert sorted(p.name for p in out.iterdir())[:2] == ["000000.png", "000001.png"]
    np.testing.assert_array_equal(read_all(out), frames)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_write_video_round_trip(tmp_path, suffix):
    frames = make_frames(40, 64, 64)
    out = tmp_path / f"out{suffix}"
    assert output_kind(out) == suffix
    assert write_video(out, (f for f in frames), fps=16) == 40
    info = probe(out)
    assert (info.width, info.height, info.fps) == (64, 64, 16.0)
    got = read_all(out)
    assert got.shape == frames.shape
    assert mean_abs(got, frames) < (0.01 if FOURCCS[suffix][0] == "FFV1" else 6)


@pytest.mark.parametrize("suffix", [".mp4", ".npy", ""])
def test_write_upscales_to_size(tmp_path, suffix):
    frames = make_frames(5, 64, 64)
    out = tmp_path / f"big{suffix}"
    assert write_video(out, frames, fps=16, size=(160, 120)) == 5
    got = read_all(out)
    assert got.shape == (5, 120, 160, 3)
    back = np.stack([resize_frame(f, 64, 64) for f in got])
    assert mean_abs(back, frames) < 8


def test_write_odd_size_video_rounds_to_even(tmp_path):
    frames = make_frames(4, 47, 63)
    write_video(tmp_path / "odd.avi", frames, fps=16)
    info = probe(tmp_path / "odd.avi")
    assert (info.width, info.height) == (64, 48)


def test_write_rejects_bad_frames_and_args(tmp_path):
    frames = make_frames(3)
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.npy", [frames[0], frames[0, :10]], fps=16)
    with pytest.raises(ValueError):
        write_video(tmp_path / "b.npy", [frames[0].astype(np.float32)], fps=16)
    for empty in ("c.mp4", "c.npy", "c_pngs"):
        with pytest.raises(ValueError, match="no frames"):
            write_video(tmp_path / empty, [], fps=16)
    with pytest.raises(UsageError):
        write_video(tmp_path / "d.mp4", frames, fps=0)
    with pytest.raises(UsageError):
        write_video(tmp_path / "e.mp4", frames, fps=16, size=(0, 10))
    with pytest.raises(UsageError):
        write_video(tmp_path / "missing" / "f.mp4", frames, fps=16)


def ffprobe_stream(path: Path) -> dict[str, str]:
    text = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", str(path)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def noise_frames(n: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(n * h * w).integers(0, 256, (n, h, w, 3), np.uint8)


@pytest.fixture
def no_ffmpeg(monkeypatch):
    """The writers as they behave where ffmpeg is not installed."""
    from msvq_codec.video import write

    monkeypatch.setattr(write, "ffmpeg_encoders", lambda: frozenset())
    monkeypatch.setattr(write, "_noted", set())


@needs_ffmpeg
def test_mp4_is_browser_h264(tmp_path):
    frames = make_frames(40, 64, 64)
    out = tmp_path / "out.mp4"
    assert write_video(out, frames, fps=16) == 40
    stream = ffprobe_stream(out)
    assert (stream["codec_name"], stream["pix_fmt"], stream["profile"]) == ("h264", "yuv420p", "High")
    assert (stream["color_space"], stream["color_range"]) == ("smpte170m", "tv")
    assert out.read_bytes().find(b"moov") < out.read_bytes().find(b"mdat")  # +faststart: playable while loading
    got = read_all(out)
    mse = ((got.astype(float) - frames) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 30


@needs_ffmpeg
@pytest.mark.parametrize("h,w", [(64, 64), (47, 63), (1, 1), (2, 3), (240, 320)])
def test_mkv_is_lossless_at_any_size(tmp_path, h, w):
    frames = noise_frames(5, h, w)
    out = tmp_path / "out.mkv"
    assert write_video(out, frames, fps=16) == 5
    assert ffprobe_stream(out)["codec_name"] == "ffv1"
    np.testing.assert_array_equal(read_all(out), frames)


def test_mkv_without_ffmpeg_is_lossless_or_refused(tmp_path, no_ffmpeg, monkeypatch):
    frames = noise_frames(5, 48, 64)
    assert write_video(tmp_path / "even.mkv", frames, fps=16) == 5  # OpenCV's FFV1 writer
    np.testing.assert_array_equal(read_all(tmp_path / "even.mkv"), frames)
    with pytest.raises(UsageError, match="losslessly"):  # OpenCV would crop it to 62x46
        write_video(tmp_path / "odd.mkv", noise_frames(5, 47, 63), fps=16)
    assert not (tmp_path / "odd.mkv").exists()

    class NoWriter:  # an OpenCV built without FFV1
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", NoWriter)
    with pytest.raises(UsageError, match="lossless .mkv"):
        write_video(tmp_path / "none.mkv", frames, fps=16)
    assert not (tmp_path / "none.mkv").exists()


def test_mp4_without_ffmpeg_falls_back_with_a_note(tmp_path, no_ffmpeg, capfd):
    frames = make_frames(8, 64, 64)
    assert write_video(tmp_path / "a.mp4", frames, fps=16) == 8
    assert write_video(tmp_path / "b.mp4", frames, fps=16) == 8
    note = capfd.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "mp4v" in note[0] and "ffmpeg" in note[0]  # once per process, one line
    assert read_all(tmp_path / "a.mp4").shape == frames.shape


@needs_ffmpeg
def test_mp4_of_an_odd_size_rounds_up_to_even(tmp_path):
    frames = make_frames(4, 47, 63)
    assert write_video(tmp_path / "odd.mp4", frames, fps=16) == 4
    stream = ffprobe_stream(tmp_path / "odd.mp4")
    assert (int(stream["width"]), int(stream["height"])) == (64, 48) and stream["pix_fmt"] == "yuv420p"


@needs_ffmpeg
def test_ffmpeg_failure_is_one_line(tmp_path, monkeypatch):
    from msvq_codec.video import write

    monkeypatch.setattr(write, "_h264_args", lambda: ["-c:v", "no-such-encoder"])
    with pytest.raises(MsvqError, match=r"ffmpeg could not write bad\.mp4 \(exit \d+\): .+") as info:
        write_video(tmp_path / "bad.mp4", make_frames(4), fps=16)
    assert "\n" not in str(info.value)


@needs_ffmpeg
def test_ffmpeg_stops_when_the_frames_do(tmp_path, monkeypatch):
    from msvq_codec.video import write

    started = []
    real = subprocess.Popen
    monkeypatch.setattr(write.subprocess, "Popen", lambda *a, **k: started.append(real(*a, **k)) or started[-1])

    def interrupted():
        yield from make_frames(3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "cut.mp4", interrupted(), fps=16)
    assert len(started) == 1 and started[0].poll() is not None  # no ffmpeg left running


def test_output_kind(tmp_path):
    assert output_kind("x.MP4") == ".mp4"
    assert output_kind(tmp_path / "x.npy") == ".npy"
    for bad in ("x.gif", "x.txt", "x.webm", "x.msvq"):
        with pytest.raises(UsageError, match=r"\.mp4, \.avi, \.mkv, \.npy"):
            output_kind(bad)
    (tmp_path / "plainfile").write_text("x")
    with pytest.raises(UsageError):
        output_kind(tmp_path / "plainfile")


# ----------------------------------------------------------------------------------------------- errors


def test_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "zero.avi").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        probe(tmp_path / "zero.avi")
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n" * 10)
    with pytest.raises(InputError, match="not a video I can decode"):
        iter_clips(tmp_path / "text.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no numbered images"):
        probe(tmp_path / "empty")
    np.save(tmp_path / "float.npy", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match="uint8"):
        probe(tmp_path / "float.npy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(InputError, match="T x H x W"):
        probe(tmp_path / "shape.npy")
    np.save(tmp_path / "none.npy", np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="no frames"):
        probe(tmp_path / "none.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError):
        probe(tmp_path / "obj.npy")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError):
        probe(tmp_path / "broken.npy")


def test_zero_frame_video(tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "nothing.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 16, (64, 48))
    writer.release()
    with pytest.raises(InputError):
        iter_clips(tmp_path / "nothing.avi")


def test_usage_errors(tmp_path):
    np.save(tmp_path / "x.npy", make_frames(2))
    for kw in ({"fps": 0}, {"fps": float("nan")}, {"size": 0}, {"clip_frames": -1}, {"input_fps": -3}):
        with pytest.raises(UsageError):
            iter_clips(tmp_path / "x.npy", **kw)


# ------------------------------------------------------------------------------------------- discovery


def test_find_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    cv2_write(tmp_path / "a" / "one.avi", make_frames(2), 16, "MJPG")
    cv2_write(tmp_path / "a" / "b" / "two.MP4", make_frames(2), 16, "mp4v")
    np.save(tmp_path / "three.npy", make_frames(2))
    seq = tmp_path / "a" / "seq"
    seq.mkdir()
    for k in range(3):
        cv2.imwrite(str(seq / f"{k:05d}.jpg"), make_frames(1)[0])
    (seq / "inner.mp4").write_bytes(b"")  # inside a frame folder: not an input of its own
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "a" / "b" / "photo_without_number.png").write_bytes(b"")
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    (tmp_path / "emptydir").mkdir()
    found = find_inputs(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["a/b/two.MP4", "a/one.avi", "a/seq", "three.npy"]
    assert not is_frame_folder(tmp_path / "a") and not is_frame_folder(tmp_path / "three.npy")
    assert find_inputs(seq) == [seq]
    assert find_inputs(tmp_path / "three.npy") == [tmp_path / "three.npy"]
    with pytest.raises(InputError):
        find_inputs(tmp_path / "nope")


# ----------------------------------------------------------------------------------- sample, real data


def test_make_sample_is_deterministic(tmp_path):
    script = REPO / "examples" / "make_sample.py"
    for name in ("a.avi", "b.avi"):
        subprocess.run([sys.executable, str(script), str(tmp_path / name), "--seconds", "1"], check=True)
    assert (tmp_path / "a.avi").read_bytes() == (tmp_path / "b.avi").read_bytes()
    info = probe(tmp_path / "a.avi")
    assert (info.width, info.height, info.fps) == (320, 240, 25.0)
    assert sum(1 for _ in iter_frames(tmp_path / "a.avi")) == 25


@pytest.mark.skipif(not UCF.is_dir(), reason="no real UCF101 clips here")
def test_real_ucf101_clip():
    path = sorted(UCF.glob("*.avi"))[0]
    n = sum(1 for _ in iter_frames(path))
    stream = iter_clips(path)
    clips = list(stream)
    assert stream.info.kind == "video" and (stream.info.width, stream.info.height) == (320, 240)
    assert stream.frame_count == math.ceil(n * 16 / stream.info.fps - 1e-9)
    assert len(clips) == math.ceil(stream.frame_count / 32)
    assert all(c.shape == (32, 64, 64, 3) and c.dtype == np.uint8 for c in clips)
    assert 20 < float(clips[0].mean()) < 235  # a real picture, not a blank

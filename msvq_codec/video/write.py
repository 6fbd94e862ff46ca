"""Writing RGB frames out: a video file (.mp4, .avi, .mkv), a .npy array, or a folder of PNGs.

What each output keeps:

* ``.npy`` and PNG folders: every frame exactly, at any size (lossless).
* ``.mkv``: FFV1, lossless RGB, or nothing. Written by ffmpeg when it is on PATH (any size), else by OpenCV's
  FFV1 writer (even sizes only: it would crop an odd one). When neither can write it losslessly the write is
  refused (UsageError) rather than falling back to a lossy codec.
* ``.mp4``: H.264 (libx264, yuv420p, CRF ``H264_CRF``, BT.601 tagged, ``+faststart``), which browsers play,
  written by ffmpeg through a pipe of raw frames when ffmpeg with libx264 is on PATH. Otherwise OpenCV's MPEG-4
  Part 2 (``mp4v``, which browsers do not play), with a one-line note on stderr. Lossy either way: 4:2:0
  chroma alone limits a 64x64 output to about 39 dB against the exact frames.
* ``.avi``: Motion JPEG through OpenCV (lossy).
* ``.y4m``, and the path ``-`` (standard output): YUV4MPEG2 (:mod:`.y4m`), 8-bit 4:2:0 (``C420jpeg``),
  BT.601 limited range, which ffmpeg (``-f yuv4mpegpipe -i -``), x264 and players read. Lossy by the 4:2:0
  chroma and the conversion to YCbCr. Standard output is written frame by frame.

The lossy codecs want even frame sizes, so for them an odd width or height is rounded up to the next even
number (bicubic) before writing; ``.npy``, PNG folders and ffmpeg's ``.mkv`` keep every size exactly.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from msvq_codec.errors import MsvqError, UsageError
from msvq_codec.outputs import is_stdio, stdout
from msvq_codec.video.read import resize_frame
from msvq_codec.video.y4m import write_y4m, y4m_rate

FRAMES = "frames"  # the kind of a path with no suffix: a folder of numbered PNGs
OUTPUT_KINDS = (".mp4", ".avi", ".mkv", ".npy", ".y4m", FRAMES)
FOURCCS = {".mp4": ("mp4v",), ".avi": ("MJPG",), ".mkv": ("FFV1",)}  # OpenCV's codec per kind (no fallbacks)
LOSSLESS_KINDS = (".mkv", ".npy", FRAMES)

# H.264 for .mp4, chosen with benchmarks/output-quality/mp4_quality.py (figures in its folder's README.md):
# against the exact decode, CRF 10 is within about 2 dB of what 4:2:0 chroma itself allows; "veryfast" costs 0.4-0.7 dB against
# "medium" and is 2.5x faster, which matters for --size source. CRF 0 would switch x264 to the
# lossless High 4:4:4 Predictive profile, which browsers do not play, so the CRF stays at 1 or more.
H264_CRF = 10
H264_PRESET = "veryfast"
H264_PIX_FMT = "yuv420p"
# RGB -> YCbCr as swscale does by default (BT.601, limited range), and tagged so: players that honour the
# tags and readers that assume BT.601 for untagged SD video (OpenCV) both convert back the same way.
H264_COLOUR = ["-colorspace", "smpte170m", "-color_primaries", "smpte170m", "-color_trc", "smpte170m",
               "-color_range", "tv"]  # fmt: skip

_ALLOWED = (".mp4, .avi, .mkv, .npy, .y4m, - (YUV4MPEG2 on standard output), or a folder of PNGs (a path with "
            "no suffix)")
_noted: set[str] = set()  # fallback notes already printed by this process


def output_kind(path) -> str:
    """The kind of output ``path`` asks for: one of ``OUTPUT_KINDS`` (``"frames"`` for a PNG folder; ``.y4m``
    for ``-``, standard output)."""
    if is_stdio(path):
        return ".y4m"
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in FOURCCS or suffix in (".npy", ".y4m"):
        return suffix
    if not suffix and p.name:
        if p.is_file():
            raise UsageError(f"{p} is a file, not a folder for PNG frames")
        return FRAMES
    raise UsageError(f"cannot write {suffix or repr(str(path))!s} output: use {_ALLOWED}")


def write_video(path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int] | None = None) -> int:
    """Write RGB uint8 ``[h, w, 3]`` frames to ``path``; return how many were written.

    ``size=(W, H)`` resizes every frame (bicubic) before writing; otherwise all frames must share the
    first frame's size. Writes exactly to ``path``; a PNG folder (``000000.png`` ...) is created if need be.
    ValueError for no frames or a malformed frame; UsageError for a bad path, fps or size, or for a lossless
    ``.mkv`` that cannot be written here; MsvqError (one line) when the encoder fails.
    """
    kind = output_kind(path)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"fps must be a positive number, not {fps!r}")
    if size is not None:
        if len(size) != 2 or not all(_positive_int(s) for s in size):
            raise UsageError(f"size must be (width, height) in positive integers, not {size!r}")
        size = (int(size[0]), int(size[1]))
    prepared = _prepare(frames, size)
    if is_stdio(path):
        with stdout() as stream:
            return write_y4m(stream, prepared, y4m_rate(fps))
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output folder does not exist: {parent}")
    if kind == ".y4m":
        with open(p, "wb") as stream:
            return write_y4m(stream, prepared, y4m_rate(fps))
    if kind == FRAMES:
        return _write_pngs(p, prepared)
    if kind == ".npy":
        return _write_npy(p, prepared)
    if kind == ".mp4":
        if "libx264" in ffmpeg_encoders():
            return _write_ffmpeg(p, prepared, float(fps), _h264_args(), even=True)
        _note("mp4", f"note: ffmpeg with libx264 is not on PATH, so {p.name} is MPEG-4 Part 2 (mp4v), which "
                     "browsers do not play; install ffmpeg for H.264")  # fmt: skip
    if kind == ".mkv":
        if "ffv1" in ffmpeg_encoders():
            # FFV1 version 1, one slice: "-level 3" (sliced) silently wrote black for tiny frames (ffmpeg 5.1)
            return _write_ffmpeg(p, prepared, float(fps), ["-c:v", "ffv1", "-pix_fmt", "bgr0"])
        return _write_cv2(p, kind, prepared, float(fps), "FFV1", odd="refuse")
    return _write_cv2(p, kind, prepared, float(fps), FOURCCS[kind][0])


def _positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _note(key: str, message: str) -> None:
    """A one-line note on stderr, once per process."""
    if key not in _noted:
        _noted.add(key)
        print(message, file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=None)
def ffmpeg_encoders() -> frozenset[str]:
    """The video encoders of the ``ffmpeg`` on PATH (empty when there is none or it does not run)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return frozenset()
    try:
        listing = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-encoders"],
            capture_output=True, timeout=30, check=True,
        ).stdout.decode(errors="replace")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    rows = listing.split(" ------\n", 1)[-1].splitlines()  # the legend comes first, then one encoder a line
    return frozenset(row.split()[1] for row in rows if len(row.split()) > 1 and row.split()[0].startswith("V"))


def _h264_args() -> list[str]:
    return ["-c:v", "libx264", "-preset", H264_PRESET, "-crf", str(H264_CRF), "-pix_fmt", H264_PIX_FMT,
            *H264_COLOUR, "-movflags", "+faststart"]  # fmt: skip


def _prepare(frames: Iterable[np.ndarray], size: tuple[int, int] | None):
    """Check each frame and resize it to ``size``; with no size, every frame must match the first."""
    fixed = size is None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {i}: expected uint8 [h, w, 3] RGB, got {frame.dtype} {frame.shape}")
        if size is None:
            size = (frame.shape[1], frame.shape[0])
        elif fixed and (frame.shape[1], frame.shape[0]) != size:
            raise ValueError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, the first was {size[0]}x{size[1]}")
        yield resize_frame(frame, *size)


def _write_pngs(folder: Path, frames) -> int:
    n = 0
    for n, frame in enumerate(frames, 1):
        if n == 1:
            folder.mkdir(exist_ok=True)
        ok, data = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode PNG frame {n - 1}")
        data.tofile(folder / f"{n - 1:06d}.png")
    if n == 0:
        raise ValueError(f"no frames to write to {folder}")
    return n


def _write_npy(path: Path, frames) -> int:
    """Stream frames into a .npy whose header is rewritten, at the same length, once the count is known."""
    n, shape = 0, None
    with open(path, "wb") as f:
        for frame in frames:
            if shape is None:
                shape = frame.shape
                f.write(_npy_header(0, shape))
            f.write(np.ascontiguousarray(frame).tobytes())
            n += 1
        if shape is None:
            raise ValueError(f"no frames to write to {path}")
        f.seek(0)
        f.write(_npy_header(n, shape))
    return n


def _npy_header(n: int, frame_shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header for uint8 ``[n, *frame_shape]`` whose length does not depend on ``n``."""
    dims = ", ".join(str(d) for d in frame_shape)
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({n:<20d}, {dims}), }}"
    magic = np.lib.format.magic(1, 0)
    total = len(magic) + 2 + len(text) + 1
    text += " " * (-total % 64) + "\n"
    return magic + len(text).to_bytes(2, "little") + text.encode("latin1")


def _even(frame: np.ndarray) -> tuple[int, int]:
    h, w = frame.shape[:2]
    return (w + w % 2, h + h % 2)


def _write_ffmpeg(path: Path, frames, fps: float, codec_args: list[str], even: bool = False) -> int:
    """Pipe raw RGB frames into ffmpeg, which encodes them to ``path`` (the muxer chosen by its suffix).

    ffmpeg's messages go to a temporary file (a pipe could fill and stall it); a failure is a MsvqError with
    ffmpeg's last line. The process never outlives this call, whatever happens to the caller.
    """
    proc, n, size = None, 0, None
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                if proc is None:
                    size = _even(frame) if even else (frame.shape[1], frame.shape[0])
                    cmd = [shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
                           "-framerate", repr(fps), "-i", "pipe:0", *codec_args, "-y", str(path)]  # fmt: skip
                    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
                try:
                    proc.stdin.write(np.ascontiguousarray(frame).data)
                except BrokenPipeError:
                    break  # ffmpeg has stopped: its exit status and message say why
                n += 1
            if proc is None:
                raise ValueError(f"no frames to write to {path}")
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code = proc.wait()
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            raise MsvqError(f"ffmpeg could not write {path.name} (exit {code}): {lines[-1] if lines else 'no message'}")
    return n


def _write_cv2(path: Path, kind: str, frames, fps: float, fourcc: str, odd: str = "round") -> int:
    """Write with OpenCV's VideoWriter. Odd sizes are rounded up to even (``odd="round"``) or refused."""
    writer, n = None, 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                even = _even(frame)
                if odd == "refuse" and even != (w, h):
                    raise UsageError(
                        f"cannot write {w}x{h} losslessly to {kind}: OpenCV's FFV1 writer needs an even width and "
                        "height and ffmpeg is not on PATH; install ffmpeg, or write .npy or PNG frames"
                    )
                writer = _open_writer(path, kind, fps, even, fourcc)
            if (frame.shape[1], frame.shape[0]) != even:
                frame = cv2.resize(frame, even, interpolation=cv2.INTER_CUBIC)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"no frames to write to {path}")
    return n


def _open_writer(path: Path, kind: str, fps: float, size: tuple[int, int], fourcc: str) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if writer.isOpened():
        return writer
    writer.release()
    if os.path.exists(path):
        os.remove(path)
    if kind == ".mkv":
        raise UsageError(
            "cannot write a lossless .mkv here: neither ffmpeg (with FFV1) nor OpenCV's FFV1 writer is available; "
            "install ffmpeg, or write .npy or PNG frames"
        )
    raise MsvqError(f"OpenCV could not open a {fourcc} writer for {path}")

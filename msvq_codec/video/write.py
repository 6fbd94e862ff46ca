"""Writing RGB frames out: a video file (.mp4, .avi, .mkv), a .npy array, or a folder of PNGs.

Video files go through OpenCV's VideoWriter with codecs this OpenCV both writes and reads back:
``.mp4``: MPEG-4 Part 2 (``mp4v``), ``.avi``: Motion JPEG (``MJPG``), ``.mkv``: FFV1 (``FFV1``,
lossless). Those codecs want even frame sizes, so an odd width or height is rounded up to the next
even number (bicubic) before a video is written; ``.npy`` and PNG folders keep every size exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from msvq_codec.errors import UsageError
from msvq_codec.video.read import resize_frame

FRAMES = "frames"  # the kind of a path with no suffix: a folder of numbered PNGs
OUTPUT_KINDS = (".mp4", ".avi", ".mkv", ".npy", FRAMES)
FOURCCS = {".mp4": ("mp4v",), ".avi": ("MJPG",), ".mkv": ("FFV1", "mp4v")}  # first that opens wins

_ALLOWED = ".mp4, .avi, .mkv, .npy, or a folder of PNGs (a path with no suffix)"


def output_kind(path) -> str:
    """The kind of output ``path`` asks for: one of ``OUTPUT_KINDS`` (``"frames"`` for a PNG folder)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in FOURCCS or suffix == ".npy":
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
    ValueError for no frames or a malformed frame; UsageError for a bad path, fps or size.
    """
    kind = output_kind(path)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"fps must be a positive number, not {fps!r}")
    if size is not None:
        if len(size) != 2 or not all(_positive_int(s) for s in size):
            raise UsageError(f"size must be (width, height) in positive integers, not {size!r}")
        size = (int(size[0]), int(size[1]))
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output folder does not exist: {parent}")
    prepared = _prepare(frames, size)
    if kind == FRAMES:
        return _write_pngs(p, prepared)
    if kind == ".npy":
        return _write_npy(p, prepared)
    return _write_cv2(p, kind, prepared, float(fps))


def _positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


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


def _write_cv2(path: Path, kind: str, frames, fps: float) -> int:
    writer, n = None, 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                even = (w + w % 2, h + h % 2)
                writer = _open_writer(path, kind, fps, even)
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


def _open_writer(path: Path, kind: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    for code in FOURCCS[kind]:
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*code), fps, size)
        if writer.isOpened():
            return writer
        writer.release()
    if os.path.exists(path):
        os.remove(path)
    raise OSError(f"OpenCV could not open a {kind} writer for {path}")

"""Classic codecs on the same clips, through the ``ffmpeg`` command line (subprocess; nothing links to it).

For one stream: the RGB frames (uint8, 64x64, 16 fps) go to ffmpeg on stdin as ``rawvideo rgb24``; the
encoder writes an *elementary stream* file (raw H.264/HEVC Annex B, or IVF for AV1 and VP9 - no mp4 or mkv
container), whose size in bytes x 8 is the stream's bits (IVF's framing, 32 bytes per file and 12 per frame,
included); a second ffmpeg decodes that file back to
``rgb24``. Both conversions go through ``yuv420p`` (4:2:0 chroma, BT.601 limited range, ffmpeg's defaults),
as a user of these codecs gets; so even the highest quality cannot reach the source exactly.

Quality is set by CRF (constant rate factor) per codec, swept over ``Codec.crfs``. Each encoder runs on one
thread so that its output is the same on every machine. Presets are named explicitly (see ``CODECS``), since
the encoders' own defaults differ between builds.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msvq_codec.errors import MsvqError, UsageError

class ClassicError(MsvqError):
    """ffmpeg failed on a stream (the bench notes it and goes on without that codec)."""


@dataclass(frozen=True)
class Codec:
    name: str  # our short name: x264, x265, svtav1, vp9
    encoder: str  # ffmpeg encoder
    muxer: str  # ffmpeg muxer of the elementary stream
    suffix: str  # file suffix of the elementary stream
    crfs: tuple[int, ...]  # default CRF sweep, high quality first
    args: tuple[str, ...]  # encoder options besides -crf
    label: str  # for tables and plots

    def command(self, crf: int, width: int, height: int, fps: float, output: Path) -> list[str]:
        return [
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
            "-c:v", self.encoder, *self.args, "-crf", str(crf), "-pix_fmt", "yuv420p", "-f", self.muxer, str(output),
        ]  # fmt: skip


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("x264", "libx264", "h264", ".h264", (18, 23, 28, 33, 38, 43),
              ("-preset", "medium", "-threads", "1"), "H.264 (x264)"),
        Codec("x265", "libx265", "hevc", ".hevc", (18, 23, 28, 33, 38, 43),
              ("-preset", "medium", "-x265-params", "log-level=error:pools=1:frame-threads=1"), "HEVC (x265)"),
        Codec("svtav1", "libsvtav1", "ivf", ".ivf", (20, 30, 40, 50, 58, 63),
              ("-preset", "6", "-svtav1-params", "lp=1"), "AV1 (SVT-AV1)"),
        Codec("vp9", "libvpx-vp9", "ivf", ".ivf", (20, 30, 40, 50, 58, 63),
              ("-b:v", "0", "-deadline", "good", "-cpu-used", "1", "-threads", "1"), "VP9 (libvpx)"),
    )
}  # fmt: skip
CRF_RANGE = {"x264": (0, 51), "x265": (0, 51), "svtav1": (0, 63), "vp9": (0, 63)}


def ffmpeg_path() -> str | None:
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=None)
def _ffmpeg_info(ffmpeg: str) -> tuple[str, frozenset[str], bool]:
    """(version line, encoders it has, whether it knows -fps_mode)."""
    version = _run([ffmpeg, "-hide_banner", "-version"]).stdout.decode(errors="replace").splitlines()[:1]
    listing = _run([ffmpeg, "-hide_banner", "-encoders"]).stdout.decode(errors="replace")
    encoders = frozenset(m.group(1) for m in re.finditer(r"^\s*V\S*\s+(\S+)", listing, re.M))
    options = _run([ffmpeg, "-hide_banner", "-h", "long"]).stdout.decode(errors="replace")
    return (version[0] if version else "ffmpeg"), encoders, "-fps_mode" in options


def ffmpeg_version(ffmpeg: str) -> str:
    return _ffmpeg_info(ffmpeg)[0]


def missing_encoders(ffmpeg: str, codecs: list[Codec]) -> list[Codec]:
    return [c for c in codecs if c.encoder not in _ffmpeg_info(ffmpeg)[1]]


def parse_codecs(text: str) -> list[Codec]:
    """``x264,x265,svtav1,vp9`` (any subset, any order) -> Codecs."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown or not names:
        raise UsageError(f"codecs takes a comma-separated list of {', '.join(CODECS)}, not {text!r}", option="codecs")
    return [CODECS[n] for n in dict.fromkeys(names)]


def parse_crfs(specs: list[str], codecs: list[Codec]) -> dict[str, tuple[int, ...]]:
    """CRF lists, each ``18,28,38`` (every codec) or ``x264=18,28,38`` (one codec; wins over a list for
    every codec) -> CRF lists."""
    crfs = {c.name: c.crfs for c in codecs}
    for spec in sorted(specs, key=lambda s: "=" in s):
        name, _, values = spec.rpartition("=")
        targets = [name.strip().lower()] if name else list(crfs)
        for target in targets:
            if target not in CODECS:
                raise UsageError(f"crf {spec!r}: unknown codec {target!r} (one of {', '.join(CODECS)})", option="crf")
            lo, hi = CRF_RANGE[target]
            try:
                values_ = tuple(sorted({int(v) for v in values.split(",") if v.strip()}))
            except ValueError:
                raise UsageError(f"crf {spec!r}: CRF values must be integers", option="crf") from None
            if not values_ or not all(lo <= v <= hi for v in values_):
                raise UsageError(f"crf {spec!r}: {target} takes CRF values in {lo}..{hi}", option="crf")
            if target in crfs:
                crfs[target] = values_
    return crfs


def _run(cmd: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SVT_LOG="1")  # SVT-AV1 prints its banner unless told errors only
    try:
        return subprocess.run(cmd, input=data, capture_output=True, env=env, check=False)
    except OSError as err:
        raise ClassicError(f"cannot run {cmd[0]}: {err.strerror}") from None


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"]
        raise ClassicError(f"{what}: {lines[-1]}")


def encode_decode(
    frames: np.ndarray, codec: Codec, crf: int, workdir: Path, fps: float = 16.0, ffmpeg: str = "ffmpeg"
) -> tuple[int, np.ndarray]:
    """One stream: uint8 RGB frames [n, H, W, 3] -> (size in bytes of the elementary stream file, the frames
    decoded from that file, uint8 [n, H, W, 3])."""
    n, height, width, _ = frames.shape
    stream = Path(workdir) / f"{codec.name}-crf{crf}{codec.suffix}"
    stream.unlink(missing_ok=True)
    base = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y"]
    _check(_run(base + codec.command(crf, width, height, fps, stream), np.ascontiguousarray(frames).tobytes()),
           f"{codec.name} CRF {crf} encode")  # fmt: skip
    size = stream.stat().st_size
    passthrough = ["-fps_mode", "passthrough"] if _ffmpeg_info(ffmpeg)[2] else ["-vsync", "0"]
    done = _run(base + ["-f", codec.muxer, "-i", str(stream), *passthrough, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    _check(done, f"{codec.name} CRF {crf} decode")
    stream.unlink(missing_ok=True)
    frame_bytes = height * width * 3
    if len(done.stdout) != n * frame_bytes:
        raise ClassicError(f"{codec.name} CRF {crf}: decoded {len(done.stdout) / frame_bytes:g} frames, not {n}")
    return size, np.frombuffer(done.stdout, np.uint8).reshape(n, height, width, 3).copy()

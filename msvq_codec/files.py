"""Files in and out: the commands' library functions, on top of the codec (``msvq_codec.codec``).

    encode_video(in.avi, out.msvq)   any input (``-``: YUV4MPEG2 on standard input) -> a .msvq file, written
                                     atomically (``-``: to standard output), at a preset or a target rate
    decode_file(out.msvq, rec.mp4)   a .msvq file (``-``: standard input) -> video, .npy, .y4m or PNG frames
                                     (``-``: YUV4MPEG2 on standard output)
    info(path), describe(path)       the header, and what ``msvq info`` shows

and what a folder run plans with (``encoded_name``, ``encode_target``, ``estimate_clips``,
``recorded_clips``). Every file is written through ``outputs``: atomically, never over an existing one
without ``force``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msvq_codec.codec import (
    DEFAULT_BATCH, DEFAULT_CODEC, MAX_READ_BYTES, Progress, check_compatible, check_rate_control, decode_frames,
    encode_to_bytes, encode_to_target, file_bpp, file_kbps, load_model, parse_codec, raw_bytes,
    read_bytes, read_file, target_of,
)  # fmt: skip
from msvq_codec.config import ModelConfig
from msvq_codec.coders import range_coder
from msvq_codec.container import QUALITY_PRESETS, RANGE_CODED, Header, StreamCodec, read_header
from msvq_codec.errors import MsvqError, UsageError
from msvq_codec.model.weights import LoadedModel
from msvq_codec.outputs import atomic_output, check_target, is_stdio, read_stdin, stdout
from msvq_codec.rdo import DEFAULT_QUALITY
from msvq_codec.video import output_kind, probe, resampled_count, source_bytes, write_video


@dataclass(frozen=True)
class EncodeResult:
    input: str
    output: str
    frames: int  # frames at 16 fps (what decode returns)
    clips: int
    bytes: int  # size of the .msvq file, header included
    paper_bpp: float  # the paper's formula: sum N log2 K / (T H W) over the padded clips
    file_bpp: float  # real bits: bytes * 8 / (frames * H * W)
    seconds: float
    kbps: float  # the file's bits per second of the video it returns (at 16 fps), / 1000
    source_bytes: int | None  # the input's size (a frame folder: its images; a pipe: what was read)
    raw_bytes: int  # the frames as raw 24-bit RGB at the clips' size: frames x 64 x 64 x 3
    ratio_source: float | None  # source_bytes / bytes
    ratio_raw: float  # raw_bytes / bytes
    quality: str  # the rate control written: a preset's name, or "target"
    rd_lambda: float  # its lambda (0.0 for max)
    note: str | None = None  # for the user (stderr): a target that was above max, or not met within 5 %


@dataclass(frozen=True)
class DecodeResult:
    input: str
    output: str
    frames: int
    width: int
    height: int
    seconds: float


def encode_video(
    input: str | Path,
    output: str | Path,
    *,
    model: LoadedModel | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
    codec: str | StreamCodec = DEFAULT_CODEC,
    level: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    input_fps: float | None = None,
    force: bool = False,
    progress: Progress | None = None,
    quality: str = DEFAULT_QUALITY,
    effort: int = 0,
    target_bpp: float | None = None,
    target_kbps: float | None = None,
) -> EncodeResult:
    """Encode a video (any input kind; ``-``: YUV4MPEG2 on standard input) to a .msvq file, written atomically
    (``-``: to standard output, once it is whole). ``quality``: the rate-control preset (``rdo.PRESETS``; max,
    the default, writes the nearest codes); ``effort``: refinement steps; ``target_bpp`` or ``target_kbps``:
    the rate to land within 5 % of instead of a preset (``msvq_codec.target``)."""
    started = time.perf_counter()
    to_stdout = is_stdio(output)
    output = Path(output)
    if not to_stdout:
        if output.is_dir():
            raise UsageError(f"{output} is a folder: give the .msvq file to write")
        check_target(output, force)
    stream_codec, _ = parse_codec(codec, level)  # fail fast on a bad codec or level, before any decoding
    check_rate_control(quality, effort, stream_codec)
    target = target_of(ModelConfig(), target_bpp, target_kbps, quality, stream_codec)
    info = probe(input, input_fps)  # fail fast on a bad input, before the model loads
    loaded = model or load_model(weights, device)
    if stream_codec in RANGE_CODED:
        range_coder(loaded, stream_codec)  # fail fast without its model, before the video is read
    note = None
    if target is None:
        header, data = encode_to_bytes(
            input, loaded, codec=codec, level=level, batch_size=batch_size, input_fps=input_fps, progress=progress,
            quality=quality, effort=effort,
        )  # fmt: skip
    else:
        target = target_of(loaded.model.config, target_bpp, target_kbps, codec=stream_codec)
        header, data, outcome = encode_to_target(input, loaded, target, batch_size=batch_size, input_fps=input_fps,
                                                 progress=progress, effort=effort, codec=stream_codec)  # fmt: skip
        note = outcome.note
    if to_stdout:
        with stdout() as stream:
            stream.write(data)
    else:
        with atomic_output(output, force) as tmp:
            tmp.write_bytes(data)
    size = source_bytes(info)
    return EncodeResult(
        str(input), str(output), header.frame_count, header.n_clips, len(data), header.paper_bpp,
        file_bpp(len(data), header), time.perf_counter() - started, file_kbps(len(data), header), size,
        raw_bytes(header), None if size is None else size / len(data), raw_bytes(header) / len(data),
        QUALITY_PRESETS.get(header.quality, str(header.quality)), header.rd_lambda, note,
    )  # fmt: skip


def parse_size(size: str | tuple[int, int] | None, header: Header) -> tuple[int, int] | None:
    """``WxH``, ``source`` (the size the input had), or None (the clips' own 64x64)."""
    if size is None or isinstance(size, tuple):
        return size
    if size == "source":
        w, h = header.source_width, header.source_height
        if not (1 <= w <= 16384 and 1 <= h <= 16384):  # the header allows up to 2**32 - 1
            raise UsageError(
                f"size 'source': the file records a {w}x{h} source, beyond 16384 a side; give a size WxH", option="size"
            )
        return (w, h)
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UsageError(f"size must be WxH or 'source', not {size!r}", option="size") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise UsageError(f"size {size}: width and height must be 1..16384", option="size")
    return (w, h)


def _check_decode_target(output: Path, force: bool) -> None:
    """The output's kind is known and, with ``force``, what it replaces is of the same kind: a folder is
    replaced only if it holds nothing but numbered PNG frames (never, say, a home folder given by mistake)."""
    kind = output_kind(output)
    if output.is_dir() and kind != "frames":
        raise UsageError(f"{output} is a folder, not a {kind} file")
    if force and kind == "frames" and output.is_dir():
        other = next((p.name for p in output.iterdir() if not (p.is_file() and p.name[:-4].isdigit()
                                                                  and p.name.endswith(".png"))), None)
        if other is not None:
            raise UsageError(f"will not replace folder {output}: it holds {other!r}, not only PNG frames")
    check_target(output, force)


def decode_file(
    input: str | Path,
    output: str | Path,
    *,
    model: LoadedModel | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
    fps: float | None = None,
    size: str | tuple[int, int] | None = None,
    batch_size: int = DEFAULT_BATCH,
    force: bool = False,
    progress: Progress | None = None,
) -> DecodeResult:
    """Decode a .msvq file (``-``: from standard input) to a video, .npy or PNG folder (by ``output``'s
    extension), written atomically; ``-``: YUV4MPEG2 on standard output, frame by frame."""
    started = time.perf_counter()
    to_stdout = is_stdio(output)
    output = Path(output)
    if not to_stdout:
        _check_decode_target(output, force)
    container = read_file(input)
    out_size = parse_size(size, container.header)
    loaded = model or load_model(weights, device)
    check_compatible(container.header, loaded)
    rate = fps or container.header.fps
    frames = decode_frames(container, loaded, batch_size, progress)
    if to_stdout:
        n = write_video(output, frames, rate, out_size)
    else:
        with atomic_output(output, force) as tmp:
            n = write_video(tmp, frames, rate, out_size)
    width, height = out_size or (container.header.clip_width, container.header.clip_height)
    return DecodeResult(str(input), str(output), n, width, height, time.perf_counter() - started)


def info(path: str | Path) -> Header:
    """The header of a .msvq file, after checking the whole file (CRCs, streams)."""
    return read_file(path).header


def describe(path: str | Path) -> dict[str, Any]:
    """What ``msvq info`` shows: the file's name and size, its header (``Header.to_dict``), its real bpp."""
    if is_stdio(path):
        data = read_stdin(MAX_READ_BYTES)
        header, size = read_bytes(data, "standard input").header, len(data)
    else:
        header, size = info(path), Path(path).stat().st_size
    return {"file": str(path), "bytes": size, **header.to_dict(), "file_bpp": file_bpp(size, header),
            "kbps": file_kbps(size, header), "ratio_raw": raw_bytes(header) / size}  # fmt: skip


# ---- planning a run ----------------------------------------------------------------------------------------


def encoded_name(source: str | Path) -> str:
    """The .msvq file name an input gets in an output folder: ``clip.avi`` -> ``clip.msvq``, a frame folder
    ``shots`` -> ``shots.msvq``."""
    if is_stdio(source):
        raise UsageError("standard input has no name to give its .msvq file in a folder: give the file to write")
    source = Path(source)
    return (source.name if source.is_dir() else source.stem) + ".msvq"


def encode_target(source: str | Path, output: str | Path) -> Path:
    """Where encoding ``source`` to ``output`` writes: ``output`` itself, or, when it is an existing folder,
    the input's .msvq name inside it (as ``cp`` does)."""
    output = Path(output)
    return output / encoded_name(source) if output.is_dir() else output


def estimate_clips(source: str | Path, input_fps: float | None = None) -> int | None:
    """Clips encoding ``source`` will take, from what its container declares (None: it declares nothing, or
    cannot be probed; encoding reports the problem). An estimate: declared frame counts may be wrong."""
    if is_stdio(source):
        return None  # a stream declares no length
    try:
        source_info = probe(source, input_fps)
    except MsvqError:
        return None
    if not source_info.declared_frames:
        return None
    frames = resampled_count(source_info.declared_frames, source_info.fps, ModelConfig.fps)
    return -(-frames // ModelConfig.clip_frames)


def recorded_clips(path: str | Path) -> int | None:
    """The clip count a .msvq file's header records (None: not readable, or standard input, which is read
    once; decoding reports the problem)."""
    if is_stdio(path):
        return None
    try:
        with Path(path).open("rb") as fp:
            return read_header(fp).n_clips
    except (MsvqError, OSError):
        return None


__all__ = [
    "DecodeResult", "EncodeResult", "decode_file", "describe", "encode_target", "encode_video", "encoded_name",
    "estimate_clips", "info", "parse_size", "recorded_clips",
]  # fmt: skip

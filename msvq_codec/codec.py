"""The codec: video -> clips -> codes -> .msvq bytes, and back. The only module that joins the model, the
container and the video readers and writers.

    encode_video(in.avi, out.msvq)   clips of the input (16 fps, 64x64, 32 frames) -> model.encode ->
                                     one index grid per level -> container (zstd or DEFLATE)
    decode_file(out.msvq, rec.mp4)   container -> model.decode -> exactly frame_count frames -> writer
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from msvq_codec.container import (
    CODEC_LEVELS, Container, Header, LevelInfo, StreamCodec, default_level, from_bytes, to_bytes,
)  # fmt: skip
from msvq_codec.errors import FormatError, InputError, UsageError, WeightsMismatch
from msvq_codec.model.vqvae import Codes
from msvq_codec.model.weights import LoadedModel, load_weights
from msvq_codec.outputs import atomic_output, check_target
from msvq_codec.video import iter_clips, output_kind, probe, write_video

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS_NAME = "msvq-default.safetensors"
DEFAULT_BATCH = 4  # clips per forward pass
MAX_READ_BYTES = 2**31  # a .msvq file larger than this is refused before reading
Progress = Callable[[int], None]  # called with the number of clips just finished


def default_weights() -> Path:
    """``$MSVQ_WEIGHTS`` if set, else the weights shipped in the repository's ``weights/`` folder."""
    return Path(os.environ.get("MSVQ_WEIGHTS") or WEIGHTS_DIR / DEFAULT_WEIGHTS_NAME)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return torch.device(name)


def load_model(weights: str | Path | None = None, device: str = "auto") -> LoadedModel:
    return load_weights(weights or default_weights(), resolve_device(device))


def parse_codec(name: str | StreamCodec, level: int | None) -> tuple[StreamCodec, int]:
    if isinstance(name, StreamCodec):
        codec = name
    else:
        try:
            codec = StreamCodec[name.upper()]
        except KeyError:
            raise UsageError(f"--codec must be zstd or deflate, not {name!r}") from None
    if level is None:
        return codec, default_level(codec)
    lo, hi = CODEC_LEVELS[codec]
    if isinstance(level, bool) or not isinstance(level, int) or not lo <= level <= hi:
        raise UsageError(f"--level for {codec.name.lower()} must be an integer in {lo}..{hi}, not {level!r}")
    return codec, level


# ---- clips <-> codes ---------------------------------------------------------------------------------------


def _batches(clips: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for clip in clips:
        batch.append(clip)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_clips(
    loaded: LoadedModel, clips: Iterable[np.ndarray], batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> tuple[np.ndarray, ...]:
    """uint8 clips [T, H, W, 3] -> per level (coarse first) an index array [n_clips, t, h, w] uint16."""
    model = loaded.model
    device = next(model.parameters()).device
    per_level: list[list[np.ndarray]] = [[] for _ in model.config.level_names]
    for batch in _batches(clips, batch_size):
        x = torch.from_numpy(np.stack(batch)).to(device)  # [b, T, H, W, 3] uint8
        x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)  # [b, 3, T, H, W]
        codes = model.encode(x)
        for store, level in zip(per_level, codes.by_level()):
            store.append(level.cpu().numpy().astype(np.uint16))  # [b, t, h, w]
        if progress:
            progress(len(batch))
    if not per_level[0]:
        raise InputError("no clips to encode")
    return tuple(np.concatenate(store) for store in per_level)


def decode_clips(
    loaded: LoadedModel, indices: tuple[np.ndarray, ...], batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> Iterator[np.ndarray]:
    """Per-level index arrays -> uint8 clips [T, H, W, 3], one at a time."""
    model = loaded.model
    device = next(model.parameters()).device
    n_clips = indices[0].shape[0]
    for start in range(0, n_clips, batch_size):
        levels = [torch.from_numpy(a[start : start + batch_size].astype(np.int64)).to(device) for a in indices]
        codes = Codes(*levels) if len(levels) == 2 else Codes(None, levels[0])
        x = model.decode(codes)  # [b, 3, T, H, W] in [0, 1]
        frames = (x * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()  # [b, T, H, W, 3]
        if progress:
            progress(len(frames))
        yield from frames


# ---- bytes ---------------------------------------------------------------------------------------------


def encode_to_bytes(
    source: str | Path,
    loaded: LoadedModel,
    *,
    codec: str | StreamCodec = "zstd",
    level: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    input_fps: float | None = None,
    progress: Progress | None = None,
) -> tuple[Header, bytes]:
    """Read ``source`` as the model's clips, encode, and serialise to .msvq bytes."""
    stream_codec, codec_level = parse_codec(codec, level)
    cfg = loaded.model.config
    stream = iter_clips(source, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames, input_fps=input_fps)
    indices = encode_clips(loaded, stream, batch_size, progress)
    info = stream.info
    header = Header(
        model_id=loaded.model_id,
        source_fps=float(info.fps),
        source_width=info.width,
        source_height=info.height,
        frame_count=stream.frame_count,
        fps=cfg.fps,
        clip_frames=cfg.clip_frames,
        clip_height=cfg.clip_size,
        clip_width=cfg.clip_size,
        n_clips=indices[0].shape[0],
        levels=tuple(LevelInfo(cfg.grid(name), cfg.codebook_size) for name in cfg.level_names),
        codec=stream_codec,
        codec_level=codec_level,
    )
    return header, to_bytes(header, indices)


def check_compatible(header: Header, loaded: LoadedModel) -> None:
    """Refuse a file made by other weights, naming both IDs."""
    if header.model_id != loaded.model_id:
        raise WeightsMismatch(
            f"this file was made by model {header.model_id.hex()}, but the loaded weights are model "
            f"{loaded.model_id.hex()}: pass the weights it was made with (--weights)"
        )
    cfg = loaded.model.config
    expected = tuple(LevelInfo(cfg.grid(name), cfg.codebook_size) for name in cfg.level_names)
    if header.levels != expected or (header.clip_frames, header.clip_height, header.clip_width, header.fps) != (
        cfg.clip_frames, cfg.clip_size, cfg.clip_size, cfg.fps
    ):  # fmt: skip
        raise FormatError("the file's grids, clip shape or frame rate do not match its model's configuration")


def decode_frames(
    container: Container, loaded: LoadedModel, batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> Iterator[np.ndarray]:
    """Exactly ``header.frame_count`` uint8 frames [H, W, 3] (the last clip's padding dropped)."""
    check_compatible(container.header, loaded)
    remaining = container.header.frame_count
    for clip in decode_clips(loaded, container.indices, batch_size, progress):
        take = clip[:remaining]
        remaining -= len(take)
        yield from take
        if remaining == 0:
            return


def read_file(path: str | Path) -> Container:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a .msvq file")
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    size = path.stat().st_size
    if size > MAX_READ_BYTES:
        raise FormatError(f"{path} is {size} bytes, larger than any .msvq file this reader accepts")
    with path.open("rb") as fp:
        try:
            return from_bytes(fp.read())
        except FormatError as err:
            raise FormatError(f"{path}: {err}") from None


# ---- files ---------------------------------------------------------------------------------------------


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
    codec: str | StreamCodec = "zstd",
    level: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    input_fps: float | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> EncodeResult:
    """Encode a video (any input kind) to a .msvq file, written atomically."""
    started = time.perf_counter()
    output = Path(output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder: give the .msvq file to write")
    check_target(output, force)
    parse_codec(codec, level)  # fail fast on a bad codec or level, before any decoding
    probe(input, input_fps)  # fail fast on a bad input, before the model loads
    loaded = model or load_model(weights, device)
    header, data = encode_to_bytes(
        input, loaded, codec=codec, level=level, batch_size=batch_size, input_fps=input_fps, progress=progress
    )
    with atomic_output(output, force) as tmp:
        tmp.write_bytes(data)
    pixels = header.frame_count * header.clip_height * header.clip_width
    return EncodeResult(
        str(input), str(output), header.frame_count, header.n_clips, len(data), header.paper_bpp,
        len(data) * 8 / pixels, time.perf_counter() - started,
    )  # fmt: skip


def parse_size(size: str | tuple[int, int] | None, header: Header) -> tuple[int, int] | None:
    """``WxH``, ``source`` (the size the input had), or None (the clips' own 64x64)."""
    if size is None or isinstance(size, tuple):
        return size
    if size == "source":
        w, h = header.source_width, header.source_height
        if not (1 <= w <= 16384 and 1 <= h <= 16384):  # the header allows up to 2**32 - 1
            raise UsageError(f"--size source: the file records a {w}x{h} source, beyond 16384 a side; give --size WxH")
        return (w, h)
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WxH or 'source', not {size!r}") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise UsageError(f"--size {size}: width and height must be 1..16384")
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
    """Decode a .msvq file to a video, .npy or PNG folder (by ``output``'s extension), written atomically."""
    started = time.perf_counter()
    output = Path(output)
    _check_decode_target(output, force)
    container = read_file(input)
    out_size = parse_size(size, container.header)
    loaded = model or load_model(weights, device)
    check_compatible(container.header, loaded)
    rate = fps or container.header.fps
    with atomic_output(output, force) as tmp:
        n = write_video(tmp, decode_frames(container, loaded, batch_size, progress), rate, out_size)
    width, height = out_size or (container.header.clip_width, container.header.clip_height)
    return DecodeResult(str(input), str(output), n, width, height, time.perf_counter() - started)


def info(path: str | Path) -> Header:
    """The header of a .msvq file, after checking the whole file (CRCs, streams)."""
    return read_file(path).header


def roundtrip_bytes(data: bytes, loaded: LoadedModel, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Decode .msvq bytes fully in memory: frames [frame_count, H, W, 3] uint8 (for bench and tests)."""
    container = from_bytes(data)
    return np.stack(list(decode_frames(container, loaded, batch_size)))


__all__ = [
    "DecodeResult", "EncodeResult", "decode_file", "decode_frames", "encode_clips", "encode_to_bytes",
    "encode_video", "info", "load_model", "read_file", "roundtrip_bytes",
]  # fmt: skip

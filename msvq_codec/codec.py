"""The codec: clips -> codes -> .msvq bytes, and back. The only module that joins the model, the container and
the entropy coder; ``files`` builds the commands' file-level functions on it.

    clips of an input (16 fps, 64x64, 32 frames)  -> model.encode -> one index grid per level (the nearest
        codes, or those rate control chooses: ``rdo``, --quality; at the lambda that meets a target rate:
        ``target``) -> streams (range-coded with the weights' learned prior by default, or their context
        model; or zstd / DEFLATE: ``coders``)
        -> container bytes                         encode_to_bytes, encode_to_target, codes_to_bytes
    container bytes -> (range-coded streams -> indices) -> model.decode -> exactly frame_count frames
                                                   read_bytes, container_indices, decode_frames
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import torch

from msvq_codec.container import (
    CODEC_LEVELS, NO_ENTROPY_ID, RANGE_CODED, Container, Header, LevelInfo, StreamCodec, default_level, from_bytes,
    to_bytes,
)  # fmt: skip
from msvq_codec.config import ModelConfig
from msvq_codec.device import pick_device
from msvq_codec.coders import check_range_model, entropy_model, prior_model, range_coder
from msvq_codec.errors import FormatError, InputError, UsageError, WeightsMismatch
from msvq_codec.model.fast import fast_model
from msvq_codec.model.refine import MAX_STEPS, refiner
from msvq_codec.model.vqvae import Chooser, Codes, Refiner
from msvq_codec.model.weights import LoadedModel, find_weights, load_weights
from msvq_codec.outputs import is_stdio, read_stdin
from msvq_codec.rdo import DEFAULT_QUALITY, Preset, chooser, lambda_preset, preset
from msvq_codec.target import ClipSpool, Outcome, Target, search
from msvq_codec.video import SourceInfo, iter_clips

DEFAULT_BATCH = 4  # clips per forward pass
MAX_READ_BYTES = 2**31  # a .msvq file larger than this is refused before reading
Progress = Callable[[int], None]  # called with the number of clips just finished


def load_model(weights: str | Path | None = None, device: str = "auto") -> LoadedModel:
    """The model of ``weights``, else of the weights ``find_weights`` chooses ($MSVQ_WEIGHTS, the shipped)."""
    return load_weights(find_weights(weights)[0], pick_device(device))


def check_batch_size(batch_size: int) -> int:
    """Clips per forward pass: a positive integer (UsageError otherwise)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}", option="batch_size")
    return batch_size


DEFAULT_CODEC = "prior"  # what msvq encode writes: range coding with the weights' learned prior
CODEC_NAMES = ("prior", "context", "zstd", "deflate")


def parse_codec(name: str | StreamCodec, level: int | None) -> tuple[StreamCodec, int]:
    if isinstance(name, StreamCodec):
        codec = name
    else:
        try:
            codec = StreamCodec[name.upper()]
        except KeyError:
            raise UsageError(f"codec must be prior, context, zstd or deflate, not {name!r}", option="codec") from None
    if level is None:
        return codec, default_level(codec)
    lo, hi = CODEC_LEVELS[codec]
    if isinstance(level, bool) or not isinstance(level, int) or not lo <= level <= hi:
        raise UsageError(
            f"level for {codec.name.lower()} must be an integer in {lo}..{hi}, not {level!r}", option="level"
        )
    return codec, level


# ---- the header ------------------------------------------------------------------------------------------


def levels_of(config: ModelConfig) -> tuple[LevelInfo, ...]:
    """The level records a .msvq file of this model holds, coarse first (``Codes.by_level`` order)."""
    return tuple(LevelInfo(config.grid(name), config.codebook_of(name)) for name in config.level_names)


def make_header(
    config: ModelConfig,
    model_id: bytes,
    frame_count: int,
    source: SourceInfo | None = None,
    *,
    codec: str | StreamCodec = "zstd",
    level: int | None = None,
    entropy_id: bytes = NO_ENTROPY_ID,
    quality: int = 0,
    rd_lambda: float = 0.0,
) -> Header:
    """The header of a .msvq file of ``frame_count`` frames (at ``config.fps``) coded by this model; the
    only place one is built. ``source``: the input's rate and size (None: the clips' own). ``entropy_id``:
    the range coder's model ID, for codecs context and prior. ``quality``/``rd_lambda``: the rate control used (0: none)."""
    stream_codec, codec_level = parse_codec(codec, level)
    own = (config.fps, config.clip_size, config.clip_size)
    fps, width, height = (source.fps, source.width, source.height) if source is not None else own
    return Header(
        model_id=model_id,
        source_fps=float(fps),
        source_width=width,
        source_height=height,
        frame_count=frame_count,
        fps=config.fps,
        clip_frames=config.clip_frames,
        clip_height=config.clip_size,
        clip_width=config.clip_size,
        n_clips=-(-frame_count // config.clip_frames),  # the last clip padded
        levels=levels_of(config),
        codec=stream_codec,
        codec_level=codec_level,
        entropy_id=entropy_id,
        quality=quality,
        rd_lambda=rd_lambda,
    )


def paper_bpp(config: ModelConfig) -> float:
    """The paper's bits per pixel of this model, sum over levels of N log2 K / (T H W), as a .msvq header
    counts them (``Header.paper_bpp``)."""
    return make_header(config, bytes(16), config.clip_frames).paper_bpp  # any model ID: the bits are the same


def file_bpp(n_bytes: int, header: Header) -> float:
    """Real bits per pixel of a .msvq file of ``n_bytes``: its bits over the pixels of the frames it returns."""
    return n_bytes * 8 / (header.frame_count * header.clip_height * header.clip_width)


def file_kbps(n_bytes: int, header: Header) -> float:
    """A .msvq file's rate in kilobits per second of the video it returns (at ``header.fps``)."""
    return n_bytes * 8 / (header.frame_count / header.fps) / 1000


def raw_bytes(header: Header) -> int:
    """The size of the frames a .msvq file returns as raw 24-bit RGB (3 bytes a pixel, at the clips' size)."""
    return header.frame_count * header.clip_height * header.clip_width * 3


def target_of(config: ModelConfig, target_bpp: float | None, target_kbps: float | None,
              quality: str | Preset = DEFAULT_QUALITY, codec: StreamCodec = StreamCodec.PRIOR) -> Target | None:
    """The target rate of ``target_bpp`` / ``target_kbps`` for clips of ``config`` (None: neither given); a
    UsageError for a bad value, or with a ``quality`` preset or a codec but prior and context (a target
    chooses the rate itself, measuring the file's bytes)."""
    target = Target.of(target_bpp, target_kbps, config.fps, config.clip_size * config.clip_size)
    if target is not None and (preset(quality).rd_lambda or codec not in RANGE_CODED):
        raise UsageError(f"{target.option} chooses the rate itself: it takes neither a quality preset nor codec "
                         f"{codec.name.lower()}", option=target.option)  # fmt: skip
    return target


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
    loaded: LoadedModel, clips: Iterable[np.ndarray], batch_size: int = DEFAULT_BATCH, progress: Progress | None = None,
    precision: str | None = None, choose: Chooser | None = None, refine: Refiner | None = None,
) -> tuple[np.ndarray, ...]:
    """uint8 clips [T, H, W, 3] -> per level (coarse first) an index array [n_clips, t, h, w] uint16.
    ``precision``: auto | fp32 | bf16 (``msvq_codec.model.fast``; default: $MSVQ_PRECISION, else auto).
    ``choose``/``refine``: rate control of one file (``rate_control``; default: the nearest codes)."""
    model = loaded.model
    runner = fast_model(model, precision)
    device = next(model.parameters()).device
    per_level: list[list[np.ndarray]] = [[] for _ in model.config.level_names]
    for batch in _batches(clips, batch_size):
        x = torch.from_numpy(np.stack(batch)).to(device)  # [b, T, H, W, 3] uint8
        x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)  # [b, 3, T, H, W]
        codes = runner.encode(x, choose, refine)
        for store, level in zip(per_level, codes.by_level()):
            store.append(level.cpu().numpy().astype(np.uint16))  # [b, t, h, w]
        if progress:
            progress(len(batch))
    if not per_level[0]:
        raise InputError("no clips to encode")
    return tuple(np.concatenate(store) for store in per_level)


def decode_clips(
    loaded: LoadedModel, indices: tuple[np.ndarray, ...], batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None, precision: str | None = None,
) -> Iterator[np.ndarray]:
    """Per-level index arrays -> uint8 clips [T, H, W, 3], one at a time (``precision`` as for encode_clips)."""
    model = loaded.model
    runner = fast_model(model, precision)
    device = next(model.parameters()).device
    n_clips = indices[0].shape[0]
    for start in range(0, n_clips, batch_size):
        levels = [torch.from_numpy(a[start : start + batch_size].astype(np.int64)).to(device) for a in indices]
        codes = Codes.from_levels(levels)
        x = runner.decode(codes)  # [b, 3, T, H, W] in [0, 1]
        frames = (x * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()  # [b, T, H, W, 3]
        if progress:
            progress(len(frames))
        yield from frames


# ---- rate control ----------------------------------------------------------------------------------------


def check_effort(effort: int) -> int:
    """Adam steps on the bottom latent before its codes are chosen: an integer 0..MAX_STEPS."""
    if isinstance(effort, bool) or not isinstance(effort, int) or not 0 <= effort <= MAX_STEPS:
        raise UsageError(f"effort must be an integer in 0..{MAX_STEPS}, not {effort!r}", option="effort")
    return effort


def check_rate_control(quality: str | Preset, effort: int, codec: StreamCodec) -> Preset:
    """The preset of ``quality``; a UsageError for a bad one, or for rate control with a codec whose bits do
    not depend on the codes chosen (zstd, DEFLATE)."""
    chosen = preset(quality)
    check_effort(effort)
    if chosen.rd_lambda and codec not in RANGE_CODED:
        raise UsageError(f"quality {chosen.name} needs codec prior or context (rate control counts their bits); "
                         f"codec {codec.name.lower()} takes only quality max", option="quality")  # fmt: skip
    return chosen


def rate_control(loaded: LoadedModel, quality: str | Preset = DEFAULT_QUALITY, effort: int = 0,
                 codec: StreamCodec = StreamCodec.PRIOR) -> tuple[Chooser | None, Refiner | None]:  # fmt: skip
    """The chooser and refiner of one file (both None at quality max without effort: the nearest codes); the
    chooser counts the bits of ``codec``'s model (the prior's or the context model's)."""
    chosen = preset(quality)
    coders = None
    if chosen.rd_lambda:
        models = prior_model(loaded) if codec == StreamCodec.PRIOR else entropy_model(loaded)
        coders = dict(zip(loaded.model.config.level_names, models[1]))
    return (chooser(coders, chosen) if coders else None), refiner(loaded.model, check_effort(effort))


# ---- bytes ---------------------------------------------------------------------------------------------


def encode_to_bytes(
    source: str | Path,
    loaded: LoadedModel,
    *,
    codec: str | StreamCodec = DEFAULT_CODEC,
    level: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    input_fps: float | None = None,
    progress: Progress | None = None,
    quality: str | Preset = DEFAULT_QUALITY,
    effort: int = 0,
) -> tuple[Header, bytes]:
    """Read ``source`` as the model's clips, encode (at ``quality``, with ``effort`` refinement steps), and
    serialise to .msvq bytes."""
    stream_codec, codec_level = parse_codec(codec, level)
    chosen = check_rate_control(quality, effort, stream_codec)
    cfg = loaded.model.config
    stream = iter_clips(source, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames, input_fps=input_fps)
    choose, refine = rate_control(loaded, chosen, effort, stream_codec)
    indices = encode_clips(loaded, stream, batch_size, progress, choose=choose, refine=refine)
    return codes_to_bytes(loaded, indices, stream.frame_count, stream.info, codec=stream_codec, level=codec_level,
                          quality=chosen)  # fmt: skip


class Targeted(NamedTuple):
    header: Header
    data: bytes  # the .msvq file
    outcome: Outcome  # the lambda the search settled on, every probe, and a note for the user


def encode_to_target(
    source: str | Path, loaded: LoadedModel, target: Target, *, batch_size: int = DEFAULT_BATCH,
    input_fps: float | None = None, progress: Progress | None = None, effort: int = 0,
    codec: StreamCodec = StreamCodec.PRIOR,
) -> Targeted:  # fmt: skip
    """Read ``source`` as the model's clips once, then encode them (with ``codec``, prior or context) at the
    lambdas of a search (``target.search``) until the file lands within its tolerance of ``target``."""
    cfg = loaded.model.config
    stream = iter_clips(source, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames, input_fps=input_fps)
    with ClipSpool(stream) as clips:
        if clips.count == 0:
            raise InputError("no clips to encode")

        def rate_at(rd_lambda: float) -> tuple[float, tuple[Header, bytes]]:
            chosen = lambda_preset(rd_lambda)
            choose, refine = rate_control(loaded, chosen, effort, codec)
            indices = encode_clips(loaded, clips, batch_size, progress, choose=choose, refine=refine)
            header, data = codes_to_bytes(loaded, indices, stream.frame_count, stream.info, codec=codec,
                                          quality=chosen)  # fmt: skip
            return file_bpp(len(data), header), (header, data)

        outcome = search(rate_at, target)
    return Targeted(*outcome.kept, outcome)


def codes_to_bytes(
    loaded: LoadedModel,
    indices: tuple[np.ndarray, ...],
    frame_count: int,
    source: SourceInfo | None = None,
    *,
    codec: str | StreamCodec = DEFAULT_CODEC,
    level: int | None = None,
    quality: str | Preset = DEFAULT_QUALITY,
) -> tuple[Header, bytes]:
    """Per-level index arrays [n_clips, t, h, w] of ``frame_count`` frames -> the .msvq file that holds them;
    ``quality``: the rate-control preset that chose them, recorded in the header."""
    stream_codec, codec_level = parse_codec(codec, level)
    chosen = check_rate_control(quality, 0, stream_codec)
    if stream_codec not in RANGE_CODED:
        header = make_header(loaded.model.config, loaded.model_id, frame_count, source, codec=stream_codec,
                             level=codec_level)  # fmt: skip
        return header, to_bytes(header, indices)
    coder = range_coder(loaded, stream_codec)
    header = make_header(loaded.model.config, loaded.model_id, frame_count, source, codec=stream_codec,
                         level=codec_level, entropy_id=coder.model_id, quality=chosen.id,
                         rd_lambda=chosen.rd_lambda)  # fmt: skip
    if len(indices) != len(header.levels) or any(np.asarray(a).shape != (header.n_clips, *lv.grid)
                                                 for a, lv in zip(indices, header.levels)):  # fmt: skip
        raise UsageError("the index arrays do not match the model's levels")
    return header, to_bytes(header, streams=coder.encode([np.asarray(a) for a in indices]))


def container_indices(container: Container, loaded: LoadedModel) -> tuple[np.ndarray, ...]:
    """The index grids of a container: as read for zstd / DEFLATE, range-decoded for context and prior streams."""
    if container.indices is not None:
        return container.indices
    return check_range_model(container.header, loaded).decode(container.header, container.streams)


def check_compatible(header: Header, loaded: LoadedModel) -> None:
    """Refuse a file made by other weights, naming both IDs."""
    if header.model_id != loaded.model_id:
        raise WeightsMismatch(
            f"this file was made by model {header.model_id.hex()}, but the loaded weights are model "
            f"{loaded.model_id.hex()}: load the weights it was made with",
            option="weights",
        )
    cfg = loaded.model.config
    if header.levels != levels_of(cfg) or (header.clip_frames, header.clip_height, header.clip_width, header.fps) != (
        cfg.clip_frames, cfg.clip_size, cfg.clip_size, cfg.fps
    ):  # fmt: skip
        raise FormatError("the file's grids, clip shape or frame rate do not match its model's configuration")
    if header.codec in RANGE_CODED:
        check_range_model(header, loaded)


def decode_frames(
    container: Container, loaded: LoadedModel, batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> Iterator[np.ndarray]:
    """Exactly ``header.frame_count`` uint8 frames [H, W, 3] (the last clip's padding dropped)."""
    check_compatible(container.header, loaded)
    remaining = container.header.frame_count
    for clip in decode_clips(loaded, container_indices(container, loaded), batch_size, progress):
        take = clip[:remaining]
        remaining -= len(take)
        yield from take
        if remaining == 0:
            return


def read_file(path: str | Path) -> Container:
    """A whole .msvq file (``-``: standard input), checked (CRCs, streams)."""
    if is_stdio(path):
        return read_bytes(read_stdin(MAX_READ_BYTES), "standard input")
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a .msvq file")
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    size = path.stat().st_size
    if size > MAX_READ_BYTES:
        raise FormatError(f"{path} is {size} bytes, larger than any .msvq file this reader accepts")
    with path.open("rb") as fp:
        return read_bytes(fp.read(), path)


def read_bytes(data: bytes, name: str | Path | None = None) -> Container:
    """A whole .msvq file from its bytes, checked (CRCs, streams); a FormatError names ``name``."""
    try:
        return from_bytes(data)
    except FormatError as err:
        raise FormatError(f"{name}: {err}" if name else str(err)) from None


def roundtrip_bytes(data: bytes, loaded: LoadedModel, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Decode .msvq bytes fully in memory: frames [frame_count, H, W, 3] uint8 (for bench and tests)."""
    container = read_bytes(data)
    return np.stack(list(decode_frames(container, loaded, batch_size)))


__all__ = [
    "CODEC_NAMES", "DEFAULT_BATCH", "DEFAULT_CODEC", "MAX_READ_BYTES", "Targeted", "check_batch_size", "check_effort",
    "check_compatible", "check_rate_control", "codes_to_bytes", "container_indices", "decode_frames", "encode_clips",
    "encode_to_bytes", "encode_to_target", "entropy_model", "file_bpp", "file_kbps", "levels_of", "load_model",
    "make_header", "paper_bpp", "parse_codec", "rate_control", "raw_bytes", "read_bytes", "read_file",
    "roundtrip_bytes", "target_of",
]  # fmt: skip

"""``msvq bench``'s work: every clip through msvq's real path and through classic codecs, scored the same way.

For each input video (read once, cut into clips as ``msvq encode`` cuts them, see ``clips``):

* msvq, per model: all the video's clips -> ``encode_clips`` -> ``.msvq`` bytes with each coder (``CODERS``:
  prior, the bytes ``msvq encode`` writes for that input, then context, zstd and DEFLATE) -> read back to
  indices with each (all must agree) -> ``decode_clips`` -> frames. The same indices are also written with
  every coder as one file per evaluated clip (*per-clip*: a header per 2-second clip) and as one file for the
  evaluated prefix of the video (*per-video*; with every clip evaluated, that is exactly ``msvq encode``'s
  file), with each coder's stream bits per level and the prior's and the context model's ideal code lengths
  (-log2 p) per level beside them. A per-clip file is read back and must give the same indices.
* classic codecs (``classic``), per codec and CRF: one stream per evaluated clip (*per-clip*) and one stream
  for the evaluated frames of the video (*per-video*), each decoded back.
* every reconstruction is scored against the source clip (``score``): PSNR, SSIM, LPIPS over the real frames.

Rates: ``bits / (frames x H x W)`` over the real frames (file bits, headers included); msvq adds the paper's
formula, ``sum_levels N log2 K / (T H W)`` over its (padded) clips. Totals are total bits over total pixels;
distortions are means over clips of the per-clip means over frames (paper Section 4.3).

Rate control (``--quality``): each weights file is run at each preset as its own system,
``msvq:<label>@<preset>`` (``msvq:<label>`` when the only preset is max, the default), the chooser serving the
whole video in file order as ``msvq encode`` does; a per-clip file holds codes chosen in that order too. Each
model's presets also form one RD curve, whose BD-rate against each classic codec's curve is computed over the
quality range both cover (``msvq:<label> curve``).

Speed: encode (clips -> bytes) and decode (bytes -> frames) are timed separately per video after one
untimed warm-up batch per model; frames/s counts the frames decoding returns. The model's part (clips ->
indices, indices -> frames) is timed once and each coder's part (indices <-> bytes) on its own, in the same
run, so each coder's frames/s is the model's time plus its own; the headline encode/decode speed is the
prior's (``msvq encode``'s default). Peak memory is
``torch.cuda.max_memory_allocated`` over the msvq encode and decode on a GPU, else the process's peak
resident set (``ru_maxrss``), which also holds the inputs and the LPIPS network.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from msvq_codec import __version__, perf
from msvq_codec.bench.bdrate import bd_rate
from msvq_codec.bench.classic import CODECS, ClassicError, Codec, encode_decode, ffmpeg_path, ffmpeg_version
from msvq_codec.bench.classic import missing_encoders
from msvq_codec.bench.clips import Video, iter_videos
from msvq_codec.bench.records import (
    CODERS, MODES, NO_BITS, BDRecord, BenchResult, Bits, ClipRecord, ModelRecord, Point, Series, Settings, Showcase,
    StreamRecord, VideoRecord,
)  # fmt: skip
from msvq_codec.bench.score import Scorer, mean
from msvq_codec.model.levels import level_use, most_common_grid
from msvq_codec.codec import DEFAULT_BATCH, codes_to_bytes, decode_clips, encode_clips, load_model
from msvq_codec.codec import check_batch_size, container_indices, paper_bpp, read_bytes
from msvq_codec.codec import rate_control
from msvq_codec.coders import entropy_model, prior_model
from msvq_codec.config import ModelConfig
from msvq_codec.container import Header
from msvq_codec.device import pick_device
from msvq_codec.errors import InputError, UsageError
from msvq_codec.model.fast import fast_model, resolve_precision
from msvq_codec.model.weights import LoadedModel, find_weights
from msvq_codec.rdo import DEFAULT_QUALITY, Preset, preset

RAW_BPP = 24.0  # raw 8-bit RGB
DEFINITIONS = {
    "bpp_paper": "msvq: sum over levels of N log2 K / (T H W), the paper's formula, over the padded clips",
    "bpp": "file bits (headers included) / (real frames x H x W), at 64x64 and 16 fps; msvq: the context-coded "
           "file (msvq encode's default)",
    "bpp_zstd": "msvq: as bpp, with the .msvq streams compressed by zstd (--codec zstd)",
    "bpp_deflate": "msvq: as bpp, with the .msvq streams compressed by DEFLATE (--codec deflate)",
    "level_bits_per_index": "msvq: per coder, per level (coarse first): that level's stream bits / its indices; "
                            "'ideal prior' / 'ideal context': the prior's / the context model's -log2 p of the "
                            "indices (their integer probabilities)",
    "ratio_raw": "24 / bpp: raw 24-bit RGB at 64x64, 16 fps, over the stream's bits",
    "ratio_source": "msvq: bytes of the input files / bytes of their whole .msvq files (msvq encode's output)",
    "psnr": "dB, L = 255, per frame, mean over each clip, then over clips (inf: every frame identical)",
    "ssim": "scikit-image structural_similarity per frame (7x7, channels averaged), means as psnr",
    "lpips": "LPIPS (VGG16 with the published linear heads) per frame in [0, 1], means as psnr",
    "bd_rate": "Bjontegaard delta rate of msvq against the codec at equal quality; +0.1 = 10 % more bits",
    "share_of_gemm": "msvq: the model's FLOP rate (FlopCounterMode FLOPs per frame x model-only frames/s, padded "
                     "frames included) over the median same-run rate of a 2048^3 GEMM in that direction's dtype",
}


@dataclass(frozen=True)
class BenchOptions:
    inputs: tuple[Path, ...]
    weights: tuple[Path, ...] = ()  # empty: the one find_weights chooses
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH
    precision: str = "auto"  # auto | fp32 | bf16: what msvq_codec.model.fast computes in
    classic: bool = True
    codecs: tuple[str, ...] = tuple(CODECS)
    crfs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per codec; a missing one takes its default
    modes: tuple[str, ...] = MODES
    lpips: str = "auto"  # auto | on | off
    vgg_weights: Path | None = None
    max_clips: int = 0  # 0: every clip
    include_partial: bool = False
    input_fps: float | None = None
    qualities: tuple[str, ...] = (DEFAULT_QUALITY,)  # rate-control presets, each model at each


@dataclass
class _Model:
    label: str
    path: Path
    loaded: LoadedModel
    quality: Preset = field(default_factory=lambda: preset(DEFAULT_QUALITY))
    base: str = ""  # the weights' label, shared by its presets (one RD curve)
    encode_s: float = 0.0
    decode_s: float = 0.0
    frames: int = 0
    peak: int = 0
    file_bytes: int = 0
    file_bytes_deflate: int = 0
    model_encode_s: float = 0.0  # clips -> indices
    model_decode_s: float = 0.0  # indices -> frames
    coder_encode_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CODERS, 0.0))  # indices -> bytes
    coder_decode_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CODERS, 0.0))  # bytes -> indices
    coder_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CODERS, 0))
    clips: int = 0
    grids: list[tuple[np.ndarray, ...]] = field(default_factory=list)  # per video, per level: evaluated clips'

    @property
    def system(self) -> str:
        return f"msvq:{self.label}"


@dataclass(frozen=True)
class _Reconstruction:
    """A video's evaluated clips as one system reconstructed them, and (per-clip mode) each clip's bits."""

    system: str
    kind: str  # "msvq" | "classic"
    modes: tuple[str, ...]  # the modes these frames stand for: msvq decodes the same frames in every mode
    crf: int | None
    clips: list[np.ndarray]  # uint8 [real frames, H, W, 3] per evaluated clip
    bits: list[Bits] | None  # per evaluated clip, for per-clip mode


def _padded_pixels(header: Header) -> int:
    return header.n_clips * header.clip_frames * header.clip_height * header.clip_width


def _bits(
    m: _Model, video: Video, indices: tuple[np.ndarray, ...], start: int, stop: int, frames: int
) -> tuple[Bits, bytes]:
    """The rate of clips [start, stop) of ``video`` as a .msvq file of their own with each coder (and each
    coder's streams per level, the context model's ideal code length per level, the paper's formula), and the
    context-coded file."""
    sliced = tuple(a[start:stop] for a in indices)
    files = {name: codes_to_bytes(m.loaded, sliced, frames, video.info, codec=name, quality=_quality(m, name))
             for name in CODERS}  # fmt: skip
    header, data = files["prior"]
    level_bits = {name: [8 * len(s) for s in read_bytes(f).streams] for name, (_, f) in files.items()}
    ideal = [coder.ideal_bits(a) for coder, a in zip(entropy_model(m.loaded)[1], sliced)]
    prior_coders = prior_model(m.loaded)[1]
    ideal_prior = [coder.ideal_bits(a, sliced[i - 1] if i else None)
                   for i, (coder, a) in enumerate(zip(prior_coders, sliced))]  # fmt: skip
    bits = Bits(8 * len(data), bits_deflate=8 * len(files["deflate"][1]),
                paper_bits=header.paper_bpp * _padded_pixels(header), bits_zstd=8 * len(files["zstd"][1]),
                level_bits=level_bits, ideal_bits=ideal, bits_context=8 * len(files["context"][1]),
                ideal_bits_prior=ideal_prior)  # fmt: skip
    return bits, data


def _quality(m: _Model, coder: str) -> Preset:
    """The preset a coder's file records: the model's for prior and context; zstd and DEFLATE files of the same
    codes (for comparison) say max, the only quality they take."""
    return m.quality if coder in ("prior", "context") else preset(DEFAULT_QUALITY)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS reports bytes, Linux KiB


def _load_models(opts: BenchOptions) -> list[_Model]:
    paths = list(opts.weights) or [find_weights()[0]]
    models, labels = [], set()
    for i, path in enumerate(paths):
        label = Path(path).name.removesuffix(".safetensors")
        if label in labels:
            label = f"{label}#{i + 1}"
        labels.add(label)
        loaded = load_model(path, opts.device)
        for quality in opts.qualities:
            own = label if tuple(opts.qualities) == (DEFAULT_QUALITY,) else f"{label}@{quality}"
            models.append(_Model(own, Path(path), loaded, preset(quality), label))
    configs = [m.loaded.model.config for m in models]
    geometry = {(c.fps, c.clip_size, c.clip_frames) for c in configs}
    if len(geometry) > 1:
        raise UsageError(f"weights: the models cut clips differently ({sorted(geometry)}); compare like with like",
                         option="weights")  # fmt: skip
    return models


def _msvq_video(
    m: _Model, video: Video, modes: tuple[str, ...], batch_size: int, device: torch.device, precision: str = "auto"
) -> tuple[_Reconstruction, StreamRecord, int]:
    """One video through one model: its reconstruction (per-clip rates included), its per-video stream, and
    the size of the whole file ``msvq encode`` writes for it."""
    cfg = m.loaded.model.config
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    choose, _ = rate_control(m.loaded, m.quality)  # one chooser per video: one file
    indices = encode_clips(m.loaded, [c.frames for c in video.clips], batch_size, precision=precision,
                           choose=choose)  # fmt: skip
    m.model_encode_s += time.perf_counter() - started
    files = {}
    for name in CODERS:  # indices -> bytes, each coder timed on its own
        t = time.perf_counter()
        files[name] = codes_to_bytes(m.loaded, indices, video.frame_count, video.info, codec=name,
                                     quality=_quality(m, name))[1]  # fmt: skip
        m.coder_encode_s[name] += time.perf_counter() - t
        m.coder_bytes[name] += len(files[name])
    decoded = {}
    for name in CODERS:  # bytes -> indices
        t = time.perf_counter()
        decoded[name] = container_indices(read_bytes(files[name]), m.loaded)
        m.coder_decode_s[name] += time.perf_counter() - t
        if any(not np.array_equal(a, b) for a, b in zip(decoded[name], indices)):
            raise RuntimeError(f"the {name} .msvq file of {video.path} does not read back to its indices")
    t = time.perf_counter()
    frames = np.concatenate(list(decode_clips(m.loaded, decoded["prior"], batch_size, precision=precision)))
    frames = frames[: video.frame_count]
    m.model_decode_s += time.perf_counter() - t
    m.encode_s = m.model_encode_s + m.coder_encode_s["prior"]
    m.decode_s = m.model_decode_s + m.coder_decode_s["prior"]
    m.frames += video.frame_count
    m.clips += len(video.clips)
    m.peak = max(m.peak, _peak_memory(device))
    data = files["prior"]
    m.file_bytes += len(data)
    m.file_bytes_deflate += len(files["deflate"])

    chosen = [clip.index for clip in video.selected]
    m.grids.append(tuple(a[chosen] for a in indices))  # [evaluated clips, t, h, w] per level
    recon, per_clip = [], []
    for clip in video.selected:
        start = clip.index * cfg.clip_frames
        recon.append(frames[start : start + clip.real_frames])
        bits, own = _bits(m, video, indices, clip.index, clip.index + 1, clip.real_frames)
        per_clip.append(bits)
        own_indices = container_indices(read_bytes(own), m.loaded)
        if any(not np.array_equal(a, b[clip.index : clip.index + 1]) for a, b in zip(own_indices, indices)):
            raise RuntimeError(f"a per-clip .msvq file of {video.path} does not read back to its indices")
    n, real = len(video.selected), sum(c.real_frames for c in video.selected)
    stream = _stream(m.system, "msvq", None, video, _bits(m, video, indices, 0, n, real)[0])
    return _Reconstruction(m.system, "msvq", modes, None, recon, per_clip), stream, len(data)


def level_figures(m: _Model, batch_size: int, precision: str) -> dict[str, Any]:
    """Per level, over every evaluated clip: distinct grids and codes, and their perplexity
    (``model.levels``); for a two-level model, ``top_effect_db``: the PSNR of the decode with every clip's top
    grid replaced by the most common one against the real decode (None when they are identical: the top level
    changes nothing)."""
    names = m.loaded.model.config.level_names
    per_level = [np.concatenate([g[i] for g in m.grids]) for i in range(len(names))]  # [clips, t, h, w]
    figures: dict[str, Any] = {"levels": {n: level_use(a).to_dict() for n, a in zip(names, per_level)}}
    if len(names) == 2:
        fixed = np.broadcast_to(most_common_grid(per_level[0]), per_level[0].shape).copy()
        real = decode_clips(m.loaded, tuple(per_level), batch_size, precision=precision)
        other = decode_clips(m.loaded, (fixed, per_level[1]), batch_size, precision=precision)
        err = [np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(real, other)]
        figures["top_effect_db"] = 10 * np.log10(255**2 / np.mean(err)) if np.mean(err) > 0 else None
    return figures


def _warm_up(m: _Model, video: Video, batch_size: int, precision: str) -> None:
    clips = [c.frames for c in video.clips[:batch_size]]
    codes = encode_clips(m.loaded, clips, batch_size, precision=precision)
    list(decode_clips(m.loaded, codes, batch_size, precision=precision))


def _efficiency(m: _Model, precision: str, device: torch.device, gemm: dict[torch.dtype, list[float]],
                batch: list[np.ndarray]) -> perf.Efficiency:  # fmt: skip
    """The model's FLOP rate in this run (model time only, every computed frame) against the median same-run
    GEMM rate in its precision; where under perf.TARGET_SHARE, the top ops of one batch of ``batch``."""
    model = m.loaded.model
    runner = fast_model(model, precision)
    dtypes = resolve_precision(precision, device)
    flops = perf.flops_per_frame(model)
    computed = m.clips * model.config.clip_frames
    fps = tuple(computed / t if t else 0.0 for t in (m.model_encode_s, m.model_decode_s))
    rates = tuple(statistics.median(gemm[d]) for d in dtypes)
    share = tuple(f * flop / rate for f, flop, rate in zip(fps, flops, rates))
    x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 4, 1, 2, 3).float().div_(255.0)
    codes = runner.encode(x)
    held = (perf.top_ops(lambda: runner.encode(x)) if share[0] < perf.TARGET_SHARE else None,
            perf.top_ops(lambda: runner.decode(codes)) if share[1] < perf.TARGET_SHARE else None)  # fmt: skip
    return perf.Efficiency(tuple(str(d).removeprefix("torch.") for d in dtypes), tuple(f / 1e9 for f in flops),
                           fps, tuple(r / 1e12 for r in rates), share, held)  # fmt: skip


def run_bench(opts: BenchOptions, log: Callable[[str], None] | None = None) -> BenchResult:
    started = time.perf_counter()
    log = log or (lambda message: None)
    if not set(opts.modes) <= set(MODES) or not opts.modes:
        raise UsageError(f"modes must be some of {MODES}")
    check_batch_size(opts.batch_size)
    if not opts.qualities or len(set(opts.qualities)) != len(opts.qualities):
        raise UsageError("qualities must name one or more presets, each once", option="quality")
    for quality in opts.qualities:
        preset(quality)  # a UsageError for a bad name, before any work
    device = pick_device(opts.device)
    dtypes = set(resolve_precision(opts.precision, device))  # a UsageError for a bad name, before any work
    gemm: dict[torch.dtype, list[float]] = {d: [] for d in dtypes}  # same-run GEMM rates, one per video
    models = _load_models(opts)
    cfg = models[0].loaded.model.config
    scorer, note = Scorer.create(opts.lpips, device, opts.vgg_weights)
    notes = [note] if note else []

    codecs, ffmpeg = [], None
    if opts.classic:
        ffmpeg = ffmpeg_path()
        if ffmpeg is None:
            notes.append("classic codecs skipped: ffmpeg is not on PATH")
        else:
            codecs = [CODECS[name] for name in opts.codecs]
            for c in missing_encoders(ffmpeg, codecs):
                notes.append(f"{c.name} skipped: this ffmpeg has no {c.encoder} encoder")
                codecs.remove(c)
    crfs = {c.name: tuple(opts.crfs.get(c.name, c.crfs)) for c in codecs}

    videos: list[VideoRecord] = []
    clips: list[ClipRecord] = []
    streams: list[StreamRecord] = []
    showcase: list[Showcase] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    iterator = iter_videos(
        opts.inputs, fps=cfg.fps, size=cfg.clip_size, clip_frames=cfg.clip_frames,
        include_partial=opts.include_partial, max_clips=opts.max_clips, input_fps=opts.input_fps, skipped=skipped,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="msvq-bench-") as work:
        for n_video, video in enumerate(iterator):
            if n_video == 0:
                first_batch = [c.frames for c in video.clips[: opts.batch_size]]
                for m in models:
                    _warm_up(m, video, opts.batch_size, opts.precision)
            recons: list[_Reconstruction] = []
            file_bytes: dict[str, int] = {}
            for m in models:
                recon, stream, file_bytes[m.label] = _msvq_video(m, video, opts.modes, opts.batch_size, device,
                                                                 opts.precision)  # fmt: skip
                recons.append(recon)
                if "per-video" in opts.modes:
                    streams.append(stream)
            for dtype in gemm:  # beside each video's timings, so that a busy machine slows both alike
                gemm[dtype].append(perf.gemm_rate(dtype, device, seconds=0.3))
            videos.append(VideoRecord(
                video.path, video.source_bytes, video.frame_count, len(video.clips), len(video.selected),
                sum(c.real_frames for c in video.selected), file_bytes,
            ))  # fmt: skip
            for codec in codecs:
                if codec.name not in failed:
                    try:
                        args = (crfs[codec.name], video, opts.modes, Path(work), cfg.fps, ffmpeg)
                        streams += _classic_video(codec, *args, recons)
                    except ClassicError as err:
                        failed[codec.name] = str(err)
                        notes.append(f"{codec.name} dropped from the comparison: {err}")
            recons = [r for r in recons if r.system not in failed]
            clips += _score(scorer, video, recons, showcase if n_video == 0 else None)
            log(f"{video.path}: {len(video.selected)} clip(s) of {len(video.clips)}, {video.frame_count} frames")
    if not videos:
        raise InputError("no clip to evaluate: " + ("; ".join(skipped) or "the inputs hold no frames"))
    notes += [f"skipped {s}" for s in skipped]
    clips = [r for r in clips if r.system not in failed]
    streams = [r for r in streams if r.system not in failed]
    summary = summarize(clips, streams, cfg)
    efficiency = [_efficiency(m, opts.precision, device, gemm, first_batch) for m in models]
    notes.append("same-run GEMM rate (msvq_codec.perf.gemm_rate, median of one per video): " + ", ".join(
        f"{str(d).removeprefix('torch.')} {statistics.median(r) / 1e12:.3f} TFLOP/s" for d, r in gemm.items()))
    for m, e in zip(models, efficiency):
        for direction, held in zip(("encode", "decode"), e.held_back):
            if held:
                notes.append(f"{m.label} {direction} is under {perf.TARGET_SHARE:.0%} of the GEMM rate; one batch "
                             f"spends its time on: {held}")  # fmt: skip
    result = BenchResult(
        settings=_settings(opts, device, models, crfs, ffmpeg, scorer),
        videos=videos, clips=clips,
        models=[_model_record(m, videos, e, level_figures(m, opts.batch_size, opts.precision))
                for m, e in zip(models, efficiency)],
        streams=streams,
        summary=summary, bd_rate=bd_rates(summary, _curves(models)), notes=notes, showcase=showcase,
    )  # fmt: skip
    result.seconds = time.perf_counter() - started
    return result


def _classic_video(
    codec: Codec, crfs, video: Video, modes, work: Path, fps: float, ffmpeg: str, recons: list[_Reconstruction]
) -> list[StreamRecord]:
    """One video through one classic codec at every CRF: appends to ``recons`` (per-clip mode with each clip's
    bits) and returns the per-video stream records."""
    streams = []
    for crf in crfs:
        if "per-clip" in modes:
            out = [encode_decode(c.real, codec, crf, work, fps, ffmpeg) for c in video.selected]
            bits = [Bits(8 * size) for size, _ in out]
            recons.append(_Reconstruction(codec.name, "classic", ("per-clip",), crf, [f for _, f in out], bits))
        if "per-video" in modes:
            whole = np.concatenate([c.real for c in video.selected])
            size, frames = encode_decode(whole, codec, crf, work, fps, ffmpeg)
            bounds = np.cumsum([0] + [c.real_frames for c in video.selected])
            parts = [frames[a:b] for a, b in zip(bounds, bounds[1:])]
            recons.append(_Reconstruction(codec.name, "classic", ("per-video",), crf, parts, None))
            streams.append(_stream(codec.name, "classic", crf, video, Bits(8 * size)))
    return streams


def _stream(system: str, kind: str, crf: int | None, video: Video, bits: Bits) -> StreamRecord:
    frames = sum(c.real_frames for c in video.selected)
    return StreamRecord(system, kind, "per-video", crf, video.path, len(video.selected), frames, bits.bits,
                        **bits.coder_rates())  # fmt: skip


def _score(scorer: Scorer, video: Video, recons: list[_Reconstruction], showcase: list | None) -> list[ClipRecord]:
    """Score every reconstruction of every evaluated clip; one record per (series, clip)."""
    out = []
    for i, clip in enumerate(video.selected):
        prepared = scorer.prepare(clip.real)
        if showcase is not None and i == 0:
            showcase.append(Showcase("source", "source", (), None, clip.real))
        for r in recons:
            metrics = scorer.score(prepared, r.clips[i])
            if showcase is not None and i == 0:
                showcase.append(Showcase(r.system, r.kind, r.modes, r.crf, r.clips[0]))
            for mode in r.modes:
                bits = r.bits[i] if r.bits is not None and mode == "per-clip" else NO_BITS
                out.append(ClipRecord(
                    r.system, r.kind, mode, r.crf, video.path, clip.index, clip.real_frames, metrics["psnr"],
                    metrics["ssim"], metrics["lpips"], bits.bits, **bits.coder_rates(),
                ))  # fmt: skip
    return out


def summarize(clips: list[ClipRecord], streams: list[StreamRecord], cfg: ModelConfig) -> list[Point]:
    """One rate-distortion point per series: total bits / total pixels, means over clips."""
    pixels_per_frame = cfg.clip_size * cfg.clip_size
    groups: dict[Series, list[ClipRecord]] = defaultdict(list)
    for r in clips:
        groups[r.series].append(r)
    by_stream: dict[Series, list[StreamRecord]] = defaultdict(list)
    for s in streams:
        by_stream[s.series].append(s)
    points = []
    for series, records in groups.items():
        rate_records = records if series.mode == "per-clip" else by_stream[series]
        frames = sum(r.frames for r in rate_records)
        bits = sum(r.bits for r in rate_records)
        bpp = bits / (frames * pixels_per_frame)
        msvq = {}
        if records[0].kind == "msvq":
            padded = len(records) * cfg.clip_frames * pixels_per_frame
            bpp_deflate = sum(r.bits_deflate for r in rate_records) / (frames * pixels_per_frame)
            bpp_zstd = sum(r.bits_zstd for r in rate_records) / (frames * pixels_per_frame)
            per_level = [cfg.grid(name) for name in cfg.level_names]
            counts = [sum(r.clips if isinstance(r, StreamRecord) else 1 for r in rate_records) * t * h * w
                      for t, h, w in per_level]  # fmt: skip
            level_bpi = {name: [sum(r.level_bits[name][i] for r in rate_records) / n for i, n in enumerate(counts)]
                         for name in CODERS}  # fmt: skip
            level_bpi["ideal prior"] = [sum(r.ideal_bits_prior[i] for r in rate_records) / n for i, n in enumerate(counts)]
            level_bpi["ideal context"] = [sum(r.ideal_bits[i] for r in rate_records) / n for i, n in enumerate(counts)]
            msvq = {"bpp_context": sum(r.bits_context for r in rate_records) / (frames * pixels_per_frame),
                    "bpp_deflate": bpp_deflate, "ratio_raw_deflate": RAW_BPP / bpp_deflate,
                    "bpp_paper": sum(r.paper_bits for r in rate_records) / padded, "bpp_zstd": bpp_zstd,
                    "ratio_raw_zstd": RAW_BPP / bpp_zstd, "level_bits_per_index": level_bpi}  # fmt: skip
        points.append(Point(
            series.system, records[0].kind, series.mode, series.crf, len(records), frames, bits, bpp, RAW_BPP / bpp,
            mean(r.psnr for r in records), mean(r.ssim for r in records), mean(r.lpips for r in records), **msvq,
        ))  # fmt: skip
    return points


def _curves(models: list[_Model]) -> dict[str, list[str]]:
    """Per weights label, the systems of its presets, where there are two or more: one RD curve each."""
    curves: dict[str, list[str]] = defaultdict(list)
    for m in models:
        curves[m.base].append(m.system)
    return {base: systems for base, systems in curves.items() if len(systems) > 1}


def bd_rates(summary: list[Point], curves: dict[str, list[str]] | None = None) -> list[BDRecord]:
    """BD-rate of each msvq point against each classic codec's CRF curve, per mode, for PSNR and LPIPS; and of
    each curve of ``curves`` (weights label -> its presets' systems) against each codec's curve."""
    out = []
    for base, systems in (curves or {}).items():
        for mode in MODES:
            tests = [p for p in summary if p.system in systems and p.mode == mode]
            anchors: dict[str, list[Point]] = defaultdict(list)
            for p in summary:
                if p.kind == "classic" and p.mode == mode:
                    anchors[p.system].append(p)
            for codec, points in anchors.items():
                for metric in ("psnr", "lpips"):
                    if len(tests) < 2 or any(t.quality(metric) is None for t in tests):
                        continue
                    result = bd_rate([p.bpp for p in points], [p.quality(metric) for p in points],
                                     [t.bpp for t in tests], [t.quality(metric) for t in tests])  # fmt: skip
                    out.append(BDRecord(f"msvq:{base} curve", codec, mode, metric, result.value, result.method,
                                        result.note))  # fmt: skip
    for test in (p for p in summary if p.kind == "msvq"):
        curves: dict[str, list[Point]] = defaultdict(list)
        for p in summary:
            if p.kind == "classic" and p.mode == test.mode:
                curves[p.system].append(p)
        for codec, points in curves.items():
            for metric in ("psnr", "lpips"):
                if test.quality(metric) is None:
                    continue
                result = bd_rate([p.bpp for p in points], [p.quality(metric) for p in points], [test.bpp],
                                 [test.quality(metric)])  # fmt: skip
                out.append(BDRecord(test.system, codec, test.mode, metric, result.value, result.method, result.note))
    return out


def _model_record(m: _Model, videos: list[VideoRecord], efficiency: perf.Efficiency | None = None,
                  levels: dict[str, Any] | None = None) -> ModelRecord:  # fmt: skip
    cfg = m.loaded.model.config
    source = sum(v.source_bytes for v in videos)
    return ModelRecord(
        system=m.system, label=m.label, weights=str(m.path), model_id=m.loaded.model_id.hex(),
        quality=m.quality.name, rd_lambda=m.quality.rd_lambda, base=m.base or m.label,
        params=sum(p.numel() for p in m.loaded.model.parameters()),
        levels=[{"name": n, "grid": list(cfg.grid(n)), "codebook_size": cfg.codebook_of(n),
                 **(levels or {}).get("levels", {}).get(n, {})} for n in cfg.level_names],
        top_effect_db=(levels or {}).get("top_effect_db"),
        bpp_formula=paper_bpp(cfg), frames=m.frames, encode_seconds=m.encode_s, decode_seconds=m.decode_s,
        encode_fps=m.frames / m.encode_s if m.encode_s else None,
        decode_fps=m.frames / m.decode_s if m.decode_s else None, peak_memory_bytes=m.peak,
        source_bytes=source, file_bytes=m.file_bytes, file_bytes_deflate=m.file_bytes_deflate,
        ratio_source=source / m.file_bytes if m.file_bytes else None,
        ratio_source_deflate=source / m.file_bytes_deflate if m.file_bytes_deflate else None,
        entropy_id=entropy_model(m.loaded)[0].entropy_id.hex(), prior_id=prior_model(m.loaded)[0].prior_id.hex(),
        coders={name: {
            "file_bytes": m.coder_bytes[name],
            "encode_fps": m.frames / (m.model_encode_s + m.coder_encode_s[name]) if m.frames else None,
            "decode_fps": m.frames / (m.model_decode_s + m.coder_decode_s[name]) if m.frames else None,
            "entropy_encode_ms_per_clip": 1e3 * m.coder_encode_s[name] / m.clips if m.clips else None,
            "entropy_decode_ms_per_clip": 1e3 * m.coder_decode_s[name] / m.clips if m.clips else None,
        } for name in CODERS},
        efficiency=None if efficiency is None else {
            direction: {"precision": efficiency.precision[i], "gflop_per_frame": efficiency.gflop_per_frame[i],
                        "model_fps": efficiency.fps[i], "gemm_tflops": efficiency.gemm_tflops[i],
                        "share_of_gemm": efficiency.share[i], "top_ops": efficiency.held_back[i]}
            for i, direction in enumerate(("encode", "decode"))},
    )  # fmt: skip


def _settings(opts: BenchOptions, device: torch.device, models, crfs, ffmpeg, scorer: Scorer) -> Settings:
    return Settings(
        msvq_version=__version__, inputs=[str(p) for p in opts.inputs], weights=[str(m.path) for m in models],
        device=str(device), batch_size=opts.batch_size, precision=opts.precision, modes=list(opts.modes),
        qualities=list(opts.qualities),
        include_partial=opts.include_partial, max_clips=opts.max_clips, lpips=scorer.has_lpips,
        peak_memory="torch.cuda.max_memory_allocated" if device.type == "cuda" else "ru_maxrss (whole process)",
        ffmpeg=ffmpeg_version(ffmpeg) if ffmpeg else None,
        codecs={name: {"encoder": CODECS[name].encoder, "args": list(CODECS[name].args), "crf": list(values),
                       "stream": CODECS[name].muxer, "pix_fmt": "yuv420p"} for name, values in crfs.items()},
        definitions=DEFINITIONS,
    )  # fmt: skip

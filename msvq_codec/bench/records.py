"""What ``msvq bench`` measures, as typed records (frozen dataclasses). The JSON report is their fields, in
order (``report.to_json``); what each rate and distortion means is in ``run.DEFINITIONS``.

A *series* is one rate-distortion curve point's identity: a system (``msvq:<label>``,
``msvq:<label>@<preset>`` with several rate-control presets, or a classic codec's name) coding in one mode
(``per-clip``: each evaluated clip its own stream; ``per-video``: the evaluated clips of a video as one
stream) at one CRF (classic codecs; None for msvq).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

MODES = ("per-clip", "per-video")
CODERS = ("prior", "context", "zstd", "deflate")  # how a .msvq file codes its indices; prior is msvq encode's default


class Series(NamedTuple):
    system: str  # "msvq:<label>" or a classic codec's name
    mode: str  # "per-clip" | "per-video"
    crf: int | None  # None for msvq


@dataclass(frozen=True, kw_only=True)
class CoderRates:
    """msvq's rates beside its file's bits: the DEFLATE and zstd files', the paper's formula's, each coder's
    stream bits per level and the two models' ideal code lengths per level (-log2 p of the indices under the
    prior's and the context model's integer probabilities). None for classic codecs, and for a clip in per-video
    mode."""

    bits_deflate: int | None = None
    paper_bits: float | None = None  # sum over levels of N log2 K, over the stream's (padded) clips
    bits_zstd: int | None = None
    level_bits: dict[str, list[int]] | None = None  # per coder (CODERS), per level (coarse first): stream bits
    ideal_bits: list[float] | None = None  # per level: the context model's -log2 p
    bits_context: int | None = None  # the context-coded file's bits (--codec context)
    ideal_bits_prior: list[float] | None = None  # per level: the prior's -log2 p

    def coder_rates(self) -> dict[str, Any]:
        """These fields by name, to pass on to a record."""
        return {f.name: getattr(self, f.name) for f in fields(CoderRates)}


@dataclass(frozen=True)
class Bits(CoderRates):
    """The rate of one stream: its file's bits (for msvq: the prior-coded file, what msvq encode writes), and
    for msvq the other rates of ``CoderRates``."""

    bits: int | None  # None: no stream of its own (a clip in per-video mode)


NO_BITS = Bits(None)


@dataclass(frozen=True)
class _OfSeries:
    system: str
    kind: str  # "msvq" | "classic"
    mode: str
    crf: int | None

    @property
    def series(self) -> Series:
        return Series(self.system, self.mode, self.crf)


@dataclass(frozen=True)
class ClipRecord(CoderRates, _OfSeries):
    """One evaluated clip as one system coded it in one mode: its distortion, and in per-clip mode its bits."""

    video: str
    clip: int  # the clip's position in its video
    frames: int  # real (scored) frames
    psnr: float
    ssim: float
    lpips: float | None  # None without VGG16 weights
    bits: int | None  # per-video mode: None (the video's stream is a StreamRecord)


@dataclass(frozen=True)
class StreamRecord(CoderRates, _OfSeries):
    """The per-video stream of one video's evaluated clips, as one system coded it (mode "per-video")."""

    video: str
    clips: int
    frames: int
    bits: int


@dataclass(frozen=True)
class Point(_OfSeries):
    """One rate-distortion point: a series over every evaluated clip (total bits over total pixels, means of
    the per-clip distortions)."""

    clips: int
    frames: int
    bits: int
    bpp: float
    ratio_raw: float
    psnr: float | None
    ssim: float | None
    lpips: float | None
    bpp_deflate: float | None = None  # msvq only, as the ones below
    ratio_raw_deflate: float | None = None
    bpp_paper: float | None = None
    bpp_zstd: float | None = None
    ratio_raw_zstd: float | None = None
    bpp_context: float | None = None  # msvq: as bpp, with --codec context
    # per coder (CODERS, and "ideal prior" / "ideal context": the models' -log2 p), per level: stream bits /
    # indices of the level
    level_bits_per_index: dict[str, list[float]] | None = None

    def quality(self, metric: str) -> float | None:
        """``psnr``, ``ssim`` or ``lpips``."""
        return {"psnr": self.psnr, "ssim": self.ssim, "lpips": self.lpips}[metric]


@dataclass(frozen=True)
class BDRecord:
    """BD-rate of an msvq point (or of one model's curve over its rate-control presets, ``msvq:<label> curve``)
    against a classic codec's CRF curve, in one mode, for one quality metric."""

    system: str
    anchor: str
    mode: str
    metric: str  # "psnr" | "lpips"
    bd_rate: float  # fraction: +0.1 = 10 % more bits than the anchor; NaN when undefined
    method: str
    note: str | None


@dataclass(frozen=True)
class VideoRecord:
    path: str
    source_bytes: int
    frame_count: int
    clips: int
    evaluated_clips: int
    evaluated_frames: int
    msvq_file_bytes: dict[str, int]  # per model label: the size of the file msvq encode writes for it


@dataclass(frozen=True)
class ModelRecord:
    system: str
    label: str
    weights: str
    model_id: str
    params: int
    levels: list[dict[str, Any]]  # name, grid, codebook_size; over the evaluated clips (model.levels.LevelUse):
    # clips, grids (distinct grids among them), codes (distinct entries used), perplexity
    bpp_formula: float
    frames: int
    encode_seconds: float
    decode_seconds: float
    encode_fps: float | None
    decode_fps: float | None
    peak_memory_bytes: int
    source_bytes: int
    file_bytes: int
    file_bytes_deflate: int
    ratio_source: float | None
    ratio_source_deflate: float | None
    entropy_id: str | None = None  # the context model the context-coded files were made with
    prior_id: str | None = None  # the prior the prior-coded files were made with
    # per coder (CODERS): file_bytes, encode_fps and decode_fps (the model's own time plus that coder's),
    # entropy_encode_ms_per_clip and entropy_decode_ms_per_clip (bytes <-> indices alone)
    coders: dict[str, dict[str, float | None]] | None = None
    # per direction (encode, decode): precision (dtype), gflop_per_frame, model_fps (model time only, every
    # computed frame), gemm_tflops (median same-run GEMM rate in that dtype), share_of_gemm, top_ops (a profile
    # of one batch, where the share is under perf.TARGET_SHARE)
    efficiency: dict[str, dict[str, Any]] | None = None
    quality: str = "max"  # the rate-control preset (msvq_codec.rdo) this system encoded at
    rd_lambda: float = 0.0
    base: str = ""  # the weights' label: the systems of one weights file at several presets share it
    # PSNR of the decode with every clip's top grid replaced by the most common one, against the real decode:
    # how much the top level changes the picture (None: not at all, or a single-level model)
    top_effect_db: float | None = None


@dataclass(frozen=True)
class Settings:
    msvq_version: str
    inputs: list[str]
    weights: list[str]
    device: str
    batch_size: int
    modes: list[str]
    include_partial: bool
    max_clips: int
    lpips: bool
    peak_memory: str
    ffmpeg: str | None
    codecs: dict[str, dict[str, Any]]  # per classic codec: encoder, args, crf list, stream, pix_fmt
    definitions: dict[str, str]
    precision: str = "auto"  # msvq's --precision (msvq_codec.model.fast)
    qualities: list[str] = field(default_factory=lambda: ["max"])  # msvq's --quality presets


@dataclass(frozen=True)
class Showcase:
    """The first evaluated clip as one system reconstructed it (the source itself first), for the picture."""

    system: str  # "source", "msvq:<label>" or a codec
    kind: str  # "source" | "msvq" | "classic"
    modes: tuple[str, ...]  # the modes these frames stand for (msvq: every mode; the source: none)
    crf: int | None
    frames: np.ndarray = field(repr=False)  # uint8 [n, H, W, 3]


@dataclass
class BenchResult:
    settings: Settings
    videos: list[VideoRecord]
    models: list[ModelRecord]
    clips: list[ClipRecord]  # one per (series, clip)
    streams: list[StreamRecord]  # one per (per-video series, video)
    summary: list[Point]  # one per series
    bd_rate: list[BDRecord]
    notes: list[str]
    showcase: list[Showcase]
    seconds: float = 0.0

    def point(self, system: str, mode: str, crf: int | None = None) -> Point | None:
        return next((p for p in self.summary if p.series == (system, mode, crf)), None)

    def nearest(self, codec: str, bpp: float, mode: str) -> Point | None:
        """The CRF point of ``codec`` whose rate is nearest ``bpp`` (in log rate)."""
        points = [p for p in self.summary if p.system == codec and p.mode == mode]
        return min(points, key=lambda p: abs(math.log(p.bpp / bpp)), default=None)

    def classic_systems(self) -> list[str]:
        return list(dict.fromkeys(p.system for p in self.summary if p.kind == "classic"))

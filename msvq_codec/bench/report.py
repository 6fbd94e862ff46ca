"""What ``msvq bench`` shows and writes: rich tables in the layout of the paper's Tables 1 and 2, the JSON
report, the rate-distortion plot and the side-by-side frames picture (the last two need matplotlib, an
optional dependency: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from msvq_codec.bench.classic import CODECS
from msvq_codec.bench.records import BDRecord, BenchResult
from msvq_codec.errors import UsageError
from msvq_codec.outputs import atomic_output

JSON_SCHEMA = "msvq-bench/1"


def require_matplotlib(option: str) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"{option} needs matplotlib: pip install -e '.[bench]' (or pip install matplotlib)")


# ---- helpers ------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _label(system: str) -> str:
    return f"MS-VQ-VAE ({system.removeprefix('msvq:')})" if system.startswith("msvq:") else CODECS[system].label


def _main_mode(result: BenchResult) -> str:
    modes = result.settings.modes
    return "per-clip" if "per-clip" in modes else modes[0]


# ---- tables -------------------------------------------------------------------------------------------------


def table1(result: BenchResult) -> Table:
    """Paper Table 1 layout (Metric, Mean, Unit), one value column per model."""
    n_clips = len({(r.video, r.clip) for r in result.clips})
    table = Table(title=f"Aggregate performance over {n_clips} clips of {len(result.videos)} videos (Table 1 layout)")
    table.add_column("Metric")
    for m in result.models:
        table.add_column(m.label, justify="right")
    table.add_column("Unit")
    clip_pts = [result.point(m.system, "per-clip") for m in result.models]
    video_pts = [result.point(m.system, "per-video") for m in result.models]
    any_pts = [c or v for c, v in zip(clip_pts, video_pts)]
    rate_mode = "per-video" if all(video_pts) else "per-clip"
    rate_pts = video_pts if all(video_pts) else clip_pts

    def row(name: str, values, unit: str, digits: int = 2) -> None:
        table.add_row(name, *(_fmt(v, digits) for v in values), unit)

    row("PSNR", [p.psnr for p in any_pts], "dB")
    row("SSIM", [p.ssim for p in any_pts], "—", 4)
    row("LPIPS (VGG)", [p.lpips for p in any_pts], "—", 4)
    row("bpp, paper formula", [m.bpp_formula for m in result.models], "bits/pixel", 4)
    for mode, pts in (("per-video", video_pts), ("per-clip", clip_pts)):
        if all(pts):
            row(f"bpp, .msvq prior (msvq encode), {mode}", [p.bpp for p in pts], "bits/pixel", 4)
            row(f"bpp, .msvq context, {mode}", [p.bpp_context for p in pts], "bits/pixel", 4)
            row(f"bpp, .msvq zstd, {mode}", [p.bpp_zstd for p in pts], "bits/pixel", 4)
            row(f"bpp, .msvq DEFLATE, {mode}", [p.bpp_deflate for p in pts], "bits/pixel", 4)
    row(f"Compression ratio vs raw RGB (prior, {rate_mode})", [p.ratio_raw for p in rate_pts], "×", 1)
    row(f"Reduction vs raw RGB (prior, {rate_mode})", [100 * (1 - 1 / p.ratio_raw) for p in rate_pts], "%", 2)
    row("Compression ratio vs source files", [m.ratio_source for m in result.models], "×", 2)
    row("Reduction vs source files", [100 * (1 - 1 / m.ratio_source) for m in result.models], "%", 2)
    row(f"Encode speed ({result.settings.device})", [m.encode_fps for m in result.models], "frames/s", 1)
    row(f"Decode speed ({result.settings.device})", [m.decode_fps for m in result.models], "frames/s", 1)
    effs = [m.efficiency for m in result.models]
    if all(effs):
        for d in ("encode", "decode"):
            kinds = "/".join(sorted({e[d]["precision"] for e in effs}))
            row(f"Model compute, {d}", [e[d]["gflop_per_frame"] for e in effs], "GFLOP/frame", 3)
            row(f"Model alone, {d} ({kinds})", [e[d]["model_fps"] for e in effs], "frames/s", 1)
            row(f"Model {d}: share of same-run {kinds} GEMM", [100 * e[d]["share_of_gemm"] for e in effs], "%", 0)
    row("Peak memory", [m.peak_memory_bytes / 2**20 for m in result.models], "MiB", 0)
    return table


def coders_table(result: BenchResult) -> Table:
    """Each coder of the indices (and the two models' ideal code lengths): bits per index of each level, the
    file's bpp and its size against the context coder's, per mode; then each coder's speed."""
    table = Table(title="Coding the indices: prior (msvq encode's default), context, zstd, DEFLATE")
    levels = result.models[0].levels
    for name in ("Model", "Mode", "Coder", *(f"{lv['name']} bits/index" for lv in levels), "bpp (file)",
                 "vs context", "encode (frames/s)", "decode (frames/s)", "entropy coding (ms/clip, enc/dec)"):
        table.add_column(name, justify="left" if name in ("Model", "Mode", "Coder") else "right")
    for m in result.models:
        for mode in result.settings.modes:
            p = result.point(m.system, mode)
            if p is None or p.level_bits_per_index is None:
                continue
            files = {"prior": p.bpp, "context": p.bpp_context, "zstd": p.bpp_zstd, "deflate": p.bpp_deflate}
            for coder, per_level in p.level_bits_per_index.items():
                speed = (m.coders or {}).get(coder, {})
                bpp = files.get(coder)
                vs = (f"{100 * (bpp / p.bpp_context - 1):+.1f} %" if None not in (bpp, p.bpp_context)
                      and coder != "context" else "—")  # fmt: skip
                enc, dec = speed.get("entropy_encode_ms_per_clip"), speed.get("entropy_decode_ms_per_clip")
                table.add_row(
                    m.label, mode, f"{coder.removeprefix('ideal ')}: ideal -log2 p" if coder.startswith("ideal") else coder,
                    *(_fmt(v, 3) for v in per_level), _fmt(bpp, 4), vs, _fmt(speed.get("encode_fps"), 1),
                    _fmt(speed.get("decode_fps"), 1), f"{_fmt(enc, 2)} / {_fmt(dec, 2)}" if speed else "—",
                )  # fmt: skip
            table.add_section()
    return table


def levels_table(result: BenchResult) -> Table:
    """What each level of each model's codes carries over the evaluated clips (``model.levels``)."""
    table = Table(title="What each level carries (over the evaluated clips)")
    for name in ("Model", "Level", "Clips", "Distinct grids", "Distinct codes", "Perplexity", "Top's effect"):
        table.add_column(name, justify="left" if name in ("Model", "Level") else "right")
    for m in result.models:
        for lv in m.levels:
            effect = "—"
            if lv["name"] == "top":
                effect = "none" if m.top_effect_db is None else f"{m.top_effect_db:.2f} dB"
            table.add_row(m.label, lv["name"], _fmt(lv.get("clips"), 0), _fmt(lv.get("grids"), 0),
                          _fmt(lv.get("codes"), 0), _fmt(lv.get("perplexity"), 1), effect)  # fmt: skip
    table.caption = ("Top's effect: PSNR of the decode with every clip's top grid replaced by the most common "
                     "one, against the real decode ('none': identical, the top level is a constant)")
    return table


def table2(result: BenchResult) -> Table:
    """Paper Table 2 layout: the models, then each classic codec at the CRF whose rate is nearest msvq's."""
    mode = _main_mode(result)
    table = Table(title=f"Comparison ({mode} rates; Table 2 layout)")
    for name in ("Model", "bpp (file)", "bpp (paper)", "PSNR (dB)", "SSIM", "LPIPS", "Params (M)"):
        table.add_column(name, justify="left" if name == "Model" else "right")
    first = None
    for m in result.models:
        p = result.point(m.system, mode)
        first = first or p
        table.add_row(_label(m.system), _fmt(p.bpp, 4), _fmt(p.bpp_paper, 4), _fmt(p.psnr), _fmt(p.ssim, 4),
                      _fmt(p.lpips, 4), _fmt(m.params / 1e6, 2))  # fmt: skip
    for codec in result.classic_systems():
        p = result.nearest(codec, first.bpp, mode)
        if p:
            table.add_row(f"{_label(codec)}, CRF {p.crf}", _fmt(p.bpp, 4), "—", _fmt(p.psnr), _fmt(p.ssim, 4),
                          _fmt(p.lpips, 4), "—")  # fmt: skip
    return table


def classic_table(result: BenchResult) -> Table:
    table = Table(title="Classic codecs: CRF sweeps (yuv420p, elementary streams)")
    for name in ("Codec", "Mode", "CRF", "bpp", "PSNR (dB)", "SSIM", "LPIPS"):
        table.add_column(name, justify="left" if name in ("Codec", "Mode") else "right")
    for codec in result.classic_systems():
        for mode in result.settings.modes:
            for crf in result.settings.codecs[codec]["crf"]:
                p = result.point(codec, mode, crf)
                if p:
                    table.add_row(codec, mode, str(crf), _fmt(p.bpp, 4), _fmt(p.psnr), _fmt(p.ssim, 4),
                                  _fmt(p.lpips, 4))  # fmt: skip
            table.add_section()
    return table


def bd_table(result: BenchResult) -> Table:
    table = Table(title="BD-rate of msvq against each codec (negative: msvq needs fewer bits at equal quality)")
    for name in ("Model", "Anchor", "Mode", "BD-rate PSNR", "BD-rate LPIPS"):
        table.add_column(name, justify="right" if name.startswith("BD") else "left")
    rows: dict[tuple[str, str, str], dict[str, BDRecord]] = {}
    for r in result.bd_rate:
        rows.setdefault((r.system, r.anchor, r.mode), {})[r.metric] = r
    for (system, anchor, mode), by_metric in rows.items():
        cells = []
        for metric in ("psnr", "lpips"):
            r = by_metric.get(metric)
            if r is None:
                cells.append("—")
            else:
                cells.append(f"{100 * r.bd_rate:+.1f} %" if math.isfinite(r.bd_rate) else "n/a")
        table.add_row(system.removeprefix("msvq:"), anchor, mode, *cells)
    return table


def print_report(console: Console, result: BenchResult) -> None:
    console.print(table1(result))
    console.print(coders_table(result))
    console.print(levels_table(result))
    console.print(table2(result))
    if result.classic_systems():
        console.print(classic_table(result))
        console.print(bd_table(result))
        undefined = [r for r in result.bd_rate if not math.isfinite(r.bd_rate)]
        if undefined:
            r = undefined[0]
            console.print(f"n/a ({len(undefined)} of {len(result.bd_rate)}): undefined; e.g. {r.anchor} "
                          f"{r.mode} {r.metric}: {r.note} (every note is in --json)", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"bench took {result.seconds:.1f} s", highlight=False)


# ---- JSON ---------------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe: inf -> "inf", NaN -> null, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _fields(records: list) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records]


def to_json(result: BenchResult) -> dict[str, Any]:
    """Every record's fields, in order (the showcase frames are for the picture only)."""
    return _clean({
        "schema": JSON_SCHEMA, "seconds": result.seconds, "settings": dataclasses.asdict(result.settings),
        "videos": _fields(result.videos), "models": _fields(result.models), "summary": _fields(result.summary),
        "bd_rate": _fields(result.bd_rate), "notes": result.notes, "clips": _fields(result.clips),
        "streams": _fields(result.streams),
    })  # fmt: skip


def write_json(path: str | Path, result: BenchResult) -> None:
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(json.dumps(to_json(result), indent=1, allow_nan=False) + "\n")


# ---- pictures -----------------------------------------------------------------------------------------------


def _pyplot():
    require_matplotlib("--plot/--frames")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rd(path: str | Path, result: BenchResult) -> None:
    """PSNR-bpp and (with LPIPS) LPIPS-bpp: each codec's CRF curve per mode; each msvq model as a point, or as
    a curve over its rate-control presets (``--quality``)."""
    plt = _pyplot()
    metrics = [("psnr", "PSNR (dB), higher is better")]
    if result.settings.lpips:
        metrics.append(("lpips", "LPIPS (VGG), lower is better"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, ylabel) in zip(axes[0], metrics):
        for i, codec in enumerate(result.classic_systems()):
            for mode, style in (("per-clip", "-o"), ("per-video", "--s")):
                pts = sorted((p for p in result.summary if p.system == codec and p.mode == mode), key=lambda p: p.bpp)
                if pts:
                    ax.plot([p.bpp for p in pts], [p.quality(metric) for p in pts], style,
                            color=colors[i % len(colors)], markersize=4, label=f"{_label(codec)} {mode}")  # fmt: skip
        bases = list(dict.fromkeys(m.base or m.label for m in result.models))
        for j, base in enumerate(bases):  # one weights file: a point, or a curve over its presets
            systems = [m.system for m in result.models if (m.base or m.label) == base]
            name = _label(systems[0]) if len(systems) == 1 else f"MS-VQ-VAE ({base}), --quality"
            for mode, face, line in (("per-clip", None, "-"), ("per-video", "none", "--")):
                pts = sorted((p for p in (result.point(s, mode) for s in systems) if p is not None
                              and p.quality(metric) is not None and math.isfinite(p.quality(metric))),
                             key=lambda p: p.bpp)  # fmt: skip
                if pts:
                    style = "*" + (line if len(pts) > 1 else "")
                    ax.plot([p.bpp for p in pts], [p.quality(metric) for p in pts], style,
                            markersize=14 if len(pts) == 1 else 10, color="black" if j == 0 else colors[-1 - j],
                            markerfacecolor=face, label=f"{name} {mode}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (64x64, 16 fps; file bits)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Rate-distortion over {len({(r.video, r.clip) for r in result.clips})} clips")
    fig.tight_layout()
    _save(fig, plt, path)


def frames_picture(path: str | Path, result: BenchResult, rows: int = 4) -> None:
    """The first evaluated clip: source, each msvq model, and each codec at the CRF nearest msvq's rate."""
    plt = _pyplot()
    mode = _main_mode(result)
    shows = [s for s in result.showcase if s.kind in ("source", "msvq")]
    titles = ["source"] + [_label(s.system) for s in shows[1:]]
    reference = result.point(result.models[0].system, mode)
    for codec in result.classic_systems():
        p = result.nearest(codec, reference.bpp, mode)
        s = next((s for s in result.showcase if p and s.system == codec and mode in s.modes and s.crf == p.crf), None)
        if s:
            shows.append(s)
            titles.append(f"{_label(codec)} CRF {p.crf}")
    for k, s in enumerate(shows[1:], 1):
        p = result.point(s.system, mode, s.crf)
        titles[k] += f"\n{p.bpp:.3f} bpp, {_fmt(p.psnr)} dB (means)"
    n = len(shows[0].frames)
    picks = sorted({round(i * (n - 1) / max(rows - 1, 1)) for i in range(min(rows, n))})
    fig, axes = plt.subplots(len(picks), len(shows), figsize=(1.9 * len(shows), 1.9 * len(picks) + 0.6), squeeze=False)
    for c, (s, title) in enumerate(zip(shows, titles)):
        for r, f in enumerate(picks):
            ax = axes[r][c]
            ax.imshow(s.frames[f], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
            if c == 0:
                ax.set_ylabel(f"frame {f}", fontsize=7)
    first = result.clips[0]
    fig.suptitle(f"{Path(first.video).name}, clip {first.clip}", fontsize=9)
    fig.tight_layout()
    _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> None:
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)

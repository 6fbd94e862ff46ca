"""Tests for ``msvq bench``: the paper's bpp formula, BD-rate, LPIPS scoring, that bench's bits are the bits ``msvq encode``
writes, the classic-codec path, the JSON report and the command line.

The model is ``MSVQVAE(model_preset("tiny"))``, randomly initialised, its codebooks seeded by one training
forward, saved with its entropy model to a temporary folder (``tinymodel.make_tiny_weights``). Clips are generated here.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from msvq_codec.bench import BenchOptions, run_bench
from msvq_codec.bench import classic, report
from msvq_codec.bench.bdrate import bd_rate
from msvq_codec.bench.clips import gather
from msvq_codec.bench.score import Scorer, mean
from msvq_codec.cli import app
from msvq_codec.codec import load_model, paper_bpp, roundtrip_bytes
from msvq_codec.files import encode_video
from msvq_codec.config import ModelConfig, model_preset
from msvq_codec.errors import UsageError, WeightsError
from msvq_codec.metrics import clip_psnr
from msvq_codec.vgg import LPIPS, load_vgg_weights

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")


def vgg_or_skip() -> dict:
    try:
        return load_vgg_weights()
    except WeightsError:
        pytest.skip("no cached VGG16 weights (msvq fetch-vgg)")


def frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` smooth moving RGB frames, uint8 [n, size, size, 3]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None] + seed
    r = 128 + 100 * np.sin((x + 2 * t) / size * 2 * np.pi)
    g = 128 + 100 * np.cos((y + t) / size * 2 * np.pi)
    b = np.broadcast_to((40 + 7 * t) % 200, r.shape)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip_npy(tmp_path_factory) -> Path:
    """40 frames at 16 fps: one full clip and a partial one of 8 frames."""
    path = tmp_path_factory.mktemp("clips") / "clip.npy"
    np.save(path, frames(40))
    return path


def options(inputs, weights, **kw) -> BenchOptions:
    return BenchOptions(inputs=tuple(inputs), weights=(weights,), device="cpu", **{"classic": False, "lpips": "off", **kw})


# ---- the paper's bpp formula --------------------------------------------------------------------------------


def test_paper_bpp_matches_the_grid_shapes():
    cfg = ModelConfig()  # the paper's model; not built
    assert cfg.grid("bottom") == (16, 16, 16) and cfg.grid("top") == (8, 8, 8) and cfg.codebook_size == 1024
    expected = (16 * 16 * 16 * 10 + 8 * 8 * 8 * 10) / (32 * 64 * 64)  # (N_b log2 K + N_t log2 K) / (T H W)
    assert expected == pytest.approx(0.3515625)
    assert paper_bpp(cfg) == pytest.approx(expected)
    assert paper_bpp(model_preset("single-level")) == pytest.approx(16**3 * 10 / (32 * 64 * 64))  # 0.3125
    assert paper_bpp(model_preset("codebook-512")) == pytest.approx((16**3 + 8**3) * 9 / (32 * 64 * 64))


# ---- BD-rate ------------------------------------------------------------------------------------------------

QUALITY = [30.0, 32.0, 34.0, 36.0]
RATES = [0.1, 0.2, 0.4, 0.8]


def test_bd_rate_worked_example_twice_the_bits_is_plus_100_percent():
    double = [2 * r for r in RATES]
    assert bd_rate(RATES, QUALITY, double, QUALITY).value == pytest.approx(1.0)  # +100 %
    assert bd_rate(double, QUALITY, RATES, QUALITY).value == pytest.approx(-0.5)  # -50 %
    assert bd_rate(RATES, QUALITY, double, QUALITY).percent == pytest.approx(100.0)


def test_bd_rate_with_lower_is_better_quality_and_partial_overlap():
    lpips = [0.4, 0.3, 0.2, 0.1]
    assert bd_rate(RATES, lpips, [2 * r for r in RATES], lpips).value == pytest.approx(1.0)
    # the test curve covers only [31, 35]: the same +100 % on the overlap
    q = [31.0, 33.0, 35.0]
    test = [2 * 0.1 * 2 ** ((v - 30) / 2) for v in q]
    assert bd_rate(RATES, QUALITY, test, q).value == pytest.approx(1.0)


def test_bd_rate_of_a_single_point_is_the_rate_ratio_at_equal_quality():
    anchor_at_33 = 0.1 * 2**1.5  # log-rate is linear in quality here, so the cubic fit is exact
    result = bd_rate(RATES, QUALITY, [2 * anchor_at_33], [33.0])
    assert result.method == "single-point" and result.value == pytest.approx(1.0)
    assert bd_rate(RATES, QUALITY, [anchor_at_33 / 2], [33.0]).value == pytest.approx(-0.5)


def test_bd_rate_without_overlap_is_nan_with_a_note():
    result = bd_rate(RATES, QUALITY, RATES, [40.0, 41.0, 42.0, 43.0])
    assert math.isnan(result.value) and "do not overlap" in result.note
    point = bd_rate(RATES, QUALITY, [0.3], [20.0])
    assert math.isnan(point.value) and "outside" in point.note
    assert math.isnan(bd_rate([0.1], [30.0], [0.2], [30.0]).value)  # one anchor point: no curve


# ---- clips and scoring ----------------------------------------------------------------------------------------


def test_gather_counts_full_clips_unless_partial_ones_are_asked_for(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, frames(70))  # 2 full clips + 6 frames
    full = gather([path])
    assert [(i, real) for _, i, _, real in full] == [(0, 32), (1, 32)]
    assert full[0][2].shape == (32, 64, 64, 3) and full[0][2].dtype == np.uint8
    everything = gather([path], include_partial=True)
    assert [(i, real) for _, i, _, real in everything] == [(0, 32), (1, 32), (2, 6)]
    assert np.array_equal(everything[2][2][6:], np.repeat(everything[2][2][5:6], 26, axis=0))  # padded as encode pads
    assert len(gather([tmp_path], max_clips=1)) == 1


def test_scorer_identical_clip_and_means():
    clip = frames(4, size=32)
    scores = Scorer(None).score(clip, clip.copy())
    assert scores == {"psnr": math.inf, "ssim": pytest.approx(1.0), "lpips": None}
    assert mean([30.0, math.inf]) == math.inf and mean([1.0, 3.0]) == 2.0 and mean([0.1, None]) is None


def test_lpips_with_cached_source_features_equals_lpips_forward():
    lpips = LPIPS(vgg_or_skip())
    rng = np.random.default_rng(0)
    a = frames(3, size=32)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        direct = lpips(to_t(a), to_t(b)).numpy()
    scorer = Scorer(lpips)
    assert np.allclose(scorer.lpips_frames(a, b), direct, rtol=1e-4, atol=1e-6)
    assert scorer.score(scorer.prepare(a), b)["lpips"] == pytest.approx(direct.mean(), rel=1e-4)
    assert scorer.score(a, a.copy())["lpips"] == pytest.approx(0.0, abs=1e-6)


# ---- msvq: bench's bits are msvq encode's bits -----------------------------------------------------------------


def test_bench_bits_equal_the_file_msvq_encode_writes(tmp_path, weights, clip_npy):
    result = run_bench(options([clip_npy], weights, include_partial=True))
    written = encode_video(clip_npy, tmp_path / "v.msvq", weights=weights, device="cpu")
    size = (tmp_path / "v.msvq").stat().st_size
    assert result.videos[0].msvq_file_bytes["tiny"] == size == written.bytes
    stream = next(s for s in result.streams if s.kind == "msvq")
    assert stream.bits == 8 * size and stream.frames == 40  # every clip evaluated: the whole file
    point = result.point("msvq:tiny", "per-video")
    assert point.bpp == pytest.approx(written.file_bpp)
    assert point.bpp_paper == pytest.approx(written.paper_bpp)
    assert result.models[0].file_bytes == size

    # per-clip: each clip's bits are those of encoding that clip alone
    data = np.load(clip_npy)
    for clip_record, (start, stop) in zip([r for r in result.clips if r.mode == "per-clip"], [(0, 32), (32, 40)]):
        np.save(tmp_path / f"c{start}.npy", data[start:stop])
        alone = encode_video(tmp_path / f"c{start}.npy", tmp_path / f"c{start}.msvq", weights=weights, device="cpu")
        assert clip_record.bits == 8 * alone.bytes
        deflate = encode_video(tmp_path / f"c{start}.npy", tmp_path / f"d{start}.msvq", weights=weights,
                               device="cpu", codec="deflate")  # fmt: skip
        assert clip_record.bits_deflate == 8 * deflate.bytes
        assert clip_record.paper_bits == pytest.approx(alone.paper_bpp * 32 * 64 * 64)  # over the padded clip

    # and the scores are those of the frames decoded from that file
    loaded = load_model(weights, "cpu")
    decoded = roundtrip_bytes((tmp_path / "v.msvq").read_bytes(), loaded)
    first = next(r for r in result.clips if r.mode == "per-clip" and r.clip == 0)
    assert first.psnr == pytest.approx(clip_psnr(data[:32], decoded[:32]))
    last = next(r for r in result.clips if r.mode == "per-clip" and r.clip == 1)
    assert last.frames == 8 and last.psnr == pytest.approx(clip_psnr(data[32:], decoded[32:]))
    # msvq decodes once: its per-video records carry the same distortions, and no bits of their own
    per_video = [r for r in result.clips if r.mode == "per-video"]
    assert [r.psnr for r in per_video] == [first.psnr, last.psnr] and {r.bits for r in per_video} == {None}


@needs_ffmpeg
def test_quality_presets_are_systems_of_one_curve_with_its_bd_rate(tmp_path, weights, clip_npy):
    """--quality max,low: each preset a system whose bits are msvq encode's at that preset, and the model's
    curve over them has a BD-rate against each codec's curve (curve against curve) as well as each point's."""
    result = run_bench(options([clip_npy], weights, include_partial=True, qualities=("max", "low"), classic=True,
                               codecs=("x264",), crfs={"x264": (18, 30, 42, 51)}))  # fmt: skip
    assert [m.system for m in result.models] == ["msvq:tiny@max", "msvq:tiny@low"]
    assert [(m.quality, m.base) for m in result.models] == [("max", "tiny"), ("low", "tiny")]
    for quality in ("max", "low"):
        written = encode_video(clip_npy, tmp_path / f"{quality}.msvq", weights=weights, device="cpu", quality=quality)
        assert result.videos[0].msvq_file_bytes[f"tiny@{quality}"] == written.bytes
    low, top = (result.point(f"msvq:tiny@{q}", "per-video") for q in ("low", "max"))
    assert low.bpp < top.bpp
    curve = [r for r in result.bd_rate if r.system == "msvq:tiny curve"]
    assert {(r.anchor, r.mode, r.metric, r.method) for r in curve} == {
        ("x264", "per-clip", "psnr", "cubic"), ("x264", "per-video", "psnr", "cubic")}  # fmt: skip
    assert all(math.isfinite(r.bd_rate) or r.note for r in curve)
    assert result.settings.qualities == ["max", "low"]
    with pytest.raises(UsageError, match="quality must be one of"):
        run_bench(options([clip_npy], weights, qualities=("max", "best")))


def test_full_clips_only_by_default_and_speed_recorded(weights, clip_npy):
    result = run_bench(options([clip_npy], weights))
    assert {r.clip for r in result.clips} == {0}
    stream = next(s for s in result.streams if s.kind == "msvq")
    assert stream.frames == 32 and stream.bits < 8 * result.videos[0].msvq_file_bytes["tiny"]
    model = result.models[0]
    assert model.frames == 40 and model.encode_fps > 0 and model.decode_fps > 0
    assert model.peak_memory_bytes > 0 and model.bpp_formula == pytest.approx(0.17578125)  # K = 32: 5 bits
    for level in model.levels:  # what each level carries, over the one evaluated clip
        assert level["clips"] == 1 and level["grids"] == 1 and 1 <= level["codes"] <= 32
        assert 1.0 <= level["perplexity"] <= level["codes"]
    assert model.top_effect_db is None  # one clip: its top grid is the most common one, nothing changes


def test_model_efficiency_against_a_same_run_gemm(weights, clip_npy):
    """GFLOP/frame from FlopCounterMode, the model-only rate, and its share of the same-run GEMM rate in the
    precision each direction runs in (a profile named where it is under the target)."""
    result = run_bench(options([clip_npy], weights, precision="fp32"))
    eff = result.models[0].efficiency
    for direction in ("encode", "decode"):
        e = eff[direction]
        assert e["precision"] == "float32" and e["gflop_per_frame"] > 0 and e["model_fps"] > 0
        assert e["gemm_tflops"] > 0 and e["share_of_gemm"] > 0
        assert e["top_ops"] is None or "%" in e["top_ops"]
    assert any(n.startswith("same-run GEMM rate") for n in result.notes)
    assert result.settings.precision == "fp32"


def test_too_short_inputs_are_a_clear_error(tmp_path, weights):
    np.save(tmp_path / "short.npy", frames(10))
    with pytest.raises(Exception, match="shorter than one full clip"):
        run_bench(options([tmp_path / "short.npy"], weights))


# ---- classic codecs -------------------------------------------------------------------------------------------


@needs_ffmpeg
def test_x264_on_one_tiny_clip_counts_the_elementary_stream(tmp_path):
    clip = frames(8)
    x264 = classic.CODECS["x264"]
    size, decoded = classic.encode_decode(clip, x264, 23, tmp_path)
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert clip_psnr(clip, decoded) > 30
    # the same command by hand: the raw .h264 file has exactly that many bytes, and starts with an Annex B code
    out = tmp_path / "by-hand.h264"
    subprocess.run(["ffmpeg", "-v", "error", *x264.command(23, 64, 64, 16.0, out)], input=clip.tobytes(), check=True)
    assert out.stat().st_size == size and out.read_bytes()[:4] == b"\0\0\0\1"  # Annex B, not a container


def test_codec_and_crf_options():
    assert [c.name for c in classic.parse_codecs("vp9,x264")] == ["vp9", "x264"]
    with pytest.raises(UsageError):
        classic.parse_codecs("x266")
    chosen = classic.parse_codecs("x264,vp9")
    crfs = classic.parse_crfs(["x264=30,20", "40,50"], chosen)
    assert crfs == {"x264": (20, 30), "vp9": (40, 50)}  # a per-codec list wins over a list for every codec
    with pytest.raises(UsageError):
        classic.parse_crfs(["x264=60"], chosen)
    with pytest.raises(UsageError):
        classic.parse_crfs(["x264=a"], chosen)


def test_no_ffmpeg_is_a_note_not_a_failure(monkeypatch, weights, clip_npy):
    monkeypatch.setattr("msvq_codec.bench.run.ffmpeg_path", lambda: None)
    result = run_bench(options([clip_npy], weights, classic=True))
    assert any("ffmpeg is not on PATH" in n for n in result.notes)
    assert all(r.kind == "msvq" for r in result.clips)


# ---- JSON and the command line --------------------------------------------------------------------------------


@needs_ffmpeg
def test_json_report_schema(tmp_path, weights, clip_npy):
    result = run_bench(options([clip_npy], weights, classic=True, codecs=("x264",), crfs={"x264": (23, 38)}))
    path = tmp_path / "bench.json"
    report.write_json(path, result)
    data = json.loads(path.read_text())
    assert data["schema"] == "msvq-bench/1"
    assert set(data) >= {"settings", "videos", "models", "summary", "bd_rate", "notes", "clips", "streams"}
    assert data["settings"]["codecs"]["x264"]["crf"] == [23, 38] and data["settings"]["lpips"] is False
    clip_keys = {"system", "kind", "mode", "crf", "video", "clip", "frames", "psnr", "ssim", "lpips", "bits"}
    assert all(clip_keys <= set(r) for r in data["clips"])
    # 1 clip: msvq per-clip + per-video, x264 x 2 CRFs x 2 modes
    assert len(data["clips"]) == 2 + 4 and len(data["streams"]) == 1 + 2
    systems = {(p["system"], p["mode"], p["crf"]) for p in data["summary"]}
    assert ("msvq:tiny", "per-clip", None) in systems and ("x264", "per-video", 38) in systems
    for p in data["summary"]:
        assert p["bpp"] == pytest.approx(p["bits"] / (p["frames"] * 64 * 64)) and p["ratio_raw"] == pytest.approx(24 / p["bpp"])
    assert {(b["anchor"], b["mode"], b["metric"]) for b in data["bd_rate"]} == {
        ("x264", "per-clip", "psnr"), ("x264", "per-video", "psnr")}  # fmt: skip
    assert report._clean({"a": math.inf, "b": math.nan, "c": np.float32(1.5)}) == {"a": "inf", "b": None, "c": 1.5}
    console = Console(file=io.StringIO(), width=160)
    report.print_report(console, result)  # every table, the classic sweep and BD-rates included
    text = console.file.getvalue()
    assert "CRF sweeps" in text and "BD-rate" in text and "H.264 (x264), CRF" in text


def test_cli_bench_tables_json_and_pictures(tmp_path, weights, clip_npy):
    pytest.importorskip("matplotlib")
    args = ["bench", str(clip_npy), "--weights", str(weights), "--device", "cpu", "--no-classic", "--no-lpips",
            "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "rd.png"), "--frames", str(tmp_path / "f.png")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "Aggregate performance" in done.output and "paper formula" in done.output and "Comparison" in done.output
    assert json.loads((tmp_path / "b.json").read_text())["models"][0]["label"] == "tiny"
    for png in ("rd.png", "f.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bench_missing_weights_and_bad_options_are_one_line_errors(tmp_path, clip_npy):
    done = CliRunner().invoke(app, ["bench", str(clip_npy), "--weights", str(tmp_path / "none.safetensors")])
    assert done.exit_code == 1 and "no weights at" in done.output and "Traceback" not in done.output
    done = CliRunner().invoke(app, ["bench", str(clip_npy), "--codecs", "x266"])
    assert done.exit_code == 2 and "--codecs" in done.output
    done = CliRunner().invoke(app, ["bench", str(clip_npy), "--json", str(tmp_path / "no" / "b.json")])
    assert done.exit_code == 2 and "does not exist" in done.output


def test_every_coder_has_its_bits_per_level_and_speed(weights, clip_npy):
    """A row per coder (prior, context, zstd, DEFLATE) with stream bits per level next to the two models' ideal
    code lengths, per clip and per video, and each coder's speed from the same run."""
    from msvq_codec.bench.report import coders_table

    result = run_bench(options([clip_npy], weights))
    for mode in ("per-clip", "per-video"):
        p = result.point("msvq:tiny", mode)
        assert set(p.level_bits_per_index) == {"prior", "context", "zstd", "deflate", "ideal prior", "ideal context"}
        assert all(len(v) == 2 for v in p.level_bits_per_index.values())
        for coder in ("prior", "context"):
            got, ideal = p.level_bits_per_index[coder], p.level_bits_per_index[f"ideal {coder}"]
            assert all(c >= i - 64 / 256 for c, i in zip(got, ideal))  # the coder's state: at most 64 bits a stream
            # and within 2 % of it (plus the coder's final word): constriction's fixed point costs little
            assert all(c <= 1.02 * i + 64 / 256 for c, i in zip(got, ideal))
        assert p.bpp_zstd > 0 and p.bpp_deflate > 0 and p.bpp > 0 and p.bpp_context > 0
    model = result.models[0]
    assert set(model.coders) == {"prior", "context", "zstd", "deflate"} and model.entropy_id and model.prior_id
    assert model.coders["prior"]["encode_fps"] == pytest.approx(model.encode_fps)
    assert all(c["decode_fps"] > 0 and c["entropy_decode_ms_per_clip"] >= 0 for c in model.coders.values())
    assert coders_table(result).row_count == 2 * 6

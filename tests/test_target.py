"""Tests for msvq_codec.target: the search lands within its tolerance, says when a target is above max or out
of reach (naming the range, in the user's unit), and a real encode at a target rate (the tiny model of
tests/tinymodel.py, on CPU) writes a file of that rate which records its lambda and decodes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from msvq_codec import codec, files
from msvq_codec.container import QUALITY_PRESETS
from msvq_codec.errors import UsageError
from msvq_codec.target import LAMBDA_MAX, TOLERANCE, ClipSpool, Target, TargetUnreachable, search
from test_rdo import moving_clip


def power_law(top: float = 0.14, floor: float = 0.02, slope: float = -0.35):
    """A rate that falls smoothly from ``top`` at lambda 0 towards ``floor``, as the presets' do."""
    calls: list[float] = []

    def rate_at(lam: float) -> tuple[float, float]:
        calls.append(lam)
        return floor + (top - floor) * (1 + lam / 100.0) ** slope, lam

    return rate_at, calls


def bpp_target(value: float) -> Target:
    return Target(value, "bpp", 16 * 64 * 64)


@pytest.mark.parametrize("goal", [0.135, 0.12, 0.09, 0.05, 0.03, 0.0215])
def test_search_lands_within_the_tolerance(goal):
    rate_at, calls = power_law()
    outcome = search(rate_at, bpp_target(goal))
    assert abs(outcome.bpp - goal) <= TOLERANCE * goal and outcome.note is None
    assert outcome.kept == outcome.rd_lambda and len(calls) == len(set(calls)) <= 12  # each lambda encoded once
    assert outcome.probes[0] == (0.0, 0.14) and len(outcome.probes) == len(calls)


def test_a_target_above_max_gives_max_and_says_so():
    rate_at, calls = power_law()
    far = search(rate_at, bpp_target(0.5))
    assert far.rd_lambda == 0.0 and calls == [0.0] and "above what quality max spends (0.1400 bpp)" in far.note
    near = search(power_law()[0], bpp_target(0.14 * 1.04))  # within the tolerance of max: on target, no note
    assert near.rd_lambda == 0.0 and near.note is None


def test_a_target_below_reach_names_the_range_in_the_users_unit():
    with pytest.raises(TargetUnreachable, match=r"target_bpp 0\.0100 bpp is below what these codes can reach: "
                                                r"0\.0221 bpp to 0\.1400 bpp \(quality max\)"):  # fmt: skip
        search(power_law()[0], bpp_target(0.01))
    kbps = Target(0.01 * 65.536, "kbps", 16 * 64 * 64)
    assert kbps.bpp == pytest.approx(0.01)
    with pytest.raises(TargetUnreachable, match=r"target_kbps 0\.66 kbps .* 1\.45 kbps to 9\.18 kbps"):
        search(power_law()[0], kbps)


def test_a_rate_that_jumps_keeps_the_closest_and_says_so():
    def steps(lam: float) -> tuple[float, None]:  # a very short file: the rate moves in big steps
        return (0.2 if lam < 1000 else 0.1 if lam < LAMBDA_MAX / 10 else 0.05), None

    outcome = search(steps, bpp_target(0.15))
    assert outcome.bpp in (0.1, 0.2) and "no rate within 5% of the target 0.1500 bpp" in outcome.note
    assert len(outcome.probes) <= 12


@pytest.mark.parametrize("bpp, kbps, match", [
    (0.1, 5.0, "two ways to say one thing"), (0.0, None, "target_bpp must be a positive number"),
    (None, -1.0, "target_kbps must be a positive number"), (math.nan, None, "target_bpp must be"),
    (math.inf, None, "target_bpp must be"), (True, None, "target_bpp must be"),
])  # fmt: skip
def test_target_values_are_checked(bpp, kbps, match):
    with pytest.raises(UsageError, match=match):
        Target.of(bpp, kbps, 16.0, 64 * 64)


def test_kbps_is_bits_per_second_at_the_clip_rate():
    assert Target.of(None, 65.536, 16.0, 64 * 64).bpp == pytest.approx(1.0)
    assert Target.of(0.25, None, 16.0, 64 * 64).show(0.25) == "0.2500 bpp"
    assert Target.of(None, 10.0, 16.0, 64 * 64).show(0.1) == "6.55 kbps"


def test_clip_spool_gives_back_the_clips_every_time():
    clips = [np.random.default_rng(i).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8) for i in range(3)]
    with ClipSpool(iter(clips)) as spool:
        for _ in range(2):
            back = list(spool)
            assert spool.count == 3 and all(np.array_equal(a, b) for a, b in zip(clips, back))
    with ClipSpool(iter([])) as empty:
        assert list(empty) == [] and empty.count == 0


# ---- a real encode ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "in.npy"
    np.save(path, moving_clip(96))  # 3 clips
    return path


@pytest.fixture(scope="module")
def extremes(loaded, source, tmp_path_factory) -> tuple[float, float]:
    """The source's file bpp at max and at lowest."""
    out = tmp_path_factory.mktemp("ends")
    return tuple(files.encode_video(source, out / f"{q}.msvq", model=loaded, quality=q).file_bpp
                 for q in ("max", "lowest"))  # fmt: skip


def test_encoding_to_a_target_rate_lands_within_5_percent(loaded, source, extremes, tmp_path):
    top, low = extremes
    goal = (top + low) / 2
    r = files.encode_video(source, tmp_path / "t.msvq", model=loaded, target_bpp=goal)
    assert abs(r.file_bpp - goal) <= TOLERANCE * goal and r.note is None
    header = files.info(tmp_path / "t.msvq")
    assert QUALITY_PRESETS[header.quality] == "target" == r.quality and header.rd_lambda == r.rd_lambda > 0
    assert r.kbps == pytest.approx(r.file_bpp * 16 * 64 * 64 / 1000)
    frames = codec.roundtrip_bytes((tmp_path / "t.msvq").read_bytes(), loaded)
    assert frames.shape == (96, 64, 64, 3)
    as_kbps = files.encode_video(source, tmp_path / "k.msvq", model=loaded, target_kbps=goal * 65.536)
    assert (tmp_path / "k.msvq").read_bytes() == (tmp_path / "t.msvq").read_bytes()  # the same target, the same file
    assert as_kbps.file_bpp == r.file_bpp


def test_a_target_above_max_writes_max(loaded, source, extremes, tmp_path):
    r = files.encode_video(source, tmp_path / "t.msvq", model=loaded, target_bpp=extremes[0] * 3)
    plain = files.encode_video(source, tmp_path / "m.msvq", model=loaded)
    assert (tmp_path / "t.msvq").read_bytes() == (tmp_path / "m.msvq").read_bytes() and r.quality == "max"
    assert "above what quality max spends" in r.note and plain.note is None


def test_a_target_below_reach_is_an_error_and_writes_nothing(loaded, source, tmp_path):
    with pytest.raises(TargetUnreachable, match="is below what these codes can reach"):
        files.encode_video(source, tmp_path / "t.msvq", model=loaded, target_bpp=1e-4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, match", [
    (dict(quality="low"), "chooses the rate itself"), (dict(codec="zstd"), "chooses the rate itself"),
    (dict(target_kbps=3.0), "two ways"),
])  # fmt: skip
def test_a_target_takes_no_preset_and_no_other_codec(loaded, source, tmp_path, options, match):
    with pytest.raises(UsageError, match=match):
        files.encode_video(source, tmp_path / "t.msvq", model=loaded, target_bpp=0.1, **options)

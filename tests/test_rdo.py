"""Tests for msvq_codec.rdo: rate control's bit costs are exactly the range coder's, its choices give fewer
bits as lambda grows, every preset's file decodes with the unchanged decoder, max is the no-rate-control path
bit for bit, and the header records the preset. A tiny random model (tests/tinymodel.py) with its fitted
entropy tables, on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from msvq_codec import codec
from msvq_codec.files import decode_file, describe, encode_video, info
from msvq_codec.container import QUALITY_PRESETS
from msvq_codec.errors import UsageError
from msvq_codec.model.fast import fast_model
from msvq_codec.model.vqvae import nearest_codes
from msvq_codec.rdo import (
    PRESETS, QUALITY_NAMES, LevelCosts, PriorChooser, RdChooser, _neighbour_table, chooser, lambda_preset,
    lookahead_bits, preset,
)


def moving_clip(n: int = 64, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` frames of a smooth pattern drifting slowly, uint8 [n, size, size, 3]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None] * 0.5 + seed
    r = 128 + 90 * np.sin((x + t) / size * 2 * np.pi)
    g = 128 + 90 * np.cos((y + 0.5 * t) / size * 4 * np.pi)
    b = 128 + 60 * np.sin((x + y) / size * 2 * np.pi + t / 16)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "in.npy"
    np.save(path, moving_clip(80))  # 3 clips, the last padded
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, weights, source) -> dict[str, Path]:
    """The source encoded at every preset with the context coder (and at max with the default codec)."""
    out = tmp_path_factory.mktemp("out")
    for name in QUALITY_NAMES:
        encode_video(source, out / f"{name}.msvq", weights=weights, device="cpu", quality=name, codec="context")
    encode_video(source, out / "default.msvq", weights=weights, device="cpu")
    return {name: out / f"{name}.msvq" for name in (*QUALITY_NAMES, "default")}


def coders(loaded) -> dict:
    return dict(zip(loaded.model.config.level_names, codec.entropy_model(loaded)[1]))


def random_grid(loaded, level: int, seed: int = 0, n_clips: int = 2) -> np.ndarray:
    """A grid whose codes mostly repeat the frame before (as real grids do), some at random."""
    cfg = loaded.model.config
    t, h, w = cfg.grid(cfg.level_names[level])
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, cfg.codebook_size, (n_clips * t, h, w))
    for f in range(1, len(frames)):
        keep = rng.random((h, w)) < 0.7
        frames[f][keep] = frames[f - 1][keep]
    return frames.reshape(n_clips, t, h, w)


# ---- costs are the coder's ----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1])
def test_all_codes_and_of_codes_are_index_bits(loaded, level):
    coder = codec.entropy_model(loaded)[1][level]
    costs = LevelCosts.of(coder)
    grid = random_grid(loaded, level)
    expected = coder.index_bits(grid).reshape(-1, *grid.shape[2:])  # [F, h, w]
    frames = grid.reshape(-1, *grid.shape[2:])
    none = np.full(frames.shape[1:], costs.k)
    for f in range(len(frames)):
        p1 = frames[f - 1] if f >= 1 else none
        p2 = frames[f - 2] if f >= 2 else none
        slots = RdChooser._slots(costs, p1.reshape(-1), p2.reshape(-1), frames.shape[1:])
        code = frames[f].reshape(-1)
        every = costs.all_codes(slots)
        np.testing.assert_allclose(every[np.arange(len(code)), code], expected[f].reshape(-1), rtol=1e-12)
        np.testing.assert_allclose(costs.of_codes(slots, code), expected[f].reshape(-1), rtol=1e-12)


def test_lookahead_is_the_next_frames_bits_by_brute_force(loaded):
    coder = codec.entropy_model(loaded)[1][1]
    costs = LevelCosts.of(coder)
    grid = random_grid(loaded, 1, seed=3, n_clips=1)  # [1, t, h, w]
    frames = grid[0].copy()
    h, w = frames.shape[1:]
    nbr = _neighbour_table(h, w)
    f = 2  # the frame being chosen; f - 1 before it, f + 1 after
    rng = np.random.default_rng(1)
    options = rng.integers(0, costs.k, (h * w, 3))
    options[:, 0] = frames[f].reshape(-1)  # the code it has
    got = lookahead_bits(costs, frames[f].reshape(-1), frames[f - 1].reshape(-1), options,
                         frames[f + 1].reshape(-1), nbr)  # fmt: skip
    for p in (0, w - 1, w + 3, h * w - 1, (h // 2) * w + w // 2):  # corners, an edge, the middle
        for s in range(options.shape[1]):
            trial = frames.copy()
            trial.reshape(len(trial), -1)[f, p] = options[p, s]
            bits = coder.index_bits(trial[None])[0, f + 1].reshape(-1)
            affected = sorted({p, *nbr[p]})
            assert got[p, s] == pytest.approx(bits[affected].sum(), rel=1e-12)


# ---- the chooser ------------------------------------------------------------------------------------------


def encode(loaded, clips: np.ndarray, choose=None, batch_size: int = 4):
    return codec.encode_clips(loaded, list(clips), batch_size, choose=choose)


def clips_of(n: int = 96) -> np.ndarray:
    return moving_clip(n).reshape(-1, 32, 64, 64, 3)  # [n / 32, 32, 64, 64, 3]


def test_tiny_lambda_chooses_the_nearest_codes(loaded):
    clips = clips_of()
    nearest = encode(loaded, clips)
    chosen = encode(loaded, clips, RdChooser(coders(loaded), 1e-9, 1))
    for a, b in zip(nearest, chosen):
        assert (a != b).mean() < 0.01  # only float ties may differ


def test_chooser_counts_exactly_the_bits_it_spends_and_batches_do_not_matter(loaded):
    clips = clips_of()
    choose = RdChooser(coders(loaded), PRESETS["medium"].rd_lambda, 2)
    levels = encode(loaded, clips, choose, batch_size=1)
    for name, grid, coder in zip(loaded.model.config.level_names, levels, codec.entropy_model(loaded)[1]):
        assert choose.spent[name] == pytest.approx(coder.ideal_bits(grid), rel=1e-9)
    again = encode(loaded, clips, RdChooser(coders(loaded), PRESETS["medium"].rd_lambda, 2), batch_size=3)
    assert all(np.array_equal(a, b) for a, b in zip(levels, again))  # the file order carries over batches


def test_model_encode_with_a_nearest_chooser_is_plain_encode(loaded):
    x = torch.from_numpy(clips_of(64)).permute(0, 4, 1, 2, 3).float() / 255  # [2, 3, 32, 64, 64]
    model = loaded.model
    for runner in (model, fast_model(model, "fp32")):
        plain = runner.encode(x)
        chosen = runner.encode(x, nearest_codes)
        for a, b in zip(plain, chosen):
            assert (a != b).float().mean() < 0.01


def prior_coders(loaded) -> dict:
    return dict(zip(loaded.model.config.level_names, codec.prior_model(loaded)[1]))


def prior_bits(loaded, levels) -> float:
    coders = codec.prior_model(loaded)[1]
    return sum(c.ideal_bits(g, levels[i - 1] if i else None) for i, (c, g) in enumerate(zip(coders, levels)))


def test_the_prior_chooser_counts_exactly_the_bits_it_spends_and_batches_do_not_matter(loaded):
    clips = clips_of()
    choose = PriorChooser(prior_coders(loaded), PRESETS["medium"].rd_lambda)
    levels = encode(loaded, clips, choose, batch_size=1)
    top, bottom = codec.prior_model(loaded)[1]
    assert choose.spent["top"] == pytest.approx(top.ideal_bits(levels[0]), rel=1e-9)
    assert choose.spent["bottom"] == pytest.approx(bottom.ideal_bits(levels[1], levels[0]), rel=1e-9)
    again = encode(loaded, clips, PriorChooser(prior_coders(loaded), PRESETS["medium"].rd_lambda), batch_size=3)
    assert all(np.array_equal(a, b) for a, b in zip(levels, again))  # the file order carries over batches
    nearest = encode(loaded, clips)
    tiny = encode(loaded, clips, PriorChooser(prior_coders(loaded), 1e-9))
    assert all((a != b).mean() < 0.01 for a, b in zip(nearest, tiny))  # only float ties may differ
    huge = encode(loaded, clips, PriorChooser(prior_coders(loaded), 1e4))
    assert prior_bits(loaded, huge) < 0.85 * prior_bits(loaded, nearest)
    assert isinstance(chooser(prior_coders(loaded), "high"), PriorChooser)
    assert isinstance(chooser(coders(loaded), "high"), RdChooser) and chooser(coders(loaded), "max") is None


def test_more_lambda_never_more_bits(loaded):
    clips = clips_of()
    bits = []
    for lam in (0.0, 0.5, 2.0, 8.0, 32.0, 1e4):
        choose = RdChooser(coders(loaded), lam, 1) if lam else None
        levels = encode(loaded, clips, choose)
        bits.append(sum(c.ideal_bits(g) for c, g in zip(codec.entropy_model(loaded)[1], levels)))
    assert all(b <= a + 1e-6 for a, b in zip(bits, bits[1:])), bits
    # how much a huge lambda saves depends on the tiny model's codebooks: 22-55 % over make_tiny_weights seeds 0-3
    assert bits[-1] < 0.85 * bits[0]


# ---- files ---------------------------------------------------------------------------------------------------


def test_presets_files_shrink_decode_and_record_their_preset(files, weights, tmp_path):
    sizes = [files[name].stat().st_size for name in QUALITY_NAMES]
    assert all(b <= a for a, b in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] < sizes[0]
    for name in QUALITY_NAMES:
        header = info(files[name])
        assert (header.quality, header.rd_lambda) == (PRESETS[name].id, np.float32(PRESETS[name].rd_lambda))
        assert QUALITY_PRESETS[header.quality] == name
        assert describe(files[name])["quality_preset"] == name
        result = decode_file(files[name], tmp_path / f"{name}.npy", weights=weights, device="cpu")
        assert result.frames == 80 and np.load(tmp_path / f"{name}.npy").shape == (80, 64, 64, 3)


def test_max_is_the_encoder_without_rate_control(files, weights, source, loaded, tmp_path):
    stream = codec.iter_clips(source)
    indices = codec.encode_clips(loaded, stream)  # no chooser: the model's nearest codes
    _, plain = codec.codes_to_bytes(loaded, indices, stream.frame_count, stream.info)
    assert plain == files["default"].read_bytes()  # the default codec (prior), at the default quality (max)
    _, context = codec.codes_to_bytes(loaded, indices, stream.frame_count, stream.info, codec="context")
    assert context == files["max"].read_bytes()


def test_rate_control_refuses_other_codecs_and_bad_values(weights, source, tmp_path):
    for bad, match in ((dict(quality="high", codec="zstd"), "needs codec prior or context"),
                       (dict(quality="best"), "quality must be one of max, high, medium, low, lowest"),
                       (dict(effort=-1), "effort must be an integer"),
                       (dict(effort=2.5), "effort must be an integer")):  # fmt: skip
        with pytest.raises(UsageError, match=match):
            encode_video(source, tmp_path / "x.msvq", weights=weights, device="cpu", **bad)
    assert not (tmp_path / "x.msvq").exists()
    assert preset("low") is PRESETS["low"]


def test_presets_are_the_formats_ids():
    assert {p.id: name for name, p in PRESETS.items()} == {i: n for i, n in QUALITY_PRESETS.items() if n != "target"}
    assert QUALITY_PRESETS[lambda_preset(123.0).id] == "target" and lambda_preset(0.0) is PRESETS["max"]
    lambdas = [PRESETS[name].rd_lambda for name in QUALITY_NAMES]
    assert lambdas[0] == 0 and all(b > a for a, b in zip(lambdas, lambdas[1:]))

"""The learned prior (msvq_codec.entropy.prior, prior_fit, prior_coder, prior_file): what each pass may see, the
integer network's exactness, fitting and quantising, bit-exact coding (a golden file, other thread counts and
batch sizes), hostile streams, the sidecar file, and what the codec does with it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from msvq_codec import codec
from msvq_codec.container import Header, LevelInfo, StreamCodec, from_bytes, to_bytes
import msvq_codec.entropy.prior as prior_module
from msvq_codec.entropy.prior import (
    ACT_MAX, EXP_MAX, LOGIT_SCALE, N_COPY, REQ_SHIFT, TABLE_SHIFT, W_MAX, COPY_SLOTS, IntegerPrior, PriorConfig,
    Context, file_contexts, neighbour_index, pass_map, set_current, tokens, tokens_all,
)  # fmt: skip
from msvq_codec.entropy.prior_coder import PriorCoder
from msvq_codec.entropy.prior_file import PriorModel, load_prior, prior_path, save_prior
from msvq_codec.entropy.prior_fit import PriorRecipe, fit_model, float_bits, integer_bits, level_samples, quantise
from msvq_codec.errors import WeightsError, WeightsMismatch
from damage import clean_errors, damaged
from test_entropy import walk

DATA = Path(__file__).parent / "data"
GOLDEN_FILE = DATA / "golden-prior.msvq"
GOLDEN_PRIOR = DATA / "golden-prior.prior.safetensors"
GOLDEN_INDICES = DATA / "golden-prior.indices.npz"
SMALL = PriorRecipe(hidden0=8, hidden1=8, epochs=3.0, batch=128, lr=1e-2)


def random_prior(cfg: PriorConfig, seed: int = 0, extreme: bool = False) -> IntegerPrior:
    """An integer prior with random arrays of the right shapes (``extreme``: every weight at 127 and every
    activation at 255, so every product sum is as large as the config allows)."""
    rng = np.random.default_rng(seed)
    k, h0, h1 = cfg.codebook_size, cfg.hidden0, cfg.hidden1

    def w(shape):
        if extreme:
            return np.full(shape, W_MAX, np.int8)
        return rng.integers(-W_MAX, W_MAX + 1, size=shape).astype(np.int8)

    def m(n):
        return rng.integers(1 << 10, 1 << 16, size=n).astype(np.int32)

    def shift(n):
        return rng.integers(8, 18, size=n).astype(np.uint8)

    def bias(n, top):
        return rng.integers(-top, top, n).astype(np.int32)

    tables = rng.integers(-3000, 6000, size=(sum(cfg.vocab()), h0)).astype(np.int16)
    if extreme:
        tables[:] = (1 << 15) - 1
    room = (1 << 24) - h1 * ACT_MAX * W_MAX - 1  # what the logits' bias may add and stay exact
    exp_table = np.maximum(np.floor(EXP_MAX * np.exp(-np.arange(96) / LOGIT_SCALE)), 1).astype(np.uint32)
    return IntegerPrior(cfg, tables, w((h0, h1)), bias(h1, 9999), m(h1), w((h1, k)), bias(k, min(room, 99999)),
                        shift(k), w((h1, N_COPY)), bias(N_COPY, min(room, 9999)), shift(N_COPY), exp_table)  # fmt: skip


def reference_logits(p: IntegerPrior, tok: np.ndarray) -> np.ndarray:
    """The module docstring's network, in int64 only (no float anywhere)."""
    offsets = np.concatenate([[0], np.cumsum(p.config.vocab())[:-1]])
    a0 = p.tables.astype(np.int64)[tok + offsets].sum(1)
    h0 = np.clip((a0 + (1 << (TABLE_SHIFT - 1))) >> TABLE_SHIFT, 0, ACT_MAX)
    half = 1 << (REQ_SHIFT - 1)
    h1 = np.clip(((h0 @ p.w1.astype(np.int64) + p.b1) * p.m1 + half) >> REQ_SHIFT, 0, ACT_MAX)
    logit = (h1 @ p.w2.astype(np.int64) + p.b2) >> p.s2.astype(np.int64)
    gain = (h1 @ p.wg.astype(np.int64) + p.bg) >> p.sg.astype(np.int64)
    for n in range(len(tok)):
        for j, slot in enumerate(COPY_SLOTS):
            if tok[n, slot] < p.config.codebook_size:
                logit[n, tok[n, slot]] += gain[n, j]
    return logit


def config(k=32, parent=0, t=4, h=6, w=5, passes=4, hidden=8) -> PriorConfig:
    return PriorConfig(codebook_size=k, parent_size=parent, clip_t=t, height=h, width=w, passes=passes,
                       hidden0=hidden, hidden1=hidden)  # fmt: skip


def some_tokens(cfg: PriorConfig, seed: int = 0, clips: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = walk(rng, cfg.codebook_size, (clips, cfg.clip_t, cfg.height, cfg.width))
    frames = grid.reshape(-1, cfg.height, cfg.width)
    parent = rng.integers(0, max(cfg.parent_size, 1), frames.shape) if cfg.parent_size else None
    return tokens_all(cfg, file_contexts(frames, cfg.clip_t, parent, cfg.codebook_size)).reshape(-1, cfg.n_slots)


# ---- what each pass sees ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("passes", [1, 2, 4])
def test_pass_maps(passes):
    m = pass_map(passes, 7, 6)
    assert sorted(np.unique(m)) == list(range(passes))
    if passes == 4:  # (even, even), (odd, odd), (even, odd), (odd, even)
        assert (m[0, 0], m[1, 1], m[0, 1], m[1, 0]) == (0, 1, 2, 3)


@pytest.mark.parametrize("passes", [1, 2, 4])
def test_a_pass_sees_nothing_of_its_own_pass_or_later_ones(passes):
    """Tokens of a position in pass p do not change when the codes of pass p and later passes change (in its
    own frame): exactly what the decoder cannot know yet."""
    cfg = config(passes=passes)
    rng = np.random.default_rng(3)
    frames = walk(rng, cfg.codebook_size, (2, cfg.clip_t, cfg.height, cfg.width)).reshape(-1, cfg.height, cfg.width)
    m = pass_map(passes, cfg.height, cfg.width)
    base = tokens_all(cfg, file_contexts(frames, cfg.clip_t, None, cfg.codebook_size))
    f = 5
    for p in range(passes):
        other = frames.copy()
        other[f][m >= p] = (other[f][m >= p] + 1 + rng.integers(0, 5, int((m >= p).sum()))) % cfg.codebook_size
        again = tokens_all(cfg, file_contexts(other, cfg.clip_t, None, cfg.codebook_size))
        np.testing.assert_array_equal(again[f][m == p], base[f][m == p])
        np.testing.assert_array_equal(again[:f], base[:f])  # earlier frames never see a later one
    if passes > 1:  # and a later pass does see the codes of pass 0
        other = frames.copy()
        other[f][m == 0] = (other[f][m == 0] + 1) % cfg.codebook_size
        again = tokens_all(cfg, file_contexts(other, cfg.clip_t, None, cfg.codebook_size))
        assert (again[f][m == passes - 1] != base[f][m == passes - 1]).any()


@pytest.mark.parametrize("passes", [2, 4])
def test_the_decoders_refreshed_tokens_are_the_encoders(passes):
    """The decoder computes a frame's tokens once and refreshes only the current-frame slots of each later pass
    (``set_current`` at ``neighbour_index``): the same tokens as ``tokens_all`` gives the encoder."""
    cfg = config(passes=passes)
    rng = np.random.default_rng(4)
    frames = walk(rng, cfg.codebook_size, (2, cfg.clip_t, cfg.height, cfg.width)).reshape(-1, cfg.height, cfg.width)
    ctx = file_contexts(frames, cfg.clip_t, None, cfg.codebook_size)
    want = tokens_all(cfg, ctx)  # [F, h, w, 30]
    m = pass_map(passes, cfg.height, cfg.width)
    f, k = 5, cfg.codebook_size
    padded = np.full((1, cfg.height + 2, cfg.width + 2), k, np.int64)
    padded[0, 1:-1, 1:-1] = np.where(m < 1, frames[f], k + 1)  # what pass 1 sees: pass 0 decoded
    seen = tokens(cfg, Context(ctx.p1[f : f + 1], ctx.p2[f : f + 1], padded[:, 1:-1, 1:-1], ctx.tpos[f : f + 1], None), 0)
    for p in range(1, passes):
        padded[0, 1:-1, 1:-1] = np.where(m < p, frames[f], k + 1)
        ys, xs = np.nonzero(m == p)
        tok = seen[0][ys, xs]
        set_current(cfg, tok, padded.reshape(-1)[neighbour_index(cfg.height, cfg.width, ys, xs)], p)
        np.testing.assert_array_equal(tok, want[f][ys, xs])


def test_tokens_at_the_edges_and_at_the_start_of_a_file():
    cfg = config()
    tok = some_tokens(cfg).reshape(-1, cfg.height, cfg.width, cfg.n_slots)
    k = cfg.codebook_size
    assert (tok[0, :, :, 0:18] == k).all()  # the first frame of a file: no previous frames
    assert (tok[1, :, :, 9:18] == k).all() and (tok[1, 1:-1, 1:-1, 0:9] < k).all()
    assert (tok[2, 0, 0, [0, 1, 2, 3, 6]] == k).all()  # the corner's neighbours above and left of it
    assert (tok[..., 27] == (np.arange(len(tok)) % cfg.clip_t)[:, None, None] * 30 + np.arange(30).reshape(6, 5)).all()
    first = tok[:, pass_map(4, cfg.height, cfg.width) == 0]
    assert (first[..., 18:26] >= k).all()  # pass 0 sees nothing of its frame


# ---- the integer network ------------------------------------------------------------------------------------------


@pytest.fixture(params=["integer", "float"])
def path(request, monkeypatch):
    """Run the prior on its integer matrix products, or on its float fallback."""
    if request.param == "float":
        monkeypatch.setattr(prior_module, "_int_mm_works", lambda: False)
    return request.param


def test_this_torch_has_the_integer_path():
    assert prior_module._int_mm_works()


@pytest.mark.parametrize("extreme", [False, True])
def test_logits_equal_an_int64_reference(extreme, path):
    """Both computations are exact: the network equals its int64 reference, even with every weight and
    activation at its largest and the widest layers the config allows (518 * 255 * 127 = 16,775,430 < 2**24),
    with a logit bias as large as ``problem`` lets through."""
    cfg = config(hidden=8) if not extreme else config(hidden=518)
    p = random_prior(cfg, extreme=extreme)
    assert p.problem() is None
    tok = some_tokens(cfg)[:200]
    np.testing.assert_array_equal(p.logits(tok), reference_logits(p, tok))
    assert PriorConfig(**{**cfg.to_dict(), "hidden0": 519}).problem() is not None  # one wider is refused


def test_frequencies_are_the_exp_table_of_the_logits_whatever_the_batch(path):
    cfg = config(k=100, hidden=16)
    p = random_prior(cfg, seed=1)
    tok = some_tokens(cfg, seed=1)
    f = p.frequencies(tok)
    assert f.dtype == np.float32 and f.shape == (len(tok), 100)
    want = p.exp_table[np.minimum(reference_logits(p, tok).max(1, keepdims=True) - reference_logits(p, tok), 95)]
    np.testing.assert_array_equal(f, want)
    assert f.min() >= 1 and (f.max(1) == EXP_MAX).all()  # the likeliest code of a row has exp_table[0]
    for n in (1, 7, 64):
        np.testing.assert_array_equal(np.concatenate([p.frequencies(tok[a : a + n]) for a in range(0, len(tok), n)]), f)


def test_the_same_frequencies_under_one_and_two_threads():
    cfg = config(k=100, hidden=64)
    code = (
        "import sys, hashlib, numpy as np; sys.path.insert(0, 'tests')\n"
        "from test_prior import config, random_prior, some_tokens\n"
        "cfg = config(k=100, hidden=64); p = random_prior(cfg, seed=2)\n"
        "print(hashlib.sha256(p.frequencies(np.tile(some_tokens(cfg, seed=2), (20, 1))).tobytes()).hexdigest())\n"
    )
    want = hashlib.sha256(random_prior(cfg, seed=2).frequencies(np.tile(some_tokens(cfg, seed=2), (20, 1))).tobytes())
    root = Path(__file__).parent.parent
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=root)
        assert out.stdout.strip() == want.hexdigest()


def test_the_same_frequencies_whatever_torch_is_set_to(path):
    """A caller's lowered float32 matmul precision or a bf16 autocast around the coder changes nothing."""
    import torch

    cfg = config(k=100, hidden=64)
    p = random_prior(cfg, seed=3)
    tok = some_tokens(cfg, seed=3)
    want = p.frequencies(tok)
    np.testing.assert_array_equal(p.logits(tok), reference_logits(p, tok))
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        np.testing.assert_array_equal(p.frequencies(tok), want)
    finally:
        torch.set_float32_matmul_precision(before)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        np.testing.assert_array_equal(p.frequencies(tok), want)


def test_malformed_priors_are_named():
    p = random_prior(config())
    assert replace(p, w1=p.w1.astype(np.int16)).problem() == "w1 must be int8 [8, 8]"
    assert replace(p, w2=np.full_like(p.w2, -128)).problem() == "w2 holds a weight outside -127..127"
    assert replace(p, m1=-p.m1).problem() == "m1 holds a multiplier outside 0..2**28 - 1"
    assert replace(p, s2=np.full_like(p.s2, 32)).problem() == "s2 holds a shift over 31"
    assert "too large for exact float32" in replace(p, b2=np.full_like(p.b2, (1 << 24) - 1)).problem()
    assert "exp_table" in replace(p, exp_table=p.exp_table[::-1].copy()).problem()
    assert "passes" in replace(p, config=replace(p.config, passes=3)).problem()


# ---- fitting ------------------------------------------------------------------------------------------------------


def fitted_model(seed: int = 0, k_top: int = 16, k: int = 32) -> tuple[PriorModel, list[tuple[np.ndarray, ...]]]:
    """A two-level prior (the bottom reads the top) fitted on synthetic grids whose codes mostly repeat."""
    rng = np.random.default_rng(seed)
    runs = [(walk(rng, k, (3, 2, 2, 3)), walk(rng, k, (3, 4, 4, 6))) for _ in range(6)]
    assert k_top == 16  # the top's codes are drawn from the bottom's 32 and kept below 16
    runs = [(top % k_top, bottom) for top, bottom in runs]
    model = fit_model(bytes(range(16)), [k, k], [(2, 2, 3), (4, 4, 6)], runs, replace(SMALL, seed=seed))
    return model, runs


def test_fitting_learns_and_quantising_keeps_it():
    cfg = config(k=32, t=4, h=4, w=6, hidden=8)
    rng = np.random.default_rng(4)
    runs = [walk(rng, 32, (3, 4, 4, 6), change=0.2) for _ in range(8)]
    starts = [np.ones(3, bool) for _ in runs]
    tok, codes = level_samples(cfg, runs, None, starts)
    from msvq_codec.entropy.prior_fit import train_prior

    model = train_prior(cfg, tok, codes, epochs=4, batch=128, lr=1e-2)
    fb, ib = float_bits(model, tok, codes) / len(codes), integer_bits(quantise(model), tok, codes) / len(codes)
    assert fb < 0.75 * np.log2(32)  # repeats are learned: well under the 5 bits of a uniform code
    assert abs(ib - fb) < 0.01 * fb  # and integers lose under 1 %


# ---- coding ----------------------------------------------------------------------------------------------------


def test_round_trip_with_a_parent_level_and_ideal_bits():
    model, runs = fitted_model()
    top, bottom = (PriorCoder(lv) for lv in model.levels)
    rng = np.random.default_rng(9)
    for n_clips in (1, 3):
        t_grid, b_grid = walk(rng, 32, (n_clips, 2, 2, 3)) % 16, walk(rng, 32, (n_clips, 4, 4, 6))
        s_top, s_bottom = top.encode(t_grid), bottom.encode(b_grid, t_grid)
        np.testing.assert_array_equal(top.decode(s_top, t_grid.shape), t_grid)
        np.testing.assert_array_equal(bottom.decode(s_bottom, b_grid.shape, t_grid), b_grid)
        ideal = bottom.ideal_bits(b_grid, t_grid)
        assert ideal - 1 <= 8 * len(s_bottom) <= ideal * 1.02 + 64
        bits = bottom.index_bits(b_grid, t_grid)
        assert bits.shape == b_grid.shape and (bits > 0).all()


def test_corrupted_streams_give_one_clean_error_or_a_right_sized_grid():
    model, _ = fitted_model()
    coder = PriorCoder(model.levels[0])
    shape = (2, 2, 2, 3)
    stream = coder.encode(walk(np.random.default_rng(5), 32, shape) % 16)
    variants = damaged(stream)
    errors = clean_errors(lambda data: coder.decode(data, shape), variants, shape, 32)
    assert errors > len(variants) // 2


# ---- the golden file: bit-exact on any machine --------------------------------------------------------------------


def golden_parts():
    model, runs = fitted_model(seed=2024)
    rng = np.random.default_rng(2025)
    indices = [walk(rng, 32, (2, 2, 2, 3)) % 16, walk(rng, 32, (2, 4, 4, 6))]
    header = Header(
        model_id=bytes(range(16)), source_fps=25.0, source_width=320, source_height=240, frame_count=60, fps=16.0,
        clip_frames=32, clip_height=64, clip_width=64, n_clips=2,
        levels=(LevelInfo((2, 2, 3), 32), LevelInfo((4, 4, 6), 32)), codec=StreamCodec.PRIOR,
        codec_level=0, entropy_id=model.prior_id,
    )  # fmt: skip
    return model, indices, header


def golden_streams(model: PriorModel, indices) -> list[bytes]:
    top, bottom = (PriorCoder(lv) for lv in model.levels)
    return [top.encode(indices[0]), bottom.encode(indices[1], indices[0])]


def test_golden_file_decodes_bit_exactly(path):
    """A .msvq file committed in tests/data, with the prior it was coded with and its indices: decoding gives
    exactly those indices, and coding them gives exactly that file (regenerate: MSVQ_REGENERATE_GOLDEN=1)."""
    if os.environ.get("MSVQ_REGENERATE_GOLDEN"):
        model, indices, header = golden_parts()
        save_prior(GOLDEN_PRIOR, model)
        GOLDEN_FILE.write_bytes(to_bytes(header, streams=golden_streams(model, indices)))
        np.savez(GOLDEN_INDICES, top=indices[0].astype(np.uint16), bottom=indices[1].astype(np.uint16))
    model = load_prior(GOLDEN_PRIOR)
    saved = np.load(GOLDEN_INDICES)
    want = [saved["top"], saved["bottom"]]
    data = GOLDEN_FILE.read_bytes()
    container = from_bytes(data)
    assert container.header.entropy_id == model.prior_id and container.version == 3
    top, bottom = (PriorCoder(lv) for lv in model.levels)
    h = container.header
    got_top = top.decode(container.streams[0], (h.n_clips, *h.levels[0].grid))
    got_bottom = bottom.decode(container.streams[1], (h.n_clips, *h.levels[1].grid), got_top)
    np.testing.assert_array_equal(got_top, want[0])
    np.testing.assert_array_equal(got_bottom, want[1])
    assert to_bytes(h, streams=golden_streams(model, want)) == data


def test_golden_file_decodes_the_same_in_another_process_with_other_thread_counts():
    code = (
        "import hashlib, numpy as np\n"
        "from msvq_codec.container import from_bytes\n"
        "from msvq_codec.entropy.prior_coder import PriorCoder\n"
        "from msvq_codec.entropy.prior_file import load_prior\n"
        f"m = load_prior({str(GOLDEN_PRIOR)!r}); c = from_bytes(open({str(GOLDEN_FILE)!r}, 'rb').read())\n"
        "h = c.header; top, bottom = (PriorCoder(lv) for lv in m.levels)\n"
        "t = top.decode(c.streams[0], (h.n_clips, *h.levels[0].grid))\n"
        "b = bottom.decode(c.streams[1], (h.n_clips, *h.levels[1].grid), t)\n"
        "print(hashlib.sha256(t.tobytes() + b.tobytes()).hexdigest())\n"
    )
    saved = np.load(GOLDEN_INDICES)
    want = hashlib.sha256(saved["top"].tobytes() + saved["bottom"].tobytes()).hexdigest()
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == want


# ---- the sidecar file -----------------------------------------------------------------------------------------


def test_sidecar_round_trip_and_identity(tmp_path):
    model = load_prior(GOLDEN_PRIOR)
    path = tmp_path / "w.prior.safetensors"
    assert save_prior(path, model) == model.prior_id
    again = load_prior(path)
    assert again.prior_id == model.prior_id and again.model_id == model.model_id
    changed = replace(model, levels=(replace(model.levels[0], b1=model.levels[0].b1 + 1), model.levels[1]))
    assert changed.prior_id != model.prior_id
    assert PriorModel(bytes(16), model.levels, {}).prior_id != model.prior_id  # other weights, another prior
    assert prior_path(tmp_path / "m.safetensors") == tmp_path / "m.prior.safetensors"


def test_an_altered_or_foreign_sidecar_is_refused(tmp_path):
    path = tmp_path / "w.prior.safetensors"
    save_prior(path, load_prior(GOLDEN_PRIOR))
    data = bytearray(path.read_bytes())
    data[-100] ^= 1  # inside the arrays
    bad = tmp_path / "bad.prior.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="do not match the recorded prior ID"):
        load_prior(bad)
    with pytest.raises(WeightsError, match="no prior at"):
        load_prior(tmp_path / "none.prior.safetensors")
    (tmp_path / "junk.prior.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a safetensors prior"):
        load_prior(tmp_path / "junk.prior.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(1)}, str(tmp_path / "other.prior.safetensors"), metadata={"msvq_prior_format": "9"})
    with pytest.raises(WeightsError, match="is not an msvq prior"):
        load_prior(tmp_path / "other.prior.safetensors")


# ---- with the codec -----------------------------------------------------------------------------------------------


def test_a_file_of_another_prior_is_refused_naming_both(tmp_path, loaded):
    src = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", src)
    header, data = codec.encode_to_bytes(tmp_path / "v.npy", loaded)  # the default: codec prior
    assert header.codec == StreamCodec.PRIOR and from_bytes(data).version == 3
    crafted = to_bytes(replace(header, entropy_id=b"\x07" * 16), streams=from_bytes(data).streams)
    with pytest.raises(WeightsMismatch, match=f"coded with prior {'07' * 16}.*prior is {header.entropy_id.hex()}"):
        codec.container_indices(from_bytes(crafted), loaded)


def test_without_a_prior_the_default_codec_says_how_to_fit_one(tmp_path, loaded):
    import shutil

    weights = tmp_path / "w.safetensors"
    shutil.copy(loaded.path, weights)
    again = codec.load_model(weights, "cpu")
    with pytest.raises(WeightsError, match="no prior beside .*msvq fit-entropy"):
        codec.range_coder(again, StreamCodec.PRIOR)

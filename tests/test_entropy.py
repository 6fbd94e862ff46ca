"""The context model and its coder (msvq_codec.entropy): contexts, fitting, bit-exact coding (a golden file),
hostile streams, the sidecar file and its failures, and what the codec and the CLI do with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from typer.testing import CliRunner

from msvq_codec import codec, files
from msvq_codec.cli import app
from msvq_codec.container import NO_ENTROPY_ID, Header, LevelInfo, StreamCodec, from_bytes, to_bytes
from msvq_codec.entropy import EntropyModel, LevelCoder, load_entropy, save_entropy, sidecar_path
from msvq_codec.entropy.context import all_rows, frames_of, n_rows, rows_of
from msvq_codec.entropy.fit import fit_level, fit_model, quantise_escape, quantise_row
from msvq_codec.entropy.prior_file import load_prior, prior_path
from msvq_codec.entropy.tables import CAND_BITS, ENTROPY_FORMAT, ESCAPE_BITS, LevelTables
from msvq_codec.errors import FormatError, UsageError, WeightsError, WeightsMismatch
from msvq_codec.model.weights import load_weights
from damage import clean_errors, damaged
from tinymodel import make_tiny_weights, tiny_entropy

DATA = Path(__file__).parent / "data"
GOLDEN_FILE = DATA / "golden-context.msvq"
GOLDEN_TABLES = DATA / "golden-context.entropy.safetensors"
GOLDEN_INDICES = DATA / "golden-context.indices.npz"
runner = CliRunner()


def walk(rng: np.random.Generator, k: int, shape: tuple[int, int, int, int], change: float = 0.3) -> np.ndarray:
    """Grids [n, t, h, w] whose codes mostly repeat the frame before, as a trained model's do."""
    n, t, h, w = shape
    frames = np.empty((n * t, h, w), np.int64)
    frames[0] = rng.integers(0, k, (h, w))
    for f in range(1, n * t):
        frames[f] = np.where(rng.random((h, w)) < change, rng.integers(0, k, (h, w)), frames[f - 1])
    return frames.reshape(shape)


def fitted(k: int, shape=(2, 4, 4, 4), videos: int = 6, seed: int = 0, **kw) -> LevelTables:
    rng = np.random.default_rng(seed)
    return fit_level([walk(rng, k, shape) for _ in range(videos)], k, **kw)[0]


# ---- contexts ------------------------------------------------------------------------------------------------


def test_rows_by_hand():
    k = 9
    p1 = np.array([[1, 1], [2, 3]])
    p2 = np.array([[1, 5], [2, 3]])
    rows = rows_of(p1, p2, k)
    # (0, 0): prev 1, static (1 == 1), neighbours (edge-replicated) right=1 (p2 5: moved), down=2 (static),
    # left=itself 1 (static), up=itself 1 (static): stat4 = 3; same4 = right 1, left 1, up 1 -> 3
    assert rows[0, 0] == ((1 * 3 + 1) * 5 + 3) * 5 + 3
    # (0, 1): prev 1, p2 5: static 0; right=itself (1 vs 5: moved), down=3 (3 == 3), left=1 (1 == 1), up=itself
    # (moved): stat4 = 2; same4: right(itself) 1, down 3 no, left 1 yes, up(itself) yes -> 3
    assert rows[0, 1] == ((1 * 3 + 0) * 5 + 2) * 5 + 3
    none = np.full((2, 2), k)
    first = rows_of(none, none, k)
    assert (first == ((k * 3 + 2) * 5 + 0) * 5 + 4).all()  # no previous frame: one row, NONE
    assert rows_of(p1, none, k)[0, 0] == ((1 * 3 + 2) * 5 + 0) * 5 + 3  # no frame f - 2: static 2, stat4 0
    assert rows.max() < n_rows(k) and first.max() < n_rows(k)


def test_encoder_rows_equal_the_decoders_frame_by_frame():
    frames = frames_of(walk(np.random.default_rng(3), 50, (3, 4, 5, 6)))
    together = all_rows(frames, 50)
    none = np.full(frames.shape[1:], 50)
    for f in range(len(frames)):
        p1 = frames[f - 1] if f >= 1 else none
        p2 = frames[f - 2] if f >= 2 else none
        np.testing.assert_array_equal(together[f], rows_of(p1, p2, 50))


# ---- fitting and coding -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 32, 1024])
@pytest.mark.parametrize("shape", [(1, 4, 4, 4), (3, 2, 3, 5), (1, 1, 1, 1)])
def test_round_trip_is_exact_and_costs_what_the_tables_say(k, shape):
    coder = LevelCoder(fitted(k))
    grid = walk(np.random.default_rng(k), k, shape).astype(np.uint16)
    stream = coder.encode(grid)
    assert len(stream) % 4 == 0 and stream[-4:] != bytes(4) and coder.encode(grid) == stream  # deterministic
    # (a few near-certain indices may leave the coder in its initial state: an empty stream)
    back = coder.decode(stream, grid.shape)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, grid)
    ideal = coder.ideal_bits(grid)
    per_index = coder.index_bits(grid)
    assert per_index.shape == grid.shape and (per_index > 0).all() and per_index.sum() == pytest.approx(ideal)
    assert ideal - 64 <= 8 * len(stream) <= ideal * 1.01 + 64  # the ANS coder's 64-bit state: give or take


def test_codes_outside_the_candidates_escape():
    k = 1024
    tables = fitted(k)
    coder = LevelCoder(tables)
    grid = np.arange(2 * 4 * 4 * 4).reshape(2, 4, 4, 4) * 7 % k  # nothing repeats
    np.testing.assert_array_equal(coder.decode(coder.encode(grid), grid.shape), grid)


def test_the_tables_favour_what_repeats():
    coder = LevelCoder(fitted(32))
    static = np.broadcast_to(np.arange(16).reshape(1, 1, 4, 4), (2, 4, 4, 4))
    noisy = walk(np.random.default_rng(9), 32, (2, 4, 4, 4), change=1.0)
    assert coder.ideal_bits(static) < 0.5 * coder.ideal_bits(noisy)


def test_quantised_rows_are_exact_integers():
    p = np.random.default_rng(0).dirichlet(np.full(100, 0.1), size=50)
    cand, freq = quantise_row(p, 16)
    assert cand.shape == (50, 16) and freq.shape == (50, 17)
    assert (freq.astype(np.int64).sum(1) == 1 << CAND_BITS).all() and freq.min() >= 1
    assert (np.diff(np.take_along_axis(p, cand.astype(np.int64), 1), axis=1) <= 0).all()  # most probable first
    esc = quantise_escape(np.bincount([1, 1, 2], minlength=10).astype(float))
    assert esc.sum() == 1 << ESCAPE_BITS and esc.min() >= 1 and esc.argmax() == 1


def test_fit_refuses_nothing_to_fit_and_foreign_codes():
    with pytest.raises(UsageError, match="no training clips"):
        fit_level([], 32)
    with pytest.raises(UsageError, match="outside the codebook"):
        fit_level([np.full((1, 2, 2, 2), 40)], 32)


def test_fit_tunes_its_smoothing_on_held_out_videos():
    rng = np.random.default_rng(1)
    _, stats = fit_level([walk(rng, 32, (2, 4, 4, 4)) for _ in range(10)], 32)
    assert stats["held_out_bits_per_index"] is not None and len(stats["smoothing"]) == 3


# ---- the golden file: bit-exact on any machine ----------------------------------------------------------------


def golden_parts():
    """What the golden file was made from: tables fitted on synthetic grids, and two levels of indices."""
    rng = np.random.default_rng(2024)
    top_k, bottom_k = 16, 100
    videos = [[walk(rng, top_k, (2, 2, 4, 4)), walk(rng, bottom_k, (2, 4, 8, 8))] for _ in range(6)]
    model = fit_model(bytes(range(16)), [top_k, bottom_k], videos, min_count=4,
                      provenance={"fitted_on": "tests/test_entropy.py golden_parts"})  # fmt: skip
    indices = [walk(rng, top_k, (2, 2, 4, 4)), walk(rng, bottom_k, (2, 4, 8, 8))]
    header = Header(
        model_id=bytes(range(16)), source_fps=25.0, source_width=320, source_height=240, frame_count=60, fps=16.0,
        clip_frames=32, clip_height=64, clip_width=64, n_clips=2,
        levels=(LevelInfo((2, 4, 4), top_k), LevelInfo((4, 8, 8), bottom_k)), codec=StreamCodec.CONTEXT,
        codec_level=0, entropy_id=model.entropy_id,
    )  # fmt: skip
    return model, indices, header


def test_golden_file_decodes_bit_exactly():
    """A .msvq file committed in tests/data, with the tables it was coded with and its indices: decoding gives
    exactly those indices, and coding them gives exactly that file (regenerate: MSVQ_REGENERATE_GOLDEN=1)."""
    if os.environ.get("MSVQ_REGENERATE_GOLDEN"):
        model, indices, header = golden_parts()
        DATA.mkdir(exist_ok=True)
        save_entropy(GOLDEN_TABLES, model)
        coders = [LevelCoder(t) for t in model.levels]
        GOLDEN_FILE.write_bytes(to_bytes(header, streams=[c.encode(g) for c, g in zip(coders, indices)]))
        np.savez(GOLDEN_INDICES, top=indices[0].astype(np.uint16), bottom=indices[1].astype(np.uint16))
    model = load_entropy(GOLDEN_TABLES)
    saved = np.load(GOLDEN_INDICES)
    want = [saved["top"], saved["bottom"]]
    data = GOLDEN_FILE.read_bytes()
    container = from_bytes(data)
    assert container.header.entropy_id == model.entropy_id and container.indices is None
    coders = [LevelCoder(t) for t in model.levels]
    for coder, stream, lv, grid in zip(coders, container.streams, container.header.levels, want):
        np.testing.assert_array_equal(coder.decode(stream, (container.header.n_clips, *lv.grid)), grid)
    assert to_bytes(container.header, streams=[c.encode(g) for c, g in zip(coders, want)]) == data


def test_golden_file_decodes_the_same_in_another_process_with_other_thread_counts():
    code = (
        "import numpy as np, torch; torch.set_num_threads(1)\n"
        "from msvq_codec.container import from_bytes\n"
        "from msvq_codec.entropy import LevelCoder, load_entropy\n"
        f"m = load_entropy({str(GOLDEN_TABLES)!r}); c = from_bytes(open({str(GOLDEN_FILE)!r}, 'rb').read())\n"
        "import hashlib; h = hashlib.sha256()\n"
        "for t, s, lv in zip(m.levels, c.streams, c.header.levels):\n"
        "    h.update(LevelCoder(t).decode(s, (c.header.n_clips, *lv.grid)).tobytes())\n"
        "print(h.hexdigest())\n"
    )
    import hashlib

    saved = np.load(GOLDEN_INDICES)
    want = hashlib.sha256(saved["top"].tobytes() + saved["bottom"].tobytes()).hexdigest()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == want


# ---- hostile streams -------------------------------------------------------------------------------------------


def test_corrupted_streams_give_one_clean_error_or_a_right_sized_grid():
    """Every truncation, every single-bit flip, words appended or replaced: FormatError, or a grid of exactly
    the right shape inside the codebook (a range coder cannot tell every wrong stream from a right one; the
    file's CRC does that). Never a hang, another exception or a wrong-sized grid."""
    k, shape = 32, (2, 4, 4, 4)
    coder = LevelCoder(fitted(k))
    stream = coder.encode(walk(np.random.default_rng(5), k, shape))
    variants = damaged(stream)
    errors = clean_errors(lambda data: coder.decode(data, shape), variants, shape, k)
    assert errors > len(variants) // 2  # most damage is noticed even without the CRC


# ---- the sidecar file ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model() -> EntropyModel:
    return EntropyModel(bytes(range(16)), (fitted(32), fitted(64, seed=1)), {"note": "test"})


def test_sidecar_round_trip(tmp_path, small_model):
    path = tmp_path / "w.entropy.safetensors"
    eid = save_entropy(path, small_model)
    back = load_entropy(path)
    assert eid == back.entropy_id == small_model.entropy_id and back.model_id == small_model.model_id
    assert back.provenance == {"note": "test"}
    for a, b in zip(small_model.levels, back.levels):
        for name in ("row_slot", "cand", "freq", "escape"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert sidecar_path("x/w.safetensors") == Path("x/w.entropy.safetensors")
    assert sidecar_path("x/w.bin") == Path("x/w.bin.entropy.safetensors")


def _write_raw(path: Path, model: EntropyModel, edit=None, meta_edit=None) -> Path:
    tensors = {f"level{i}.{n}": np.ascontiguousarray(getattr(lv, n)) for i, lv in enumerate(model.levels)
               for n in ("row_slot", "cand", "freq", "escape")}  # fmt: skip
    meta = {"msvq_entropy_format": ENTROPY_FORMAT, "msvq_model_id": model.model_id.hex(),
            "msvq_entropy_id": model.entropy_id.hex(), "codebook_sizes": json.dumps([lv.codebook_size for lv in model.levels]),
            "provenance": "{}"}  # fmt: skip
    if edit:
        edit(tensors)
    if meta_edit:
        meta_edit(meta)
    save_file(tensors, str(path), metadata=meta)
    return path


def _set(name, fn):
    def edit(t):
        t[name] = fn(t[name].copy())
    return edit


BAD_SIDECARS = {
    "altered table (ID no longer matches)": (_set("level0.freq", lambda a: np.roll(a, 1, axis=1)), None,
                                              "do not match the recorded entropy ID"),
    "freq row not summing to 2**16": (_set("level0.freq", lambda a: a + np.uint16(1)), None, "sum to 2\\*\\*16"),
    "freq zero": (_set("level0.freq", lambda a: np.where(np.arange(a.shape[1]) == 0, 0, a).astype(np.uint16)), None,
                  ">= 1"),
    "candidate outside the codebook": (_set("level0.cand", lambda a: np.full_like(a, 40)), None, "not a code"),
    "candidate listed twice": (_set("level0.cand", lambda a: np.zeros_like(a)), None, "twice"),
    "row_slot out of range": (_set("level0.row_slot", lambda a: a + np.int32(10**6)), None, "outside the slots"),
    "row_slot wrong dtype": (_set("level0.row_slot", lambda a: a.astype(np.int64)), None, "row_slot must be int32"),
    "row_slot wrong length": (_set("level0.row_slot", lambda a: a[:-1]), None, "row_slot must be int32"),
    "escape zero": (_set("level1.escape", lambda a: np.zeros_like(a)), None, "escape frequencies"),
    "cand wrong dtype": (_set("level0.cand", lambda a: a.astype(np.int32)), None, "cand must be uint16"),
    "freq wrong shape": (_set("level0.freq", lambda a: a[:, :-1]), None, "freq must be uint16"),
    "a tensor missing": (lambda t: t.pop("level1.escape"), None, "malformed entropy model"),
    "codebook_sizes not JSON": (None, lambda m: m.update(codebook_sizes="[32,"), "malformed entropy model"),
    "codebook_sizes 5 levels": (None, lambda m: m.update(codebook_sizes="[32, 64, 2, 2, 2]"), "malformed"),
    "codebook size 1": (None, lambda m: m.update(codebook_sizes="[1, 64]"), "codebook size 1"),
    "model_id not hex": (None, lambda m: m.update(msvq_model_id="zz"), "malformed entropy model"),
    "model_id 3 bytes": (None, lambda m: m.update(msvq_model_id="abcdef"), "model_id must be 16 bytes"),
    "other format": (None, lambda m: m.update(msvq_entropy_format="2"), "not an msvq entropy model"),
}


@pytest.mark.parametrize("name", list(BAD_SIDECARS))
def test_malformed_sidecars_are_refused(tmp_path, small_model, name):
    edit, meta_edit, message = BAD_SIDECARS[name]
    path = _write_raw(tmp_path / "e.safetensors", small_model, edit, meta_edit)
    with pytest.raises(WeightsError, match=message):
        load_entropy(path)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file", b"\xff" * 100])
def test_files_that_are_not_sidecars(tmp_path, content):
    path = tmp_path / "e.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a safetensors entropy model"):
        load_entropy(path)
    with pytest.raises(WeightsError, match="no entropy model at"):
        load_entropy(tmp_path / "missing.safetensors")


# ---- in the codec ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    weights = make_tiny_weights(d / "w.safetensors")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 48, 56, 3))
    video = np.clip(base + rng.integers(-20, 21, (70, 48, 56, 3)).cumsum(0) // 8, 0, 255).astype(np.uint8)
    np.save(d / "v.npy", video)
    return d, weights, load_weights(weights)


def test_prior_is_the_default_and_every_codec_decodes_to_the_same_frames(tiny):
    d, weights, loaded = tiny
    results = {}
    for name in ("prior", "context", "zstd", "deflate"):
        kwargs = {} if name == "prior" else {"codec": name}
        r = files.encode_video(d / "v.npy", d / f"{name}.msvq", model=loaded, force=True, **kwargs)
        header = files.info(d / f"{name}.msvq")
        assert header.codec.name.lower() == name
        assert (header.entropy_id != NO_ENTROPY_ID) == (name in ("prior", "context"))
        results[name] = (r.bytes, np.stack(list(codec.decode_frames(codec.read_file(d / f"{name}.msvq"), loaded))))
    for name in ("context", "zstd", "deflate"):
        np.testing.assert_array_equal(results[name][1], results["prior"][1])
    assert results["prior"][1].shape[0] == 70


def test_without_an_entropy_model_context_is_refused_and_zstd_works(tiny, tmp_path):
    d, weights, _ = tiny
    bare = make_tiny_weights(tmp_path / "bare.safetensors", entropy=False)
    loaded = load_weights(bare)
    with pytest.raises(WeightsError, match="no entropy model beside .*msvq fit-entropy.*zstd"):
        files.encode_video(d / "v.npy", tmp_path / "out.msvq", model=loaded, codec="context")
    with pytest.raises(WeightsError, match="no prior beside .*msvq fit-entropy .*--only prior.*zstd"):
        files.encode_video(d / "v.npy", tmp_path / "out.msvq", model=loaded)
    assert not list(tmp_path.glob("out*"))
    files.encode_video(d / "v.npy", tmp_path / "out.msvq", model=loaded, codec="zstd")
    assert files.info(tmp_path / "out.msvq").codec == StreamCodec.ZSTD
    # a context file made with the twin weights cannot be decoded by these, which have no entropy model
    twin = load_weights(make_tiny_weights(tmp_path / "twin.safetensors"))
    assert twin.model_id == loaded.model_id
    files.encode_video(d / "v.npy", tmp_path / "ctx.msvq", model=twin, codec="context")
    with pytest.raises(WeightsError, match="no entropy model beside"):
        files.decode_file(tmp_path / "ctx.msvq", tmp_path / "out.npy", model=loaded)
    assert not (tmp_path / "out.npy").exists()


def test_a_refit_keeps_the_model_id_and_refuses_files_of_the_old_fit(tiny, tmp_path):
    d, _, _ = tiny
    weights = make_tiny_weights(tmp_path / "w.safetensors")
    loaded = load_weights(weights)
    files.encode_video(d / "v.npy", tmp_path / "old.msvq", model=loaded, codec="context")
    files.encode_video(d / "v.npy", tmp_path / "old-zstd.msvq", model=loaded, codec="zstd")
    old_id = files.info(tmp_path / "old.msvq").entropy_id
    save_entropy(sidecar_path(weights), tiny_entropy(loaded.model, loaded.model_id, seed=7))  # a refit
    again = load_weights(weights)
    assert again.model_id == loaded.model_id
    new_id = codec.entropy_model(again)[0].entropy_id
    assert new_id != old_id
    with pytest.raises(WeightsMismatch, match=f"entropy model {old_id.hex()}.*entropy model is {new_id.hex()}"):
        files.decode_file(tmp_path / "old.msvq", tmp_path / "a.npy", model=again)
    assert not (tmp_path / "a.npy").exists()
    files.decode_file(tmp_path / "old-zstd.msvq", tmp_path / "b.npy", model=again)  # zstd files keep decoding
    files.encode_video(d / "v.npy", tmp_path / "new.msvq", model=again, codec="context")
    assert files.info(tmp_path / "new.msvq").entropy_id == new_id


def test_an_entropy_model_of_other_weights_is_refused(tiny, tmp_path):
    d, weights, loaded = tiny
    other = make_tiny_weights(tmp_path / "o.safetensors", seed=1)
    (tmp_path / "o.entropy.safetensors").write_bytes(sidecar_path(weights).read_bytes())  # the wrong one
    other_loaded = load_weights(other)
    with pytest.raises(WeightsError, match=f"fitted for model {loaded.model_id.hex()}.*{other_loaded.model_id.hex()}"):
        files.encode_video(d / "v.npy", tmp_path / "x.msvq", model=other_loaded, codec="context")
    (tmp_path / "o.prior.safetensors").write_bytes(prior_path(weights).read_bytes())  # and the prior
    again = load_weights(other)
    with pytest.raises(WeightsError, match=f"fitted for model {loaded.model_id.hex()}.*--only prior"):
        files.encode_video(d / "v.npy", tmp_path / "x.msvq", model=again)
    assert not (tmp_path / "x.msvq").exists()


def test_a_corrupted_context_stream_is_one_clean_error_through_the_codec(tiny, tmp_path):
    d, weights, loaded = tiny
    data = codec.encode_to_bytes(d / "v.npy", loaded, codec="context")[1]
    container = from_bytes(data)
    header = container.header
    bad_streams = [container.streams[0], bytes(4) + b"\x01\x00\x00\x00" + container.streams[1][8:]]
    bad = to_bytes(header, streams=bad_streams)  # valid CRCs: only the range decoder can tell
    with pytest.raises(FormatError, match="level 1 stream: corrupt range-coded data"):
        codec.roundtrip_bytes(bad, loaded)


# ---- the CLI ---------------------------------------------------------------------------------------------------


def test_fit_entropy_command(tiny, tmp_path):
    d, _, _ = tiny
    weights = make_tiny_weights(tmp_path / "w.safetensors", entropy=False)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        np.save(data / f"v{i}.npy", rng.integers(0, 256, (70, 40, 40, 3), dtype=np.uint8))
    (tmp_path / "val.txt").write_text("v3.npy\n")
    res = runner.invoke(app, ["-q", "fit-entropy", str(weights), "--data", str(data), "--val-list",
                              str(tmp_path / "val.txt"), "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert res.exit_code == 0, res.output
    side = sidecar_path(weights)
    model = load_entropy(side)
    assert model.model_id == load_weights(weights).model_id
    assert f"entropy model ID {model.entropy_id.hex()}" in res.stdout
    assert model.provenance["fitted_on"]["held_out_videos"] == ["v3.npy"]
    assert model.provenance["fitted_on"]["training_clips"] == 6  # 2 full clips of each of 3 videos
    prior = load_prior(prior_path(weights))  # and the prior, on the same clips
    assert prior.model_id == model.model_id and f"prior ID {prior.prior_id.hex()}" in res.stdout
    assert prior.provenance["fitted_on"] == model.provenance["fitted_on"]
    # and what it wrote codes a file with each
    for name, want in (("prior", prior.prior_id), ("context", model.entropy_id)):
        out = runner.invoke(app, ["-q", "encode", str(d / "v.npy"), str(tmp_path / f"{name}.msvq"), "--weights",
                                  str(weights), "--codec", name])  # fmt: skip
        assert out.exit_code == 0 and files.info(tmp_path / f"{name}.msvq").entropy_id == want


@pytest.mark.parametrize("args, fragment", [
    (["fit-entropy", "{missing}", "--data", "{tmp}"], "no weights file at"),
    (["fit-entropy", "{weights}", "--data", "{missing}"], "is not a folder"),
    (["encode", "{video}", "{tmp}/o.msvq", "--codec", "lzma"], "codec must be prior, context, zstd or deflate"),
    (["fit-entropy", "{weights}", "--data", "{tmp}", "--only", "both"], "--only must be context or prior"),
    (["encode", "{video}", "{tmp}/o.msvq", "--codec", "context", "--level", "3"], "level for context must be"),
])  # fmt: skip
def test_cli_refusals_are_one_line(tiny, tmp_path, args, fragment):
    d, weights, _ = tiny
    fill = {"missing": tmp_path / "missing", "tmp": tmp_path, "weights": weights, "video": d / "v.npy"}
    res = runner.invoke(app, [a.format(**fill) for a in args] + (["--weights", str(weights)] if args[0] == "encode" else []))
    assert res.exit_code != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert not (tmp_path / "o.msvq").exists()


def test_info_shows_the_entropy_model(tiny):
    d, weights, loaded = tiny
    files.encode_video(d / "v.npy", d / "info.msvq", model=loaded, force=True)
    res = runner.invoke(app, ["info", str(d / "info.msvq"), "--json"])
    shown = json.loads(res.stdout)
    assert shown["codec"] == "prior" and shown["entropy_id"] == codec.prior_model(loaded)[0].prior_id.hex()
    assert shown["quality"] == 0 and shown["rd_lambda"] == 0.0


def test_export_fits_the_entropy_model_with_data_and_drops_a_stale_one_without(tmp_path):
    from safetensors.torch import load_file as load_torch

    from msvq_codec.config import TrainConfig
    from msvq_codec.model.weights import read_metadata

    weights = make_tiny_weights(tmp_path / "w.safetensors", entropy=False)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_torch(weights).items()}
    ckpt = {"format": 1, "model_config": read_metadata(weights)["msvq_config"], "step": 3, "epoch": 1,
            "train_config": json.dumps(__import__("dataclasses").asdict(TrainConfig())), "model": state, "history": []}
    torch.save(ckpt, tmp_path / "c.pt")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(data / f"v{i}.npy", rng.integers(0, 256, (70, 40, 40, 3), dtype=np.uint8))
    out = tmp_path / "out.safetensors"
    res = runner.invoke(app, ["-q", "export", str(tmp_path / "c.pt"), str(out), "--data", str(data),
                              "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_entropy(sidecar_path(out)).model_id == load_weights(out).model_id == load_prior(prior_path(out)).model_id
    # exporting other weights over them, without --data: the old entropy model is removed, not left to mislead
    other = {k: (v + 1 if k.startswith("quantizer_top.embed") else v) for k, v in state.items()}
    torch.save({**ckpt, "model": other}, tmp_path / "c2.pt")
    res = runner.invoke(app, ["export", str(tmp_path / "c2.pt"), str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert not sidecar_path(out).exists() and not prior_path(out).exists() and "removed" in res.stderr
    assert "no prior or entropy model yet" in res.stderr

"""Tests for msvq_codec.codes: a .msvq file's index grids as arrays (read_codes), arrays back into a file that
decodes to the same frames (write_codes), the .npz of ``msvq codes`` (files and folders), and the bad grids
refused. The tiny model of tests/tinymodel.py, on CPU.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import msvq_codec
from msvq_codec import codec
from msvq_codec.files import encode_video
from msvq_codec.cli import app
from msvq_codec.codes import CodeGrids, codes_file, load_npz, read_codes, save_npz, write_codes
from msvq_codec.config import model_preset
from msvq_codec.errors import InputError, OutputExists, UsageError, WeightsMismatch
from msvq_codec.model.weights import load_weights
from test_rdo import moving_clip
from tinymodel import make_tiny_weights

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory, loaded) -> dict[str, Path]:
    """A 70-frame source (3 clips, the last padded) encoded with every coder."""
    d = tmp_path_factory.mktemp("codes")
    np.save(d / "in.npy", moving_clip(70))
    out = {}
    for name in ("prior", "context", "zstd", "deflate"):
        encode_video(d / "in.npy", d / f"{name}.msvq", model=loaded, codec=name)
        out[name] = d / f"{name}.msvq"
    return out


def test_read_codes_gives_each_levels_grid_code_for_code(files, loaded, weights):
    cfg = loaded.model.config
    expected = None
    for name, path in files.items():
        grids = read_codes(path, weights=weights)
        container = codec.read_file(path)
        assert list(grids.levels) == ["top", "bottom"] and grids.n_clips == 3
        assert grids.top.shape == (3, *cfg.grid("top")) and grids.bottom.shape == (3, *cfg.grid("bottom"))
        assert all(a.dtype == np.uint16 for a in grids.levels.values())
        for a, b in zip(grids.levels.values(), codec.container_indices(container, loaded)):
            assert np.array_equal(a, b)
        assert (grids.frame_count, grids.fps, grids.model_id) == (70, 16.0, loaded.model_id.hex())
        expected = expected or grids
        assert all(np.array_equal(expected.levels[k], grids.levels[k]) for k in grids.levels)  # every coder alike
    assert msvq_codec.read_codes is read_codes and msvq_codec.write_codes is write_codes


def test_write_codes_makes_a_file_that_decodes_to_the_same_frames(files, loaded, tmp_path):
    grids = read_codes(files["prior"], model=loaded)
    header = write_codes(grids, tmp_path / "w.msvq", model=loaded)
    assert (tmp_path / "w.msvq").read_bytes() == files["prior"].read_bytes()  # the very same file
    assert header.frame_count == 70
    plain = {"top": grids.top.astype(np.int64), "bottom": grids.bottom.astype(np.int32)}  # a model's own arrays
    write_codes(plain, tmp_path / "p.msvq", model=loaded, codec="zstd")
    a = codec.roundtrip_bytes((tmp_path / "p.msvq").read_bytes(), loaded)
    b = codec.roundtrip_bytes(files["context"].read_bytes(), loaded)
    assert a.shape == (96, 64, 64, 3) and np.array_equal(a[:70], b)  # no frame_count given: every clip's frames
    write_codes([grids.top, grids.bottom], tmp_path / "l.msvq", model=loaded, frame_count=70)
    assert np.array_equal(codec.roundtrip_bytes((tmp_path / "l.msvq").read_bytes(), loaded), b)


def test_bad_grids_are_refused_and_nothing_is_written(files, loaded, tmp_path):
    grids = read_codes(files["zstd"])
    top, bottom = grids.top.astype(np.int64), grids.bottom.astype(np.int64)
    k = loaded.model.config.codebook_size
    too_big = bottom.copy()
    too_big[1, 2, 3, 4] = k
    negative = top.copy()
    negative[0, 0, 0, 0] = -1
    cases = [
        ({"top": top, "bottom": bottom[:2]}, "same n_clips on every level"),
        ({"top": top, "bottom": bottom[:, :, :8]}, "the bottom grid must be"),
        ({"top": top, "bottom": too_big}, f"index {k}, outside the codebook's 0..{k - 1}"),
        ({"top": negative, "bottom": bottom}, "index -1"),
        ({"top": top, "bottom": bottom.astype(np.float32)}, "must hold integers"),
        ({"bottom": bottom}, "the weights' levels are top, bottom"),
        ([bottom], "the weights have 2 levels"),
        ({"top": top[:0], "bottom": bottom[:0]}, "n_clips >= 1"),
    ]
    for bad, match in cases:
        with pytest.raises(UsageError, match=match):
            write_codes(bad, tmp_path / "x.msvq", model=loaded)
    for frames in (64, 97, 0, 70.0):
        with pytest.raises(UsageError, match="frame_count must be an integer in 65..96"):
            write_codes({"top": top, "bottom": bottom}, tmp_path / "x.msvq", model=loaded, frame_count=frames)
    (tmp_path / "o").mkdir()
    other = load_weights(make_tiny_weights(tmp_path / "o" / "other.safetensors", seed=5))
    with pytest.raises(WeightsMismatch, match=f"model {grids.model_id}, but the loaded weights are model"):
        write_codes(grids, tmp_path / "x.msvq", model=other)
    assert not (tmp_path / "x.msvq").exists()
    write_codes(grids, tmp_path / "y.msvq", model=loaded)
    with pytest.raises(OutputExists):
        write_codes(grids, tmp_path / "y.msvq", model=loaded)


def test_each_level_is_checked_against_its_own_codebook(tmp_path):
    """A top codebook smaller than the bottom's (ModelConfig.top_codebook_size): a top index that the bottom's
    codebook would hold is still out of the top's range."""
    cfg = dataclasses.replace(model_preset("tiny"), top_codebook_size=8)
    own = load_weights(make_tiny_weights(tmp_path / "w.safetensors", entropy=False, config=cfg))
    top = np.zeros((1, *cfg.grid("top")), np.int64)
    bottom = np.full((1, *cfg.grid("bottom")), 31, np.int64)  # the bottom's last entry: in range
    top[0, 1, 2, 3] = 8
    with pytest.raises(UsageError, match="top grid holds index 8, outside the codebook's 0..7"):
        write_codes({"top": top, "bottom": bottom}, tmp_path / "x.msvq", model=own, codec="zstd")
    assert not (tmp_path / "x.msvq").exists()
    top[0, 1, 2, 3] = 7
    write_codes({"top": top, "bottom": bottom}, tmp_path / "x.msvq", model=own, codec="zstd")
    assert np.array_equal(read_codes(tmp_path / "x.msvq").top, top)


def test_npz_holds_the_grids_and_the_facts(files, loaded, tmp_path):
    grids = read_codes(files["deflate"])
    save_npz(grids, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        assert sorted(z.files) == sorted(["top", "bottom", "frame_count", "fps", "model_id", "source_fps",
                                          "source_width", "source_height"])  # fmt: skip
        assert str(z["model_id"]) == loaded.model_id.hex() and int(z["frame_count"]) == 70
    back = load_npz(tmp_path / "c.npz")
    assert isinstance(back, CodeGrids) and all(np.array_equal(back.levels[k], grids.levels[k]) for k in grids.levels)
    write_codes(back, tmp_path / "c.msvq", model=loaded, codec="deflate")
    assert (tmp_path / "c.msvq").read_bytes() == files["deflate"].read_bytes()
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a codes .npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(UsageError, match="written as .npz"):
        codes_file(files["zstd"], tmp_path / "c.npy")


def test_msvq_codes_writes_npz_for_a_file_and_a_folder(files, weights, tmp_path):
    res = runner.invoke(app, ["codes", str(files["context"]), str(tmp_path / "one.npz"), "--weights", str(weights)])
    assert res.exit_code == 0, res.output
    assert "top [3, " in res.stdout and np.load(tmp_path / "one.npz")["bottom"].shape[0] == 3
    tree = tmp_path / "tree" / "a" / "b"
    tree.mkdir(parents=True)
    for name, path in files.items():
        (tree / f"{name}.msvq").write_bytes(path.read_bytes())
    res = runner.invoke(app, ["codes", str(tmp_path / "tree"), str(tmp_path / "out"), "--weights", str(weights),
                              "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["mode"] == "codes" and summary["ok"] == len(files)
    for name in files:
        z = np.load(tmp_path / "out" / "a" / "b" / f"{name}.npz")
        assert np.array_equal(z["bottom"], np.load(tmp_path / "one.npz")["bottom"])
    res = runner.invoke(app, ["codes", str(files["context"]), str(tmp_path / "one.npz"), "--weights", str(weights)])
    assert res.exit_code == 1 and "exists" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "into").mkdir()  # an existing folder: the input's name in it, as encode does
    res = runner.invoke(app, ["codes", str(files["zstd"]), str(tmp_path / "into")])
    assert res.exit_code == 0 and (tmp_path / "into" / "zstd.npz").is_file()

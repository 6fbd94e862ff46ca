"""Tests for msvq_codec.files: a tiny random model through encode_video and decode_file, exact frame counts,
output kinds, refusals (other weights, corrupt files, existing outputs), determinism.

The model is ``MSVQVAE(model_preset("tiny"))``, randomly initialised, its codebooks seeded by one training
forward; its weights are written to a temporary folder (no weights are committed).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from msvq_codec import codec, files
from msvq_codec.errors import FormatError, OutputExists, UsageError, WeightsError, WeightsMismatch
from msvq_codec.model.weights import load_weights
from msvq_codec.outputs import PARTIAL_TAG
from msvq_codec.video import iter_frames
from tinymodel import make_tiny_weights


def make_npy(path: Path, n: int, h: int = 48, w: int = 64, seed: int = 0) -> Path:
    """``n`` smooth moving frames as a uint8 .npy (taken at 16 fps)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None] + seed
    r = 128 + 100 * np.sin((x + 2 * t) / w * 2 * np.pi)
    g = 128 + 100 * np.cos((y + t) / h * 2 * np.pi)
    b = np.broadcast_to((40 + 7 * t) % 200, r.shape)
    np.save(path, np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "other.safetensors", seed=1)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, loaded) -> tuple[Path, Path]:
    """A 40-frame 48x64 .npy and its .msvq."""
    folder = tmp_path_factory.mktemp("enc")
    src = make_npy(folder / "clip.npy", 40)
    out = folder / "clip.msvq"
    files.encode_video(src, out, model=loaded)
    return src, out


def debris(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if PARTIAL_TAG in p.name]


# ---- the round trip ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 31, 32, 33, 100])
def test_decode_returns_exactly_the_input_frame_count(tmp_path, loaded, n):
    src = make_npy(tmp_path / "v.npy", n)
    enc = files.encode_video(src, tmp_path / "v.msvq", model=loaded)
    assert enc.frames == n and enc.clips == math.ceil(n / 32)
    header = files.info(tmp_path / "v.msvq")
    assert (header.frame_count, header.n_clips, header.source_width, header.source_height) == (n, enc.clips, 64, 48)
    dec = files.decode_file(tmp_path / "v.msvq", tmp_path / "r.npy", model=loaded)
    frames = np.load(tmp_path / "r.npy")
    assert dec.frames == n
    assert frames.shape == (n, 64, 64, 3) and frames.dtype == np.uint8


def test_encode_result_fields(encoded):
    src, out = encoded
    header = files.info(out)
    assert header.frame_count == 40 and header.n_clips == 2
    assert header.paper_bpp == pytest.approx((2 * (8 * 8 * 8 + 16 * 16 * 16) * 5) / (2 * 32 * 64 * 64))


@pytest.mark.parametrize("name", ["r.mp4", "r.avi", "r.mkv", "r.npy", "frames"])
def test_output_kinds(tmp_path, loaded, encoded, name):
    _, msvq = encoded
    out = tmp_path / name
    res = files.decode_file(msvq, out, model=loaded)
    assert res.frames == 40 and (res.width, res.height) == (64, 64)
    if name == "frames":
        assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(40)]
    frames = np.stack(list(iter_frames(out, input_fps=16)))
    assert frames.shape == (40, 64, 64, 3)
    assert debris(tmp_path) == []


def test_lossless_outputs_agree(tmp_path, loaded, encoded):
    _, msvq = encoded
    files.decode_file(msvq, tmp_path / "a.npy", model=loaded)
    files.decode_file(msvq, tmp_path / "pngs", model=loaded)
    a = np.load(tmp_path / "a.npy")
    b = np.stack(list(iter_frames(tmp_path / "pngs")))
    np.testing.assert_array_equal(a, b)


def test_decode_fps_sets_the_video_rate(tmp_path, loaded, encoded):
    _, msvq = encoded
    files.decode_file(msvq, tmp_path / "r.avi", model=loaded, fps=25)
    cap = cv2.VideoCapture(str(tmp_path / "r.avi"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25, abs=0.01)
    cap.release()


def test_size_source_and_explicit(tmp_path, loaded, encoded):
    _, msvq = encoded
    res = files.decode_file(msvq, tmp_path / "s.npy", model=loaded, size="source")
    assert (res.width, res.height) == (64, 48)
    assert np.load(tmp_path / "s.npy").shape == (40, 48, 64, 3)
    res = files.decode_file(msvq, tmp_path / "e.npy", model=loaded, size="40x30")
    assert np.load(tmp_path / "e.npy").shape == (40, 30, 40, 3)
    for bad in ("foo", "0x10", "10", "10x10x10"):
        with pytest.raises(UsageError):
            files.decode_file(msvq, tmp_path / "bad.npy", model=loaded, size=bad)
    assert not (tmp_path / "bad.npy").exists()


# ---- refusals ------------------------------------------------------------------------------------------------


def test_refuses_file_made_by_other_weights(tmp_path, encoded, loaded, other_weights):
    _, msvq = encoded
    other = load_weights(other_weights)
    assert other.model_id != loaded.model_id
    with pytest.raises(WeightsMismatch) as info:
        files.decode_file(msvq, tmp_path / "r.npy", weights=other_weights, device="cpu")
    assert loaded.model_id.hex() in str(info.value) and other.model_id.hex() in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_is_a_format_error_and_leaves_nothing(tmp_path, encoded, loaded, cut):
    _, msvq = encoded
    data = msvq.read_bytes()
    bad = tmp_path / "bad.msvq"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(FormatError):
        files.decode_file(bad, tmp_path / "r.mp4", model=loaded)
    with pytest.raises(FormatError):
        files.info(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.msvq"]


@pytest.mark.parametrize("where", [3, 40, -100, -2])
def test_corrupted_file_is_a_format_error_and_leaves_nothing(tmp_path, encoded, loaded, where):
    _, msvq = encoded
    data = bytearray(msvq.read_bytes())
    data[where] ^= 0x55
    bad = tmp_path / "bad.msvq"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        files.decode_file(bad, tmp_path / "frames", model=loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.msvq"]


def test_empty_and_foreign_files_are_format_errors(tmp_path, loaded):
    (tmp_path / "empty.msvq").write_bytes(b"")
    (tmp_path / "text.msvq").write_text("hello, not a container\n")
    for name in ("empty.msvq", "text.msvq"):
        with pytest.raises(FormatError):
            files.decode_file(tmp_path / name, tmp_path / "r.npy", model=loaded)
    assert not (tmp_path / "r.npy").exists()


def test_existing_output_not_overwritten_without_force(tmp_path, loaded, encoded):
    src, msvq = encoded
    out = tmp_path / "x.msvq"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExists, match="exists"):
        files.encode_video(src, out, model=loaded)
    assert out.read_bytes() == b"precious"
    files.encode_video(src, out, model=loaded, force=True)
    assert out.read_bytes() == msvq.read_bytes()

    rec = tmp_path / "r.npy"
    rec.write_bytes(b"precious")
    with pytest.raises(OutputExists):
        files.decode_file(msvq, rec, model=loaded)
    assert rec.read_bytes() == b"precious"
    files.decode_file(msvq, rec, model=loaded, force=True)
    assert np.load(rec).shape == (40, 64, 64, 3)
    assert debris(tmp_path) == []


def test_force_never_replaces_a_folder_that_is_not_png_frames(tmp_path, loaded, encoded):
    _, msvq = encoded
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="thesis.tex"):
        files.decode_file(msvq, home, model=loaded, force=True)
    assert (home / "thesis.tex").read_text() == "years of work"
    (tmp_path / "r.mp4").mkdir()
    with pytest.raises(UsageError, match="folder"):
        files.decode_file(msvq, tmp_path / "r.mp4", model=loaded, force=True)
    frames = tmp_path / "frames"
    files.decode_file(msvq, frames, model=loaded)
    files.decode_file(msvq, frames, model=loaded, force=True)  # a PNG folder may be replaced
    assert len(list(frames.iterdir())) == 40


def test_encode_into_a_folder_path_is_refused(tmp_path, loaded, encoded):
    src, _ = encoded
    with pytest.raises(UsageError):
        files.encode_video(src, tmp_path, model=loaded, force=True)


def test_encoding_twice_gives_identical_bytes(tmp_path, loaded, encoded, weights):
    src, msvq = encoded
    files.encode_video(src, tmp_path / "a.msvq", model=loaded)
    files.encode_video(src, tmp_path / "b.msvq", weights=weights, device="cpu")  # a fresh load too
    assert (tmp_path / "a.msvq").read_bytes() == (tmp_path / "b.msvq").read_bytes() == msvq.read_bytes()


def test_deflate_and_levels(tmp_path, loaded, encoded):
    src, msvq = encoded
    files.encode_video(src, tmp_path / "d.msvq", model=loaded, codec="deflate", level=1)
    header = files.info(tmp_path / "d.msvq")
    assert (header.codec.name, header.codec_level) == ("DEFLATE", 1)
    a = codec.roundtrip_bytes((tmp_path / "d.msvq").read_bytes(), loaded)
    b = codec.roundtrip_bytes(msvq.read_bytes(), loaded)
    np.testing.assert_array_equal(a, b)  # the compressor never changes the indices
    for name, level in (("lzma", None), ("zstd", 0), ("zstd", 23), ("deflate", 10)):
        with pytest.raises(UsageError):
            files.encode_video(src, tmp_path / "bad.msvq", model=loaded, codec=name, level=level)
    assert not (tmp_path / "bad.msvq").exists()


def test_video_input_and_input_fps(tmp_path, loaded):
    frames = np.load(make_npy(tmp_path / "f.npy", 50, 48, 64))
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    res = files.encode_video(path, tmp_path / "v.msvq", model=loaded)
    assert res.frames == math.ceil(50 * 16 / 25)
    assert files.info(tmp_path / "v.msvq").source_fps == pytest.approx(25)
    res = files.encode_video(path, tmp_path / "w.msvq", model=loaded, input_fps=16)
    assert res.frames == 50


def test_missing_weights_message(tmp_path, encoded):
    src, _ = encoded
    with pytest.raises(WeightsError, match="no weights at") as info:
        files.encode_video(src, tmp_path / "x.msvq", weights=tmp_path / "none.safetensors", device="cpu")
    assert info.value.option == "weights" and "--" not in str(info.value)  # values, not flags
    assert not (tmp_path / "x.msvq").exists()

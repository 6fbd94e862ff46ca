"""Determinism on one machine: encoding the same video twice gives the same bytes, decoding the same file
twice gives the same frames, in one process and in separate ``python -m msvq_codec`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from msvq_codec import codec
from msvq_codec.model.weights import load_weights
from tinymodel import make_tiny_weights

ROOT = Path(__file__).resolve().parent.parent




@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Weights and a 75-frame 80x120 MJPEG .avi at 25 fps (three clips at 16 fps, the last padded)."""
    d = tmp_path_factory.mktemp("det")
    weights = make_tiny_weights(d / "tiny.safetensors")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    video = d / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (120, 80))
    for k in range(75):
        writer.write(np.roll(base, 3 * k, axis=1))
    writer.release()
    return {"dir": d, "weights": weights, "video": video}


def msvq(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "msvq_codec", "-q", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip


def run_together(*commands) -> None:
    procs = [msvq(*c) for c in commands]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err


def test_in_one_process(env):
    for name in ("zstd", "deflate"):
        first = codec.encode_to_bytes(env["video"], load_weights(env["weights"]), codec=name)[1]
        second = codec.encode_to_bytes(env["video"], load_weights(env["weights"]), codec=name)[1]
        assert first == second
        loaded = load_weights(env["weights"])
        frames_a = codec.roundtrip_bytes(first, loaded)
        frames_b = codec.roundtrip_bytes(first, load_weights(env["weights"]))
        assert frames_a.shape == (48, 64, 64, 3)  # 75 frames at 25 fps are 48 at 16
        assert np.array_equal(frames_a, frames_b)


def test_in_separate_processes(env, tmp_path):
    w, video = env["weights"], env["video"]
    a, b = tmp_path / "a.msvq", tmp_path / "b.msvq"
    run_together(("encode", video, a, "--weights", w), ("encode", video, b, "--weights", w))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() == codec.encode_to_bytes(video, load_weights(w))[1]  # and the library's own
    ra, rb = tmp_path / "ra.npy", tmp_path / "rb.npy"
    run_together(("decode", a, ra, "--weights", w), ("decode", a, rb, "--weights", w))
    frames_a, frames_b = np.load(ra), np.load(rb)
    assert frames_a.shape == (48, 64, 64, 3)
    assert np.array_equal(frames_a, frames_b) and ra.read_bytes() == rb.read_bytes()
    assert np.array_equal(frames_a, codec.roundtrip_bytes(a.read_bytes(), load_weights(w)))

"""Interruption and concurrency, with real ``python -m msvq_codec`` processes.

* SIGINT / SIGTERM in the middle of a folder run (to the process, or to its whole process group as
  ``timeout`` and job schedulers do; one worker or two): exit 130, no partial output, no temporary file,
  every output a complete container; rerunning with ``--skip-existing`` finishes the job with the bytes of an
  uninterrupted run.
* Several ``msvq encode`` processes writing into one folder at once, to the same names and to different ones,
  with and without ``--force``: every file is one writer's whole output; without ``--force`` exactly one
  writer wins each name and the others fail with the one-line "exists" error.

The model is a tiny random-initialised one; the inputs are generated .npy clips.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from msvq_codec.codec import read_file
from msvq_codec.outputs import PARTIAL_TAG
from tinymodel import make_tiny_weights

N_FILES = 24  # enough that a run lasts well beyond the moment of the signal on a fast, idle machine
ROOT = Path(__file__).resolve().parent.parent




def clip(n: int, seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None] + 7 * seed
    r = 128 + 100 * np.sin((x + 2 * t + seed) / w * 2 * np.pi)
    g = 128 + 100 * np.cos((y + t) / h * 2 * np.pi)
    b = np.broadcast_to((40 + 7 * t) % 200, r.shape)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def msvq(*args, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "msvq_codec", "-q", *map(str, args)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, **popen,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"msvq did not finish in {timeout} s: {err[-2000:]}") from None
    return proc.returncode, out, err


def debris(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if PARTIAL_TAG in p.name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Weights, a folder of N_FILES clips (some in a subfolder), and an uninterrupted run's outputs."""
    d = tmp_path_factory.mktemp("interrupt")
    weights = make_tiny_weights(d / "tiny.safetensors")
    src = d / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(N_FILES):
        np.save(src / ("sub" if i % 3 == 2 else "") / f"v{i}.npy", clip(300 + 10 * i, seed=i))
    ref = d / "ref"
    code, out, err = finish(msvq("encode", src, ref, "--weights", weights, "--json"))
    assert code == 0, err
    assert json.loads(out)["ok"] == N_FILES
    reference = {str(p.relative_to(ref)): p.read_bytes() for p in ref.rglob("*.msvq")}
    assert len(reference) == N_FILES
    return {"dir": d, "weights": weights, "src": src, "ref": reference}


# ---------------------------------------------------------------------------------------------- interruption


def interrupt_when_first_output_appears(proc: subprocess.Popen, out: Path, sig: int, group: bool) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.suffix == ".msvq" and not p.name.startswith(".") for p in out.rglob("*")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if group:
        os.killpg(proc.pid, sig)  # as `timeout`, a terminal's Ctrl-C or a job scheduler do: workers too
    else:
        proc.send_signal(sig)


@pytest.mark.parametrize(
    "sig, jobs, group",
    [(signal.SIGINT, 1, True), (signal.SIGTERM, 2, True)],  # (SIGTERM to the process alone: the decode test)
    ids=["ctrl-c", "sigterm-group-2-workers"],  # Ctrl-C: SIGINT to the terminal's process group
)
def test_interrupted_folder_run_leaves_no_partial_output_and_resumes(setup, tmp_path, sig, jobs, group):
    out = tmp_path / "out"
    proc = msvq("encode", setup["src"], out, "--weights", setup["weights"], "--jobs", jobs, start_new_session=True)
    interrupt_when_first_output_appears(proc, out, sig, group)
    code, _, err = finish(proc)
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    time.sleep(0.5)  # no orphaned worker may go on writing after the run ended
    done = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.msvq")}
    assert not debris(out)
    assert 0 < len(done) < N_FILES, "the signal did not land in the middle of the run"
    for name, data in done.items():
        read_file(out / name)  # complete and valid ...
        assert data == setup["ref"][name]  # ... and exactly the uninterrupted run's output
    code, out_json, err = finish(msvq("encode", setup["src"], out, "--weights", setup["weights"], "--skip-existing",
                                      "--json"))  # fmt: skip
    assert code == 0, err
    summary = json.loads(out_json)
    assert (summary["ok"], summary["skipped"]) == (N_FILES - len(done), len(done))
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.msvq")} == setup["ref"]
    assert not debris(out)


def test_sigterm_during_a_long_decode_write_leaves_nothing(setup, tmp_path):
    """Decoding writes its output for a long time (frame by frame): SIGTERM then must remove the temporary."""
    codes = tmp_path / "codes"
    codes.mkdir()
    for name, data in setup["ref"].items():
        (codes / Path(name).name).write_bytes(data)
    out = tmp_path / "videos"
    proc = msvq("decode", codes, out, "--weights", setup["weights"], "--ext", "mkv", start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (out.is_dir() and debris(out)):
        time.sleep(0.005)  # until a temporary output is being written
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not debris(out)
    for video in out.glob("*.mkv"):
        assert video.stat().st_size > 0


# ----------------------------------------------------------------------------------------------- concurrency


def one_line_exists_error(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return (len(lines) == 1 and lines[0].startswith("error: ") and "--force" in lines[0]
            and ("exists" in lines[0] or "appeared while writing" in lines[0]))  # before or after encoding


def test_four_concurrent_writers_same_and_different_names(setup, tmp_path):
    """Four processes at once into one folder: two encode different inputs to one new name without --force,
    two replace an existing file with --force (each with another input). Without --force exactly one wins and
    the other fails with the one-line 'exists' error; with it both succeed; every file is exactly one
    writer's complete output, and no temporary file is left."""
    src, w, ref = setup["src"], setup["weights"], setup["ref"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "forced.msvq").write_bytes(b"an old file that --force replaces")
    plain, forced = ["v0.npy", "v3.npy"], ["v1.npy", "v4.npy"]
    procs = [msvq("encode", src / i, out / "plain.msvq", "--weights", w) for i in plain]
    procs += [msvq("encode", src / i, out / "forced.msvq", "--weights", w, "--force") for i in forced]
    results = [finish(p) for p in procs]
    assert sorted(code for code, _, _ in results[:2]) == [0, 1], [(c, e) for c, _, e in results[:2]]
    loser = next(err for code, _, err in results[:2] if code == 1)
    assert one_line_exists_error(loser), loser
    winner = plain[[code for code, _, _ in results[:2]].index(0)]
    assert (out / "plain.msvq").read_bytes() == ref[winner.replace(".npy", ".msvq")]
    for code, _, err in results[2:]:
        assert code == 0, err
    assert (out / "forced.msvq").read_bytes() in {ref[i.replace(".npy", ".msvq")] for i in forced}
    assert sorted(p.name for p in out.iterdir()) == ["forced.msvq", "plain.msvq"]


def test_two_folder_runs_into_one_output_folder(setup, tmp_path):
    """Two folder runs of the same corpus into one output folder at once: every output is written by exactly
    one of them (the other reports it failed: exists, or skipped), and each equals the reference."""
    out = tmp_path / "out"
    procs = [msvq("encode", setup["src"], out, "--weights", setup["weights"], "--json", *extra)
             for extra in ([], ["--skip-existing"])]  # fmt: skip
    summaries = []
    for proc in procs:
        code, stdout, err = finish(proc)
        assert code in (0, 1), err
        summaries.append({f["input"]: f for f in json.loads(stdout)["files"]})
    for name in summaries[0]:
        statuses = sorted(s[name]["status"] for s in summaries)
        assert statuses.count("ok") == 1, (name, statuses)
        other = next(s[name] for s in summaries if s[name]["status"] != "ok")
        assert other["status"] == "skipped" or "exists" in other["error"] or "appeared" in other["error"], other
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.msvq")} == setup["ref"]
    assert not debris(out)

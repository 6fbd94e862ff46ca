"""Tests for msvq_codec.batch: folder runs into mirrored trees, failures isolated, resume, sharding, jobs.

Uses a tiny random-initialised model (weights written to a temporary folder) and generated inputs. The
real-data test reads /work/shared/data/ucf101/videos when present and skips otherwise.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from msvq_codec.batch import find_msvq, parse_shard, plan, run_batch, shard_of
from msvq_codec.cli import app
from msvq_codec.errors import InputError, UsageError
from tinymodel import make_tiny_weights

UCF = Path("/work/shared/data/ucf101/videos")




def frames(n: int, h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3)).astype(np.int16)
    return np.stack([np.roll(base, 2 * k, axis=1) for k in range(n)]).clip(0, 255).astype(np.uint8)


def write_avi(path: Path, data: np.ndarray, fps: float = 25) -> Path:
    h, w = data.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in data:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    """in/one.npy, in/a/two.npy, in/a/b/three.avi, in/a/b/pngs/ (a frame folder), in/c/bad.mp4 (text)."""
    root = tmp_path / "in"
    (root / "a" / "b" / "pngs").mkdir(parents=True)
    (root / "c").mkdir()
    np.save(root / "one.npy", frames(20, seed=1))
    np.save(root / "a" / "two.npy", frames(40, seed=2))
    write_avi(root / "a" / "b" / "three.avi", frames(30, seed=3))
    for i, f in enumerate(frames(5, seed=4)):
        cv2.imwrite(str(root / "a" / "b" / "pngs" / f"{i:03d}.png"), f)
    (root / "c" / "bad.mp4").write_text("this is not a video\n")
    (root / "notes.txt").write_text("ignored")
    return root


GOOD = {  # input -> output, relative
    "one.npy": "one.msvq", "a/two.npy": "a/two.msvq", "a/b/three.avi": "a/b/three.msvq", "a/b/pngs": "a/b/pngs.msvq",
}  # fmt: skip


def by_input(summary) -> dict:
    return {r.input: r for r in summary.results}


# ---- encode and decode folders -------------------------------------------------------------------------------


def test_encode_folder_mirrors_tree_and_isolates_a_failure(tmp_path, corpus, weights):
    out = tmp_path / "out"
    summary = run_batch("encode", corpus, out, weights=weights, device="cpu")
    results = by_input(summary)
    assert sorted(results) == sorted([*GOOD, "c/bad.mp4"])
    for rel, target in GOOD.items():
        assert results[rel].status == "ok", results[rel].error
        assert results[rel].bytes == (out / target).stat().st_size
        assert results[rel].frames > 0 and results[rel].seconds > 0
    assert results["a/two.npy"].frames == 40
    bad = results["c/bad.mp4"]
    assert bad.status == "failed" and "bad.mp4" in bad.error and "\n" not in bad.error
    assert (summary.count("ok"), summary.failed, summary.count("skipped")) == (4, 1, 0)
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert produced == sorted(GOOD.values())  # nothing for the bad file, no temporary debris
    d = summary.to_dict()
    assert d["total"] == 5 and d["failed"] == 1 and len(d["files"]) == 5
    json.dumps(d)


def test_decode_folder_mirrors_tree(tmp_path, corpus, weights):
    codes = tmp_path / "codes"
    run_batch("encode", corpus, codes, weights=weights, device="cpu")
    summary = run_batch("decode", codes, tmp_path / "rec", weights=weights, device="cpu", ext="npy")
    assert summary.failed == 0 and summary.count("ok") == 4
    for rel, target in GOOD.items():
        out = tmp_path / "rec" / target.replace(".msvq", ".npy")
        assert out.is_file()
        assert by_input(summary)[target].frames == np.load(out).shape[0]
    summary = run_batch("decode", codes / "a", tmp_path / "mp4", weights=weights, device="cpu")  # default: mp4
    assert summary.count("ok") == 3
    assert sorted(p.relative_to(tmp_path / "mp4").as_posix() for p in (tmp_path / "mp4").rglob("*.mp4")) == [
        "b/pngs.mp4", "b/three.mp4", "two.mp4"
    ]
    summary = run_batch("decode", codes / "a" / "b", tmp_path / "png", weights=weights, device="cpu", ext="png")
    assert summary.count("ok") == 2
    assert len(list((tmp_path / "png" / "three").glob("*.png"))) == by_input(summary)["three.msvq"].frames


def test_decode_folder_reports_corrupt_and_foreign_files(tmp_path, corpus, weights):
    codes = tmp_path / "codes"
    run_batch("encode", corpus, codes, weights=weights, device="cpu")
    data = (codes / "one.msvq").read_bytes()
    (codes / "one.msvq").write_bytes(data[: len(data) // 2])
    other = make_tiny_weights(tmp_path / "other.safetensors", seed=5)
    summary = run_batch("decode", codes, tmp_path / "rec", weights=weights, device="cpu", ext="npy")
    results = by_input(summary)
    assert results["one.msvq"].status == "failed" and summary.failed == 1
    assert not (tmp_path / "rec" / "one.npy").exists()
    summary = run_batch("decode", codes / "a", tmp_path / "rec2", weights=other, device="cpu", ext="npy")
    assert summary.failed == 3 and all("made by model" in r.error for r in summary.results)


def test_skip_existing_resumes(tmp_path, corpus, weights):
    out = tmp_path / "out"
    first = run_batch("encode", corpus, out, weights=weights, device="cpu")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.msvq")}
    (out / "a" / "two.msvq").unlink()  # as if the run had stopped before this one
    second = run_batch("encode", corpus, out, weights=weights, device="cpu", skip_existing=True)
    results = by_input(second)
    assert results["a/two.npy"].status == "ok"
    assert [r for r in results if results[r].status == "skipped"] == sorted(set(GOOD) - {"a/two.npy"})
    assert results["c/bad.mp4"].status == "failed"  # failures are retried
    for p, stamp in stamps.items():
        if p.name != "two.msvq":
            assert p.stat().st_mtime_ns == stamp
    assert first.count("ok") == 4


def test_existing_outputs_fail_without_force_and_are_replaced_with_it(tmp_path, corpus, weights):
    out = tmp_path / "out"
    run_batch("encode", corpus / "a", out, weights=weights, device="cpu")
    again = run_batch("encode", corpus / "a", out, weights=weights, device="cpu")
    assert again.failed == 3 and all("exists" in r.error for r in again.results)
    forced = run_batch("encode", corpus / "a", out, weights=weights, device="cpu", force=True)
    assert forced.failed == 0 and forced.count("ok") == 3
    with pytest.raises(UsageError, match="skip_existing and force"):
        run_batch("encode", corpus, out, weights=weights, skip_existing=True, force=True)


def test_output_name_collisions_are_reported(tmp_path, weights):
    root = tmp_path / "in"
    root.mkdir()
    np.save(root / "clip.npy", frames(10))
    write_avi(root / "clip.avi", frames(10))
    summary = run_batch("encode", root, tmp_path / "out", weights=weights, device="cpu")
    results = by_input(summary)
    assert results["clip.avi"].status == "ok"  # the first in sorted order wins
    assert results["clip.npy"].status == "failed" and "clip.avi" in results["clip.npy"].error


def test_output_inside_input_is_not_an_input(tmp_path, weights):
    root = tmp_path / "in"
    root.mkdir()
    np.save(root / "x.npy", frames(10))
    run_batch("encode", root, root / "codes", weights=weights, device="cpu")
    run_batch("decode", root / "codes", root / "codes" / "rec", weights=weights, device="cpu", ext="npy")
    tasks = plan("encode", root, root / "codes")
    assert [t.relative for t in tasks] == ["x.npy"]  # not codes/rec/x.npy


def test_empty_folder_and_bad_calls(tmp_path, weights):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .msvq files"):
        run_batch("decode", tmp_path / "empty", tmp_path / "o", weights=weights)
    with pytest.raises(InputError):
        run_batch("encode", tmp_path / "missing", tmp_path / "o", weights=weights)
    (tmp_path / "file.txt").write_text("x")
    np.save(tmp_path / "empty" / "v.npy", frames(3))
    with pytest.raises(UsageError, match="folder"):
        run_batch("encode", tmp_path / "empty", tmp_path / "file.txt", weights=weights)
    for kwargs in ({"jobs": 0}, {"ext": "gif"}, {"shard": "2/2"}, {"codec": "lzma"}, {"level": 50},
                   {"batch_size": 0}, {"input_fps": -1.0}, {"device": "tpu"}):  # fmt: skip
        with pytest.raises(UsageError):
            run_batch("encode" if "ext" not in kwargs else "decode", tmp_path / "empty", tmp_path / "o",
                      weights=weights, **kwargs)  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_missing_weights_fail_the_run_once(tmp_path, corpus):
    from msvq_codec.errors import WeightsError

    with pytest.raises(WeightsError, match="no weights at"):
        run_batch("encode", corpus, tmp_path / "out", weights=tmp_path / "none.safetensors", device="cpu")


def test_find_msvq_recursive_skips_hidden(tmp_path):
    (tmp_path / "a" / ".hidden").mkdir(parents=True)
    for name in ("x.msvq", "a/y.MSVQ", "a/.z.msvq", "a/.hidden/w.msvq", "a/v.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_msvq(tmp_path)] == ["a/y.MSVQ", "x.msvq"]


# ---- sharding --------------------------------------------------------------------------------------------------


def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("3/2", "2/2", "0/0", "-1/2", "1", "a/b", "1/2/3", "", "1.5/2"):
        with pytest.raises(UsageError):
            parse_shard(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16])
def test_shards_cover_every_file_exactly_once(n):
    names = [f"d{i % 7}/sub{i % 3}/clip_{i:04d}.avi" for i in range(500)]
    shards = [{name for name in names if shard_of(name, n) == k} for k in range(n)]
    assert sum(len(s) for s in shards) == len(names)
    assert set().union(*shards) == set(names)
    if n > 1:
        assert all(len(s) > 0 for s in shards)  # and it does spread them
        assert max(len(s) for s in shards) < 2 * len(names) / n


def test_shard_is_stable_and_independent_of_other_files():
    assert shard_of("a/b/clip.avi", 4) == shard_of(Path("a") / "b" / "clip.avi", 4)
    known = {name: shard_of(name, 7) for name in ("x.avi", "y/z.mp4", "deep/er/v.npy")}
    assert {name: shard_of(name, 7) for name in known} == known  # a pure function of the path alone
    # pinned, so a change of rule (which would reshuffle a running multi-machine job) is noticed
    assert [shard_of(f"v{i}.avi", 4) for i in range(8)] == [0, 1, 2, 2, 2, 2, 1, 2]


def test_shard_runs_split_a_folder(tmp_path, corpus, weights):
    n = 3
    done: list[str] = []
    for k in range(n):
        summary = run_batch("encode", corpus, tmp_path / "out", weights=weights, device="cpu", shard=f"{k}/{n}")
        assert summary.shard == (k, n)
        done += [r.input for r in summary.results]
    assert sorted(done) == sorted([*GOOD, "c/bad.mp4"])
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.msvq")) == sorted(
        GOOD.values()
    )


# ---- parallel ---------------------------------------------------------------------------------------------------


def test_jobs_2_gives_the_same_files(tmp_path, corpus, weights):
    serial = run_batch("encode", corpus, tmp_path / "s", weights=weights, device="cpu")
    seen = []
    parallel = run_batch("encode", corpus, tmp_path / "p", weights=weights, device="cpu", jobs=2,
                         progress=lambda done, total, r: seen.append((done, total, r and r.input)))  # fmt: skip
    assert [(r.input, r.status, r.frames, r.bytes) for r in parallel.results] == [
        (r.input, r.status, r.frames, r.bytes) for r in serial.results
    ]
    for target in GOOD.values():
        assert (tmp_path / "p" / target).read_bytes() == (tmp_path / "s" / target).read_bytes()
    assert seen[0] == (0, 5, None) and [d for d, _, _ in seen] == list(range(6))
    assert {i for _, _, i in seen[1:]} == {*GOOD, "c/bad.mp4"}


# ---- through the CLI ------------------------------------------------------------------------------------------


def test_cli_folder_run_exit_1_and_summary(tmp_path, corpus, weights):
    runner = CliRunner()
    args = ["encode", str(corpus), str(tmp_path / "out"), "--weights", str(weights), "--device", "cpu", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    d = json.loads(res.stdout)
    assert (d["ok"], d["failed"]) == (4, 1)
    assert [f["input"] for f in d["files"] if f["status"] == "failed"] == ["c/bad.mp4"]
    assert "Traceback" not in res.stderr and "bad.mp4" in res.stderr

    res = runner.invoke(app, ["encode", str(corpus), str(tmp_path / "out"), "-w", str(weights), "--skip-existing"])
    assert res.exit_code == 1
    assert "failed" in res.stdout and "bad.mp4" in res.stdout and "4 skipped, 1 failed" in res.stdout

    res = runner.invoke(app, ["decode", str(tmp_path / "out"), str(tmp_path / "rec"), "-w", str(weights),
                              "--ext", "npy", "--jobs", "1", "--shard", "0/1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "decoded 4 of 4 files" in res.stdout
    assert sorted(p.name for p in (tmp_path / "rec").rglob("*.npy")) == ["one.npy", "pngs.npy", "three.npy", "two.npy"]


@pytest.mark.skipif(not UCF.is_dir(), reason="no UCF-101 videos in /work/shared/data")
def test_real_videos_folder(tmp_path, weights):
    videos = sorted(UCF.glob("*.avi"))[:2]
    if not videos:
        pytest.skip("no .avi files in the UCF-101 folder")
    root = tmp_path / "ucf"
    (root / "sub").mkdir(parents=True)
    os.symlink(videos[0], root / videos[0].name)  # links, never copies of the data
    if len(videos) > 1:
        os.symlink(videos[1], root / "sub" / videos[1].name)
    summary = run_batch("encode", root, tmp_path / "codes", weights=weights, device="cpu")
    assert summary.failed == 0 and summary.count("ok") == len(videos)
    back = run_batch("decode", tmp_path / "codes", tmp_path / "rec", weights=weights, device="cpu")
    assert back.failed == 0
    assert [r.frames for r in back.results] == [r.frames for r in summary.results]


def test_interrupt_stops_workers_and_leaves_no_partial_outputs(tmp_path, weights):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(6):
        np.save(root / f"v{i}.npy", frames(300, seed=i))

    def interrupt(done, total, result):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch("encode", root, tmp_path / "out", weights=weights, device="cpu", jobs=2,
                  progress=interrupt)  # fmt: skip
    out = tmp_path / "out"
    assert all(not p.name.startswith(".") for p in out.iterdir())  # no temporary files left behind
    assert len(list(out.iterdir())) < 6
    assert not multiprocessing.active_children()  # the workers were stopped, not left to finish the queue

"""Tests for msvq_codec.outputs: atomic writes of files and folders, force semantics, no debris on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msvq_codec.errors import OutputExists, UsageError
from msvq_codec.outputs import PARTIAL_TAG, atomic_output, check_target, temp_name


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_temp_name_is_hidden_sibling_with_same_suffix(tmp_path):
    assert temp_name(tmp_path / "frames").suffix == ""  # a PNG folder stays suffix-less
    target = tmp_path / "clip.mp4"
    tmp = temp_name(target)
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".clip" + PARTIAL_TAG)
    assert tmp.suffix == ".mp4"
    assert temp_name(target) != tmp  # unique per call


def test_file_success_moves_into_place(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        assert tmp != target
        tmp.write_bytes(b"hello")
        assert not target.exists()  # nothing under the real name until the end
    assert target.read_bytes() == b"hello"
    assert listing(tmp_path) == ["out.bin"]


def test_file_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer crashed")
    assert listing(tmp_path) == []


def test_failure_before_anything_written_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_output(tmp_path / "x.npy"):
            raise ValueError("no frames")
    assert listing(tmp_path) == []


def test_existing_file_kept_without_force(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputExists, match="exists") as info:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
    assert info.value.option == "force"  # the argument that would allow it (the CLI names its flag)
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["out.bin"]


def test_existing_file_replaced_with_force(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert listing(tmp_path) == ["out.bin"]


def test_failure_with_force_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target, force=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["out.bin"]


def test_target_appearing_while_writing_is_not_overwritten(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OutputExists, match="appeared"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"theirs")  # another process won the race
    assert target.read_bytes() == b"theirs"
    assert listing(tmp_path) == ["out.bin"]


def test_folder_output(tmp_path):
    target = tmp_path / "frames"
    with atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "000000.png").write_bytes(b"a")
        (tmp / "000001.png").write_bytes(b"b")
        assert not target.exists()
    assert listing(target) == ["000000.png", "000001.png"]
    assert listing(tmp_path) == ["frames"]


def test_folder_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "frames") as tmp:
            tmp.mkdir()
            (tmp / "000000.png").write_bytes(b"a")
            raise RuntimeError
    assert listing(tmp_path) == []


def test_existing_folder_kept_without_force(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "000000.png").write_bytes(b"old")
    with pytest.raises(OutputExists):
        with atomic_output(target) as tmp:
            tmp.mkdir()
    assert (target / "000000.png").read_bytes() == b"old"
    assert listing(tmp_path) == ["frames"]


def test_existing_folder_replaced_whole_with_force(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    for i in range(3):
        (target / f"{i:06d}.png").write_bytes(b"old")
    with atomic_output(target, force=True) as tmp:
        tmp.mkdir()
        (tmp / "000000.png").write_bytes(b"new")
    assert listing(target) == ["000000.png"]  # no stale frames from the longer old output
    assert (target / "000000.png").read_bytes() == b"new"
    assert listing(tmp_path) == ["frames"]


def test_missing_parent_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "out.bin"):
            pass
    with pytest.raises(UsageError):
        check_target(tmp_path / "nope" / "out.bin", force=True)


def test_check_target(tmp_path):
    target = tmp_path / "a.msvq"
    check_target(target, force=False)  # absent: fine
    target.write_bytes(b"")
    with pytest.raises(OutputExists):
        check_target(target, force=False)
    check_target(target, force=True)


def test_string_paths_accepted(tmp_path):
    with atomic_output(str(tmp_path / "s.txt")) as tmp:
        tmp.write_text("ok")
    assert (tmp_path / "s.txt").read_text() == "ok"
    assert not any(PARTIAL_TAG in name for name in os.listdir(tmp_path))

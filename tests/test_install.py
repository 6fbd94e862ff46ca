"""Installed like any Python tool: a built wheel and a plain (not editable) ``pip install .`` carry the shipped
weights, and the ``msvq`` command they install encodes and decodes a sample with them.

Offline: a copy of the source is built and installed with ``--no-deps --no-build-isolation`` from no index,
into virtual environments that see the packages these tests run with (torch, numpy, OpenCV: the system's, and
this interpreter's own where it is itself a virtual environment) but have their own msvq. Each test builds and
installs (tens of seconds), hence ``slow``; CI runs it (no ``-m`` filter).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from msvq_codec.model.weights import SHIPPED_NAME, read_metadata, shipped_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "msvq_codec", "weights")
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def run(cmd: list, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MSVQ_WEIGHTS", "PYTHONPATH")}
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env={**clean, **OFFLINE, **env}, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The files a build reads, copied (pip builds in the source tree; the checkout stays untouched)."""
    if not (shipped_dir() / SHIPPED_NAME).is_file():
        pytest.skip(f"no shipped weights at {shipped_dir() / SHIPPED_NAME}")
    dest = tmp_path_factory.mktemp("source")
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.avi"
    run([sys.executable, ROOT / "examples" / "make_sample.py", path, "--seconds", "2.5"], ROOT)
    return path


def install(requirement: Path, where: Path) -> Path:
    """A fresh virtual environment with ``requirement`` installed in it (not editable); its bin folder. It has
    no pip of its own: this environment's pip and setuptools build and install (a venv's bundled setuptools
    may be too old to build a wheel)."""
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", where], where.parent)
    bin_dir = where / "bin"
    see_our_packages(bin_dir / "python")
    run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed",
         requirement], where.parent)  # fmt: skip
    return bin_dir


def our_site_dirs() -> list[str]:
    """The folders this interpreter imports installed packages from: its site-packages, and where it is a
    virtual environment (which ``--system-site-packages`` does not reach), the environment's own."""
    dirs = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    dirs |= {p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")}
    return sorted(d for d in dirs if Path(d).is_dir())


def see_our_packages(python: Path) -> None:
    """Make the environment of ``python`` also import from ``our_site_dirs`` (after its own site-packages, so
    its own msvq comes first): a ``.pth`` file of plain paths, whose own ``.pth`` files (this checkout's
    editable msvq among them) are not read."""
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], python.parent).stdout
    Path(site.strip(), "msvq-test-parent.pth").write_text("".join(d + "\n" for d in our_site_dirs()))


def round_trip(bin_dir: Path, sample: Path, work: Path) -> None:
    """The installed msvq uses its own copy of the shipped weights, and encodes and decodes the sample."""
    version = run([bin_dir / "msvq", "--version"], work).stdout.splitlines()[1]
    site = run([bin_dir / "python", "-c", "import msvq_codec, pathlib; print(pathlib.Path(msvq_codec.__file__).parent)"],
               work).stdout.strip()  # fmt: skip
    assert site.startswith(str(bin_dir.parent)), site  # the environment's own msvq, not this checkout
    shipped_id = read_metadata(shipped_dir() / SHIPPED_NAME)["msvq_model_id"]
    copy = Path(site) / "weights" / SHIPPED_NAME
    assert f"weights: {copy} (the copy shipped with msvq), model ID {shipped_id}" == version, version

    encoded = json.loads(run([bin_dir / "msvq", "encode", sample, work / "s.msvq", "--device", "cpu", "--json"],
                             work).stdout)  # fmt: skip
    n = encoded["frames"]
    assert encoded["status"] == "ok" and 39 <= n <= 41 and encoded["clips"] == 2  # 2.5 s at 16 fps: 2 clips
    info = json.loads(run([bin_dir / "msvq", "info", work / "s.msvq", "--json"], work).stdout)
    assert info["model_id"] == shipped_id and (info["source_width"], info["source_height"]) == (320, 240)
    run([bin_dir / "msvq", "decode", work / "s.msvq", work / "r.npy", "--device", "cpu"], work)
    frames = np.load(work / "r.npy")
    assert frames.shape == (n, 64, 64, 3) and frames.dtype == np.uint8 and frames.std() > 0


def test_wheel_carries_the_weights_and_its_msvq_round_trips(source, sample, tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
         source], tmp_path)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("msvq_codec-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = {f"msvq_codec/weights/{p.name}" for p in (ROOT / "weights").iterdir() if p.is_file()}
        assert shipped <= names and f"msvq_codec/weights/{SHIPPED_NAME}" in names  # every file in weights/
        assert zf.read(f"msvq_codec/weights/{SHIPPED_NAME}") == (ROOT / "weights" / SHIPPED_NAME).read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    round_trip(install(wheel, tmp_path / "venv"), sample, work)


def test_plain_pip_install_of_the_source_round_trips(source, sample, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    round_trip(install(source, tmp_path / "venv"), sample, work)

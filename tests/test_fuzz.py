"""Fuzzing the .msvq reader: the coverage-guided target in fuzz/ for a bounded number of inputs, and a
hypothesis property over crafted files with absurd declared sizes and counts, read in a worker process under
a 2 GiB address-space cap and a time bound.

Every input must end in ``FormatError`` or in a container that passes the reader's own checks; nothing else
(no MemoryError, OverflowError, ZeroDivisionError, struct.error ...) may escape. Files of format versions 1
to 3 are crafted; the worker also range-decodes the streams of context-coded files (codec 3) whose codebook
sizes the fuzz target has tables for, which must give ``FormatError`` or a grid of exactly the right shape
(the prior's streams, codec 4, are decoded from damaged bytes in tests/test_prior.py).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import select
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FUZZER = ROOT / "fuzz" / "fuzz_container.py"
FUZZ_RUNS = 50_000
MEMORY_CAP = 2 << 30  # RLIMIT_AS of the worker that reads the crafted files
PER_INPUT_SECONDS = 60.0  # generous: a 2**28-index file takes a few seconds on a loaded 2-core machine

HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None


# ------------------------------------------------------------------------------------------ the fuzz target


def _run_fuzzer(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FUZZER), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris is not installed (pip install -e '.[fuzz]')")
def test_atheris_fuzzer_bounded_run_finds_nothing(tmp_path):
    r = _run_fuzzer(f"-atheris_runs={FUZZ_RUNS}", "-seed=1", "-rss_limit_mb=2048", "-timeout=20",
                    f"-artifact_prefix={tmp_path}/", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    assert f"Done {FUZZ_RUNS}" in r.stderr
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))


def test_fallback_fuzzer_bounded_run_finds_nothing(tmp_path):
    """The same target without atheris (what CI runs when the fuzz extra is not installed)."""
    r = _run_fuzzer("--no-atheris", f"-atheris_runs={FUZZ_RUNS}", "-seed=1", f"-artifact_prefix={tmp_path}/",
                    cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    assert f"Done {FUZZ_RUNS} runs" in r.stderr
    assert not list(tmp_path.glob("crash-*"))


_PLANTED = """
import runpy, sys
sys.argv = [{fuzzer!r}] + sys.argv[1:]
import msvq_codec.container.format as fmt
real = fmt.read_container
def planted(fp):
    c = real(fp)
    if c.header.codec_level == 9:  # a bug the seeds hit at once: any non-FormatError must be reported
        raise ZeroDivisionError("planted")
    return c
fmt.read_container = planted
runpy.run_path({fuzzer!r}, run_name="__main__")
"""


@pytest.mark.parametrize("engine", ["atheris", "fallback"])
def test_fuzzer_reports_an_exception_that_is_not_a_format_error(tmp_path, engine):
    """The harness is not vacuous: a planted bug in the reader makes it fail and write the input."""
    if engine == "atheris" and not HAVE_ATHERIS:
        pytest.skip("atheris is not installed")
    script = tmp_path / "planted.py"
    script.write_text(_PLANTED.format(fuzzer=str(FUZZER)))
    extra = ["--no-atheris"] if engine == "fallback" else []
    r = subprocess.run(
        [sys.executable, str(script), *extra, "-atheris_runs=2000", f"-artifact_prefix={tmp_path}/"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode != 0
    assert "ZeroDivisionError: planted" in r.stdout + r.stderr
    assert list(tmp_path.glob("crash-*"))


# ---------------------------------------------------------------------- a capped worker that reads files

_WORKER = r"""
import io, json, resource, struct, sys, time, traceback
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
sys.argv = ["fuzz_container.py", "--no-atheris"]
sys.path.insert(0, {fuzz_dir!r})
from fuzz_container import CODERS, DECODE_LIMIT  # the fuzz target's tables
from msvq_codec.container import from_bytes, read_container, read_header
from msvq_codec.errors import FormatError

def decode_context(data):
    c = from_bytes(data)
    if c.indices is not None or sum(c.header.n_indices(i) for i in range(len(c.header.levels))) > DECODE_LIMIT:
        return
    if c.header.codec != 3:  # prior streams need a prior: tests/test_prior.py decodes damaged ones
        return
    for lv, stream in zip(c.header.levels, c.streams):
        if lv.codebook_size in CODERS:
            shape = (c.header.n_clips, *lv.grid)
            grid = CODERS[lv.codebook_size].decode(stream, shape)
            assert grid.shape == shape and grid.dtype.name == "uint16" and int(grid.max()) < lv.codebook_size

class Pipe(io.RawIOBase):
    def __init__(self, data): self._b = io.BytesIO(data)
    def readable(self): return True
    def readinto(self, b): return self._b.readinto(b)

def attempt(fn):
    try:
        fn()
        return "ok"
    except FormatError:
        return "format"

stdin, stdout = sys.stdin.buffer, sys.stdout
while True:
    head = stdin.read(8)
    if len(head) < 8:
        break
    data = stdin.read(struct.unpack("<Q", head)[0])
    t = time.perf_counter()
    try:
        out = [attempt(lambda: from_bytes(data)), attempt(lambda: read_container(Pipe(data))),
               attempt(lambda: read_header(io.BytesIO(data)))]
        if out[0] != out[1]:
            out.append("seekable and pipe readers disagree")
        elif out[0] == "ok":
            out.append(attempt(lambda: decode_context(data)))
    except BaseException as e:
        out = ["crash", "".join(traceback.format_exception(e))]
    stdout.write(json.dumps({{"result": out, "seconds": time.perf_counter() - t}}) + "\n")
    stdout.flush()
"""


class CappedReader:
    """A long-lived worker process, RLIMIT_AS-capped, that reads one file per request."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER.format(cap=MEMORY_CAP, fuzz_dir=str(FUZZER.parent))], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    def read(self, data: bytes) -> tuple[list[str], float]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], PER_INPUT_SECONDS + 10)
        if not ready:
            self.close()
            raise AssertionError(f"reading a {len(data)}-byte file took over {PER_INPUT_SECONDS + 10} s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            raise AssertionError(f"the reader process died (exit {code}) on a {len(data)}-byte file")
        reply = json.loads(line)
        return reply["result"], reply["seconds"]

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def capped():
    reader = CappedReader()
    yield reader
    reader.close()


def assert_only_format_errors(capped: CappedReader, data: bytes) -> list[str]:
    result, seconds = capped.read(data)
    assert result[0] != "crash", result[1]
    assert len(result) == (4 if result[0] == "ok" else 3), result
    assert all(r in ("ok", "format") for r in result), result
    assert seconds < PER_INPUT_SECONDS, seconds
    return result


# ------------------------------------------------------------------------------------------ crafting files

MAGIC = b"\x89MSVQ\r\n\x1a"
FIELDS = struct.Struct("<16sdIIIdHHHIBBB")  # version 1
FIELDS_V2 = struct.Struct("<16s16sdIIIdHHHIBBBfB")
LEVEL = struct.Struct("<HHHI")


def header_bytes(*, version=1, model_id=bytes(16), source_fps=25.0, source_width=64, source_height=48,
                 frame_count=40, fps=16.0, clip_frames=32, clip_height=64, clip_width=64, n_clips=None,
                 codec=1, codec_level=3, n_levels=None, levels=((2, 4, 4, 32),), header_crc=True,
                 entropy_id=bytes(16), quality=0, rd_lambda=0.0, layout=None) -> bytes:
    """A header with any field values at all (n_clips defaults to the consistent one, CRC correct), laid out
    as format ``layout`` (default: ``version``; 1 for an unknown one)."""
    if n_clips is None:
        n_clips = -(-frame_count // clip_frames) if clip_frames else 1
    n_levels = len(levels) if n_levels is None else n_levels
    layout = layout or (2 if version in (2, 3) else 1)
    if layout == 2:
        fields = FIELDS_V2.pack(model_id, entropy_id, source_fps, source_width, source_height, frame_count, fps,
                                clip_frames, clip_height, clip_width, n_clips, codec, codec_level, quality,
                                rd_lambda, n_levels)  # fmt: skip
    else:
        fields = FIELDS.pack(model_id, source_fps, source_width, source_height, frame_count, fps, clip_frames,
                             clip_height, clip_width, n_clips, codec, codec_level, n_levels)  # fmt: skip
    body = MAGIC + struct.pack("<H", version) + fields
    body += b"".join(LEVEL.pack(*lv) for lv in levels)
    crc = zlib.crc32(body) if header_crc else zlib.crc32(body) ^ 1
    return body + struct.pack("<I", crc)


def file_bytes(header: bytes, streams: list[bytes], lengths: list[int] | None = None, file_crc=True,
               trailer=b"") -> bytes:
    """Streams after ``header``, with lengths in its version's format (u64 in version 1, u32 in 2; a length
    too large for a u32 is cut to its low 32 bits)."""
    lengths = [len(s) for s in streams] if lengths is None else lengths
    v2 = header[8:10] in (b"\x02\x00", b"\x03\x00")  # versions 2 and 3: u32 lengths
    pack = (lambda n: struct.pack("<I", n & 0xFFFFFFFF)) if v2 else (lambda n: struct.pack("<Q", n))
    body = header + b"".join(pack(n) + s for n, s in zip(lengths, streams))
    crc = zlib.crc32(body) if file_crc else zlib.crc32(body) ^ 1
    return body + struct.pack("<I", crc) + trailer


def zstd_rle(size: int, declared: int | None = None, byte: int = 0, blocks: int | None = None) -> bytes:
    """A zstd frame of RLE blocks: ``size`` bytes of ``byte`` in about ``size / 128 KiB * 4`` bytes of input.
    ``declared`` is the content size the frame header claims; ``blocks`` cuts the frame short."""
    declared = size if declared is None else declared
    out = bytearray(struct.pack("<I", 0xFD2FB528)) + bytes([0xE0]) + struct.pack("<Q", declared)
    left, n = size, 0
    while left and (blocks is None or n < blocks):
        take = min(left, 1 << 17)
        left -= take
        n += 1
        out += struct.pack("<I", (left == 0) | (1 << 1) | (take << 3))[:3] + bytes([byte])
    return bytes(out)


def packed(n_clips: int, levels) -> list[int]:
    return [(n_clips * t * h * w * max(1, (k - 1).bit_length()) + 7) // 8 for t, h, w, k in levels]


# The largest file the caps admit: 2**28 one-bit indices (one level, 2048 clips of 32x64x64), as 2 KB of
# zstd RLE blocks. It must be read (all indices zero) within the memory cap.
CAP_LEVELS = ((32, 64, 64, 2),)
CAP_HEADER = dict(frame_count=2048 * 32, levels=CAP_LEVELS)

NAMED_CASES = {
    "level count 0": header_bytes(n_levels=0, levels=()),
    "level count 5": header_bytes(n_levels=5, levels=((1, 1, 1, 2),) * 5),
    "level count 255, 4 records": header_bytes(n_levels=255, levels=((1, 1, 1, 2),) * 4),
    "n_clips 2**32-1 (frame_count 2**32-1, clip_frames 1)": header_bytes(
        frame_count=2**32 - 1, clip_frames=1, levels=((1, 64, 64, 1024),)),
    "n_clips 2**32-1 inconsistent": header_bytes(n_clips=2**32 - 1),
    "indices one over the cap": header_bytes(frame_count=2049 * 32, levels=CAP_LEVELS),
    "grid 65535 (beyond the clip)": header_bytes(levels=((65535, 65535, 65535, 1024),)),
    "grid 0": header_bytes(levels=((0, 4, 4, 32),)),
    "clip 65535^3, grid 65535^3": header_bytes(clip_frames=65535, clip_height=65535, clip_width=65535,
                                               levels=((65535, 65535, 65535, 65536),)),
    "K = 0": header_bytes(levels=((2, 4, 4, 0),)),
    "K = 1": header_bytes(levels=((2, 4, 4, 1),)),
    "K = 65537": header_bytes(levels=((2, 4, 4, 65537),)),
    "K = 2**32-1": header_bytes(levels=((2, 4, 4, 2**32 - 1),)),
    "frame_count 0": header_bytes(frame_count=0, n_clips=0),
    "clip_frames 0": header_bytes(clip_frames=0, n_clips=1),
    "fps NaN": header_bytes(fps=math.nan),
    "fps inf": header_bytes(fps=math.inf),
    "fps -0.0": header_bytes(fps=-0.0),
    "source_fps -1e308": header_bytes(source_fps=-1e308),
    "codec id 0": header_bytes(codec=0),
    "codec id 255": header_bytes(codec=255),
    "zstd level 0": header_bytes(codec=1, codec_level=0),
    "zstd level 255": header_bytes(codec=1, codec_level=255),
    "deflate level 10": header_bytes(codec=2, codec_level=10),
    "version 0": header_bytes(version=0),
    "version 65535": header_bytes(version=65535),
    "header CRC wrong": header_bytes(header_crc=False),
}
_H = header_bytes()
_N = packed(2, ((2, 4, 4, 32),))[0]  # 40 frames: 2 clips of a 2x4x4 grid, 5 bits each: 40 bytes
NAMED_CASES.update({
    "stream length 2**64-1": file_bytes(_H, [b""], lengths=[2**64 - 1]),
    "stream length 2**30+1 (one over the cap)": file_bytes(_H, [b""], lengths=[2**30 + 1]),
    "stream length 2**30 (the cap), file of 100 bytes": file_bytes(_H, [b""], lengths=[2**30]),
    "stream length = bytes left + 1": file_bytes(_H, [bytes(10)], lengths=[11]),
    "zstd frame declaring 2**62 bytes": file_bytes(_H, [zstd_rle(_N, declared=2**62)]),
    "zstd frame declaring 2**30 bytes, holding 40": file_bytes(_H, [zstd_rle(_N, declared=2**30)]),
    "zstd frame declaring the right size, cut short": file_bytes(_H, [zstd_rle(_N, blocks=0)]),
    "zstd frame without a content size": file_bytes(
        _H, [zstandard.ZstdCompressor(write_content_size=False).compress(bytes(_N))]),
    "zstd RLE bomb: 1 GiB of output declared in 32 KB": file_bytes(_H, [zstd_rle(2**30, declared=2**30)]),
    "deflate bomb: 100 MB of zeros in 100 KB": file_bytes(
        header_bytes(codec=2, codec_level=9), [zlib.compress(bytes(100_000_000), 9)]),
    "right stream, then 1 MB of trailing bytes": file_bytes(_H, [zstd_rle(_N)], trailer=bytes(1 << 20)),
    "right stream, file CRC wrong": file_bytes(_H, [zstd_rle(_N)], file_crc=False),
    "right stream, no file CRC": file_bytes(_H, [zstd_rle(_N)])[:-4],
    "indices all 31 but K = 20": file_bytes(header_bytes(levels=((2, 4, 4, 20),)), [zstd_rle(_N, byte=0xFF)]),
    "padding bits set (K = 8, 3 bits x 32 indices + 4 bits)": file_bytes(
        header_bytes(frame_count=32, levels=((1, 3, 3, 8), (1, 1, 1, 2))),
        [zstd_rle(4, byte=0), zstd_rle(1, byte=0xFF)]),
    "valid: 2 clips, all zero indices": file_bytes(_H, [zstd_rle(_N)]),
    "valid: the largest file the caps admit, 2**28 indices in 2 KB": file_bytes(
        header_bytes(**CAP_HEADER), [zstd_rle(packed(2048, CAP_LEVELS)[0])]),
})

# Version 2, and its context streams (the tables of the fuzz target cover K = 3, 32 and 1024).
_C = dict(version=2, codec=3, codec_level=0, entropy_id=bytes(range(1, 17)), quality=1, rd_lambda=0.5)
_HC = header_bytes(**_C)  # 2 clips of a 2x4x4 grid, K = 32: 64 indices
_W = struct.pack("<I", 0x12345678)
NAMED_CASES.update({
    "v2 zstd: valid, 2 clips, all zero indices": file_bytes(header_bytes(version=2), [zstd_rle(_N)]),
    "v2 zstd: entropy_id not zero": file_bytes(header_bytes(version=2, entropy_id=b"\x01" * 16), [zstd_rle(_N)]),
    "v2 zstd: quality 0 with rd_lambda 1": file_bytes(header_bytes(version=2, rd_lambda=1.0), [zstd_rle(_N)]),
    "v2: rd_lambda NaN": file_bytes(header_bytes(**{**_C, "rd_lambda": math.nan}), [_W]),
    "v2: rd_lambda inf": file_bytes(header_bytes(**{**_C, "rd_lambda": math.inf}), [_W]),
    "v2: rd_lambda -1": file_bytes(header_bytes(**{**_C, "rd_lambda": -1.0}), [_W]),
    "v2: stream length 2**32-1": file_bytes(header_bytes(version=2), [b""], lengths=[2**32 - 1]),
    "v2: version 1 layout under version 2": file_bytes(header_bytes(version=2, layout=1), [zstd_rle(_N)]),
    "v2: version 2 layout under version 1": file_bytes(header_bytes(version=1, layout=2), [zstd_rle(_N)]),
    "v1: codec 3 (context is version 2 only)": file_bytes(header_bytes(codec=3, codec_level=0), [_W]),
    "v2: codec 4 (prior is version 3 only)": file_bytes(header_bytes(**{**_C, "codec": 4}), [_W]),
    "v3 prior: random words (framing only)": file_bytes(header_bytes(**{**_C, "version": 3, "codec": 4}),
                                                        [bytes(range(1, 41))]),
    "v3 prior: entropy_id all zero": file_bytes(header_bytes(**{**_C, "version": 3, "codec": 4,
                                                                "entropy_id": bytes(16)}), [_W]),
    "context: entropy_id all zero": file_bytes(header_bytes(**{**_C, "entropy_id": bytes(16)}), [_W]),
    "context: codec level 1": file_bytes(header_bytes(**{**_C, "codec_level": 1}), [_W]),
    "context: empty stream (decodes to something or an error)": file_bytes(_HC, [b""]),
    "context: 3-byte stream": file_bytes(_HC, [b"\x01\x02\x03"]),
    "context: last word zero": file_bytes(_HC, [_W + bytes(4)]),
    "context: stream one word over 8n + 8": file_bytes(_HC, [_W * (8 * 64 // 4 + 3)]),
    "context: random words (decodes to garbage or an error)": file_bytes(_HC, [bytes(range(1, 41))]),
    "context: one word for 2**28 claimed indices": file_bytes(header_bytes(**_C, **CAP_HEADER), [_W]),
    "context: valid framing, 1024 clips of K = 1024": file_bytes(
        header_bytes(**{**_C, "frame_count": 1024 * 32, "levels": ((2, 4, 4, 1024),)}), [_W * 8]),
})
EXPECTED_OK = {"valid: 2 clips, all zero indices", "valid: the largest file the caps admit, 2**28 indices in 2 KB",
               "v2 zstd: valid, 2 clips, all zero indices", "context: random words (decodes to garbage or an error)",
               "context: one word for 2**28 claimed indices", "context: empty stream (decodes to something or an error)",
               "context: valid framing, 1024 clips of K = 1024", "v3 prior: random words (framing only)"}


@pytest.mark.parametrize("name", list(NAMED_CASES))
def test_absurd_declared_sizes_and_counts(capped, name):
    result = assert_only_format_errors(capped, NAMED_CASES[name])
    if name in EXPECTED_OK:
        assert result[:2] == ["ok", "ok"], result
    else:
        assert result[0] == "format", f"{name}: accepted"


def test_worker_really_is_capped(capped):
    """The cap is real: the worker cannot allocate 3 GiB (so the cases above ran under 2 GiB)."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
        "try:\n    bytearray(3 << 30)\nexcept MemoryError:\n    print('capped')\n"
    ).format(cap=MEMORY_CAP)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "capped"


# ------------------------------------------------------------------------------- property: absurd headers

U8 = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 9, 19, 22, 23, 255]), st.integers(0, 255))
U16 = st.one_of(st.sampled_from([0, 1, 2, 4, 32, 64, 65535]), st.integers(0, 2**16 - 1))
U32 = st.one_of(st.sampled_from([0, 1, 2, 3, 32, 1024, 65536, 65537, 2**28, 2**31, 2**32 - 1]),
                st.integers(0, 2**32 - 1))
U64 = st.one_of(st.sampled_from([0, 1, 2**30 - 1, 2**30, 2**30 + 1, 2**32, 2**63, 2**64 - 1]),
                st.integers(0, 2**64 - 1))
F64 = st.one_of(st.sampled_from([16.0, 25.0, 0.0, -0.0, 5e-324, 1e-300, 1e308, math.inf, -math.inf, math.nan]),
                st.floats())
F32 = st.one_of(st.sampled_from([0.0, -0.0, 1e-45, 0.5, 3.4e38, math.inf, -math.inf, math.nan]), st.floats(width=32))
SMALL = st.integers(1, 8)


ABSURDABLE = ("version", "source_fps", "source_width", "source_height", "frame_count", "fps", "clip", "n_clips",
              "codec", "codec_level", "n_levels", "grid", "codebook_size", "header_crc", "quality")


def _log_int(hi: int) -> st.SearchStrategy[int]:
    """1..hi, spread over the orders of magnitude (so that sizes near and past the caps are common)."""
    return st.integers(0, hi.bit_length()).flatmap(lambda e: st.integers(max(1, 1 << e >> 1), min(hi, 1 << e)))


@st.composite
def absurd_files(draw) -> bytes:
    """A header that is sane but for up to two absurd fields, with sizes (clips, grids, codebooks, frame
    counts) spread from tiny to far past the caps; then streams whose lengths and declared decompressed
    sizes may be absurd too. Sane fields let each input reach the checks behind the ones it passes."""
    bad = draw(st.sets(st.sampled_from(ABSURDABLE), max_size=2))
    clip = [draw(U16) for _ in range(3)] if "clip" in bad else [draw(_log_int(65535)) for _ in range(3)]
    n_levels = draw(U8) if "n_levels" in bad else draw(st.integers(1, 4))
    n_records = n_levels if n_levels <= 6 else draw(st.integers(0, 6))
    levels = []
    for _ in range(n_records):
        grid = [draw(U16) for _ in range(3)] if "grid" in bad else [draw(_log_int(max(1, c))) for c in clip]
        k = draw(U32) if "codebook_size" in bad else draw(st.sampled_from([2, 3, 32, 1024, 65536]) | st.integers(2, 65536))
        levels.append((*grid, k))
    frame_count = draw(U32) if "frame_count" in bad else draw(_log_int(2**32 - 1))
    n_clips = draw(U32) if "n_clips" in bad else -(-frame_count // clip[0]) if clip[0] else 1
    version = draw(st.sampled_from([0, 4, 65535])) if "version" in bad else draw(st.sampled_from([1, 2, 3]))
    codec = draw(U8) if "codec" in bad else draw(st.sampled_from({2: [1, 2, 3], 3: [1, 2, 3, 4]}.get(version, [1, 2])))
    context = codec in (3, 4)
    header = header_bytes(
        version=version, layout=draw(st.sampled_from([1, 2])) if "version" in bad else None,
        entropy_id=draw(st.binary(min_size=16, max_size=16)) if context else bytes(16),
        quality=draw(U8) if "quality" in bad else 0 if not context else draw(st.integers(0, 3)),
        rd_lambda=draw(F32) if "quality" in bad else 0.0,
        model_id=draw(st.binary(min_size=16, max_size=16)),
        source_fps=draw(F64) if "source_fps" in bad else 29.97,
        source_width=draw(U32), source_height=draw(U32),  # any value from 1 up is valid
        frame_count=frame_count, fps=draw(F64) if "fps" in bad else 16.0,
        clip_frames=clip[0], clip_height=clip[1], clip_width=clip[2], n_clips=n_clips, codec=codec,
        codec_level=draw(U8) if "codec_level" in bad else 0 if context else draw(st.sampled_from([1, 3, 9])),
        n_levels=n_levels, levels=levels, header_crc="header_crc" not in bad,
    )  # fmt: skip
    if draw(st.integers(0, 9)) == 0:
        return header[: draw(st.integers(0, len(header)))]
    expected = packed(n_clips, levels) if all(k >= 1 for *_, k in levels) else [0] * len(levels)
    streams, lengths = [], []
    for size in expected:
        if context:  # words, often non-zero at the end: the framing passes and the decoder gets to judge
            n_words = draw(st.one_of(st.integers(0, 64), st.sampled_from([min((size * 8 // 10 + 8) // 4 + 1, 4096)])))
            stream = draw(st.binary(min_size=4 * n_words, max_size=4 * n_words)) if n_words < 64 else bytes(4 * n_words)
            streams.append(stream + (_W if draw(st.booleans()) else b""))
            lengths.append(len(streams[-1]) if draw(st.integers(0, 4)) else draw(U64))
            continue
        kind = draw(st.sampled_from(["right", "right", "rle-declared", "deflate", "random", "empty"]))
        small = min(size, 1 << 22)  # really produce at most 4 MiB; the caps bound what may be declared
        if kind == "right":
            stream = zstd_rle(small, declared=min(size, 2**64 - 1)) if codec == 1 else zlib.compress(bytes(small), 1)
        elif kind == "rle-declared":
            stream = zstd_rle(small, declared=draw(U64), blocks=draw(st.integers(0, 40)))
        elif kind == "deflate":
            stream = zlib.compress(bytes(draw(st.integers(0, 1 << 20))), 1)
        elif kind == "random":
            stream = draw(st.binary(max_size=64))
        else:
            stream = b""
        streams.append(stream)
        lengths.append(len(stream) if draw(st.integers(0, 4)) else draw(U64))
    return file_bytes(header, streams, lengths, file_crc=draw(st.integers(0, 4)) > 0,
                      trailer=draw(st.sampled_from([b"", b"", b"", b"\x00"])))  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(absurd_files())
def test_absurd_headers_only_raise_format_error_within_bounds(capped, data):
    assert_only_format_errors(capped, data)

#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the .msvq container reader and the context decoder.

Every input must end in the reader's own ``FormatError`` or in a container that passes its own checks;
any other exception, a hang (``-timeout``) or a memory blow-up (``-rss_limit_mb``) is a crash. A container
of codec ``context`` whose codebook sizes have tables here (``CODERS``: entropy models fitted at start-up on
synthetic grids) also has its streams range-decoded: each must give ``FormatError`` or a grid of exactly the
header's shape with every index inside its codebook.

Run (``pip install -e '.[fuzz]'`` first)::

    python fuzz/fuzz_container.py -atheris_runs=50000                 # what CI does (tests/test_fuzz.py)
    python fuzz/fuzz_container.py -max_total_time=3600 -rss_limit_mb=2048 -timeout=20 fuzz/corpus

With no corpus folder on the command line, a temporary one is seeded with valid containers (1 and 2 levels,
zstd, DEFLATE and context, format versions 2 and 1); with one, the seeds are added to it and libFuzzer keeps what it finds there, so a long run
can be resumed. A crash leaves ``crash-<sha1>`` in the working folder (``-artifact_prefix=DIR/`` to move
it); ``python fuzz/fuzz_container.py crash-<sha1>`` replays it.

How an input is used: its first byte chooses the mode and the rest is the file. Mode bit 0: recompute the
header CRC, bit 1: recompute the file CRC (so that mutations get past the checksums to the field checks
behind them), bit 2: read through a stream that cannot seek (no file size known up front), bit 3: read only
the header (``read_header``). Seeds use every mode.

Without atheris installed (or with ``--no-atheris``) the same command runs a plain random mutation fuzzer
over the same target and seeds (no coverage feedback): it understands ``-atheris_runs=N``/``-runs=N``,
``-max_total_time=S``, ``-seed=N``, ``-timeout=S``, ``-rss_limit_mb=M`` (as an address-space cap) and
``-artifact_prefix=DIR/``, and exits 1 on the first crash after writing it to ``crash-<sha1>``.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np  # before the instrumented imports below, so that only msvq_codec is instrumented
import zstandard  # noqa: F401

try:
    import atheris
except ImportError:  # the fallback fuzzer below needs nothing more
    atheris = None

if atheris is not None and "--no-atheris" not in sys.argv:
    with atheris.instrument_imports(include=["msvq_codec"]):  # coverage of the reader's own code
        import msvq_codec.container  # noqa: F401
        import msvq_codec.entropy  # noqa: F401
        from msvq_codec.errors import FormatError
else:
    from msvq_codec.errors import FormatError

from msvq_codec.container import (  # noqa: E402
    MAX_INDICES,
    Header,
    LevelInfo,
    StreamCodec,
    from_bytes,
    read_container,
    read_header,
    to_bytes,
)
from msvq_codec.entropy import LevelCoder  # noqa: E402
from msvq_codec.entropy.fit import fit_level  # noqa: E402

FIX_HEADER_CRC, FIX_FILE_CRC, UNSEEKABLE, HEADER_ONLY = 1, 2, 4, 8
DECODE_LIMIT = 1 << 15  # context files with more indices than this are only checked, not decoded
CODER_SIZES = (3, 32, 1024)


def _walk(rng: np.random.Generator, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Grids [n, t, h, w] whose codes mostly repeat the frame before (as a trained model's do)."""
    n, t, h, w = shape
    frames = np.empty((n * t, h, w), np.int64)
    frames[0] = rng.integers(0, k, (h, w))
    for f in range(1, n * t):
        change = rng.random((h, w)) < 0.3
        frames[f] = np.where(change, rng.integers(0, k, (h, w)), frames[f - 1])
    return frames.reshape(shape)


def _coders() -> dict[int, LevelCoder]:
    rng = np.random.default_rng(0)
    out = {}
    for k in CODER_SIZES:
        tables, _ = fit_level([_walk(rng, k, (2, 2, 4, 4)) for _ in range(6)], k, min_count=1)
        out[k] = LevelCoder(tables)
    return out


CODERS = _coders()


class _Unseekable(io.RawIOBase):
    """A byte stream that cannot seek or tell: the reader learns the size only by reading to the end."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


def fix_crcs(data: bytes, header: bool = True, whole: bool = True) -> bytes:
    """``data`` with the header CRC and/or the file CRC recomputed where the layout says they are."""
    data = bytearray(data)
    version = data[8] if len(data) > 8 else 2
    count_at = 66 if version == 1 else 87  # the level count; the level records follow it
    if header and len(data) > count_at:
        end = count_at + 1 + 10 * data[count_at]
        if len(data) >= end + 4:
            data[end : end + 4] = struct.pack("<I", zlib.crc32(data[:end]))
    if whole and len(data) >= 4:
        data[-4:] = struct.pack("<I", zlib.crc32(data[:-4]))
    return bytes(data)


def check(data: bytes) -> None:
    """The target: the reader either returns a self-consistent container or raises FormatError."""
    if not data:
        return
    mode, body = data[0], data[1:]
    if mode & (FIX_HEADER_CRC | FIX_FILE_CRC):
        body = fix_crcs(body, bool(mode & FIX_HEADER_CRC), bool(mode & FIX_FILE_CRC))
    fp = _Unseekable(body) if mode & UNSEEKABLE else io.BytesIO(body)
    try:
        if mode & HEADER_ONLY:
            header = read_header(fp)
            assert isinstance(header, Header)
            return
        container = read_container(fp) if mode & UNSEEKABLE else from_bytes(body)
    except FormatError:
        return
    header, indices, streams = container.header, container.indices, container.streams
    assert len(streams) == len(header.levels)
    if header.codec in (StreamCodec.CONTEXT, StreamCodec.PRIOR):
        assert indices is None
        if header.codec == StreamCodec.CONTEXT:  # the prior's streams: tests/test_prior.py decodes damaged ones
            check_context(header, streams)
        again = from_bytes(to_bytes(header, streams=streams))
        assert again.header == header and again.streams == streams
        return
    assert len(indices) == len(header.levels)
    for i, (lv, arr) in enumerate(zip(header.levels, indices)):
        assert arr.dtype == np.uint16 and arr.shape == (header.n_clips, *lv.grid), (arr.dtype, arr.shape)
        assert arr.size == 0 or int(arr.max()) < lv.codebook_size
    assert sum(a.size for a in indices) <= MAX_INDICES
    # What was read can be written, and what is written reads back the same.
    again = from_bytes(to_bytes(header, indices))
    assert again.header == header and all(np.array_equal(a, b) for a, b in zip(again.indices, indices))


def check_context(header: Header, streams: tuple[bytes, ...]) -> None:
    """Range-decode the streams whose codebook size has tables: FormatError, or grids of the right shape."""
    if sum(header.n_indices(i) for i in range(len(header.levels))) > DECODE_LIMIT:
        return
    for i, (lv, stream) in enumerate(zip(header.levels, streams)):
        coder = CODERS.get(lv.codebook_size)
        if coder is None:
            continue
        shape = (header.n_clips, *lv.grid)
        try:
            grid = coder.decode(stream, shape)
        except FormatError:
            continue
        assert grid.dtype == np.uint16 and grid.shape == shape, (grid.dtype, grid.shape)
        assert int(grid.max()) < lv.codebook_size


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris looks for
    check(data)


# ---------------------------------------------------------------------------------------------- seeds


def seeds() -> list[bytes]:
    """Valid containers (1 and 2 levels, zstd and DEFLATE, several sizes), each under several modes."""
    rng = np.random.default_rng(0)
    files = []
    shapes = [
        ((LevelInfo((1, 1, 3), 3),), 1, 1),
        ((LevelInfo((2, 2, 2), 512),), 20, 32),
        ((LevelInfo((1, 2, 2), 32), LevelInfo((2, 4, 4), 32)), 40, 32),
        ((LevelInfo((2, 2, 2), 512), LevelInfo((4, 4, 4), 1024)), 20, 32),
        ((LevelInfo((1, 1, 1), 65536), LevelInfo((1, 2, 1), 2)), 3, 2),
    ]
    for codec, level in ((StreamCodec.ZSTD, 3), (StreamCodec.DEFLATE, 9), (StreamCodec.ZSTD, 19), (StreamCodec.DEFLATE, 0)):
        for levels, frames, clip_frames in shapes:
            n_clips = -(-frames // clip_frames)
            header = Header(
                model_id=bytes(range(16)), source_fps=29.97, source_width=320, source_height=240,
                frame_count=frames, fps=16.0, clip_frames=clip_frames, clip_height=64, clip_width=64,
                n_clips=n_clips, levels=levels, codec=codec, codec_level=level,
            )  # fmt: skip
            # Low-entropy indices (as a trained model makes) so that the streams really compress.
            indices = [
                np.minimum(rng.geometric(0.3, size=(n_clips, *lv.grid)) - 1, lv.codebook_size - 1) for lv in levels
            ]
            files.append(to_bytes(header, indices))
    # Context-coded files: real streams of the coders above (codebook sizes that have tables).
    for levels, frames, clip_frames in [((LevelInfo((1, 2, 2), 32), LevelInfo((2, 4, 4), 32)), 40, 32),
                                        ((LevelInfo((2, 4, 4), 1024),), 20, 32),
                                        ((LevelInfo((1, 1, 3), 3), LevelInfo((2, 2, 2), 1024)), 70, 32)]:  # fmt: skip
        n_clips = -(-frames // clip_frames)
        header = Header(
            model_id=bytes(range(16)), source_fps=25.0, source_width=64, source_height=64, frame_count=frames,
            fps=16.0, clip_frames=clip_frames, clip_height=64, clip_width=64, n_clips=n_clips, levels=levels,
            codec=StreamCodec.CONTEXT, codec_level=0, entropy_id=bytes(range(1, 17)), quality=1, rd_lambda=0.5,
        )  # fmt: skip
        grids = [_walk(rng, lv.codebook_size, (n_clips, *lv.grid)) for lv in levels]
        files.append(to_bytes(header, streams=[CODERS[lv.codebook_size].encode(g) for lv, g in zip(levels, grids)]))
    # A version 1 file (the layout before version 2), which the reader still reads.
    files.append(bytes.fromhex(
        "894d5356510d0a1a0100000102030405060708090a0b0c0d0e0fb81e85eb51f83d4040010000f0000000140000000000"
        "00000000304020004000400001000000020902020002000200000200000400040004000004000028"
        "8e318a110000000000000078da6360e2f8c15fc0309319000961021e380000000000000078da6398d0c8e33de162bbea7a"
        "06388b71ca441fef8957a7a722b198662cecf19e7473f9522416f39c8d67bc27dfddfe14890500def72919ec792f41"
    ))
    out = []
    for data in files:
        for mode in (0, FIX_HEADER_CRC | FIX_FILE_CRC, UNSEEKABLE, HEADER_ONLY):
            out.append(bytes([mode]) + data)
    return out


def write_seeds(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for data in seeds():
        (folder / f"seed-{hashlib.sha1(data).hexdigest()}").write_bytes(data)


# ------------------------------------------------------------------------------------- fallback fuzzer

_INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 255, 256, 1023, 1024, 65535, 65536, 2**31 - 1, 2**31,
                2**32 - 1, 2**28, 2**30, 2**30 + 1, 2**63, 2**64 - 1]


def mutate(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    """One to eight random edits of ``data``: bit flips, bytes, ints of interesting values, insertions,
    deletions, truncation, splices with another input."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(8)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            pos = min(pos, len(buf) - 1)
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:  # set a byte
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif op == 2:  # write an interesting integer, as u8/u16/u32/u64 or f64
            fmt = rnd.choice("BHIQd")
            if fmt == "d":
                value = rnd.choice([0.0, -1.0, float("inf"), float("nan"), 1e-300, 1e300, 5e-324])
            else:
                value = rnd.choice(_INTERESTING) % (1 << (8 * struct.calcsize(fmt)))
            raw = struct.pack("<" + fmt, value)
            buf[pos : pos + len(raw)] = raw
        elif op == 3:  # insert random bytes
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif op == 4 and buf:  # delete a run
            del buf[pos : pos + rnd.randint(1, 16)]
        elif op == 5:  # truncate
            del buf[pos:]
        elif op == 6 and pool:  # splice with another input
            other = rnd.choice(pool)
            cut = rnd.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 7 and buf:  # change the mode byte
            buf[0] = rnd.randrange(16)
    return bytes(buf)


def _options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    flags, paths = {}, []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            key, value = arg.lstrip("-").split("=", 1)
            flags[key] = value
        elif not arg.startswith("-"):
            paths.append(arg)
    return flags, paths


def _save_crash(data: bytes, prefix: str) -> str:
    name = f"{prefix}crash-{hashlib.sha1(data).hexdigest()}"
    Path(name).write_bytes(data)
    return name


def fallback(argv: list[str]) -> int:
    flags, paths = _options(argv)
    runs = int(flags.get("atheris_runs") or flags.get("runs") or -1)
    max_time = float(flags.get("max_total_time", 0)) or None
    timeout = float(flags.get("timeout", 20))
    prefix = flags.get("artifact_prefix", "")
    rnd = random.Random(int(flags.get("seed", 0)) or None)
    if flags.get("rss_limit_mb"):  # approximated by an address-space cap: exceeding it is a MemoryError crash
        import resource

        cap = int(flags["rss_limit_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    corpus = seeds()
    for folder in paths:
        p = Path(folder)
        if p.is_file():  # replay one input
            check(p.read_bytes())
            print(f"{p}: ok")
            return 0
        if p.is_dir():
            corpus += [f.read_bytes() for f in sorted(p.iterdir()) if f.is_file()]
    started = time.monotonic()
    done = 0
    while runs < 0 or done < runs:
        if max_time and time.monotonic() - started > max_time:
            break
        data = corpus[done] if done < len(corpus) else mutate(rnd.choice(corpus), rnd, corpus)
        t0 = time.monotonic()
        try:
            check(data)
        except Exception:  # noqa: BLE001 - anything but FormatError is the bug we look for
            traceback.print_exc()
            print(f"==CRASH== input written to {_save_crash(data, prefix)}", file=sys.stderr)
            return 1
        if time.monotonic() - t0 > timeout:
            print(f"==TIMEOUT== input written to {_save_crash(data, prefix)}", file=sys.stderr)
            return 1
        done += 1
    print(f"Done {done} runs in {time.monotonic() - started:.1f} s (fallback mutation fuzzer)", file=sys.stderr)
    return 0


def main() -> None:
    argv = [a for a in sys.argv if a != "--no-atheris"]
    if atheris is None or "--no-atheris" in sys.argv:
        sys.exit(fallback(argv[1:]))
    flags, paths = _options(argv[1:])
    replay = paths and all(Path(p).is_file() for p in paths)
    if not replay:
        dirs = [p for p in paths if not Path(p).is_file()]
        if dirs:
            write_seeds(Path(dirs[0]))
        else:
            seed_dir = Path(tempfile.mkdtemp(prefix="msvq-fuzz-corpus-"))
            atexit.register(shutil.rmtree, seed_dir, True)  # libFuzzer's exit still runs Python's atexit
            write_seeds(seed_dir)
            argv.append(str(seed_dir))
        if "max_len" not in flags:
            argv.append("-max_len=4096")
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""The ``.msvq`` file format: one compressed video as the codebook indices of its clips.

A ``.msvq`` file holds, for every level of the model's latent hierarchy, the codebook index of every
latent position of every clip, plus what the decoder needs to turn the clips back into the input's
frames. It does not hold the codebooks or the decoder: ``model_id`` names the weights that do; nor the
probability model its streams were range-coded with: ``entropy_id`` names the context model's tables (codec
``context``) or the learned prior (codec ``prior``).

Format versions 3 and 2 (written)
---------------------------------
Version 3 is version 2 with one more stream codec, 4 = ``prior``. The writer writes the lowest version that
holds the file: version 3 for codec ``prior``, version 2 for the others (so readers of version 2 keep reading
them). The layout below is that of both; a version 2 file never has codec 4.
All integers are unsigned little-endian; ``f64`` / ``f32`` are IEEE 754 binary64 / binary32, little-endian.
Offsets are from the start of the file. ``L`` is the level count (offset 87).

======== ======= ====== ==================================================================================
Offset   Size    Type   Field
======== ======= ====== ==================================================================================
0        8       bytes  magic: ``b"\\x89MSVQ\\r\\n\\x1a"`` (the byte 0x89, ASCII ``MSVQ``, CR, LF, 0x1A)
8        2       u16    format version: 3 or 2
10       16      bytes  model_id: hash of the weights that define the codebooks and the decoder
26       16      bytes  entropy_id: with codecs 3 and 4, the ID of the context model's tables or of the
                        prior the streams were coded with (never all zero); with codecs 1 and 2, 16 zero
                        bytes
42       8       f64    source_fps: the input's frame rate, > 0 and finite
50       4       u32    source_width: the input's frame width in pixels, >= 1
54       4       u32    source_height: the input's frame height in pixels, >= 1
58       4       u32    frame_count: frames (at ``fps``) the decoder returns, >= 1
62       8       f64    fps: the clips' frame rate, > 0 and finite
70       2       u16    clip_frames: frames per clip, >= 1
72       2       u16    clip_height: pixels, >= 1
74       2       u16    clip_width: pixels, >= 1
76       4       u32    n_clips: must equal ``ceil(frame_count / clip_frames)``; the last clip is padded
80       1       u8     codec: stream codec id, 1 = zstd, 2 = DEFLATE, 3 = context, 4 = prior (version 3
                        only; see ``StreamCodec``)
81       1       u8     codec_level: zstd 1..22, DEFLATE 0..9, context 0, prior 0
82       1       u8     quality: the encoder's rate-control preset (``QUALITY_PRESETS``, fixed ids): 0 = max
                        (none: every index is its latent's nearest code), 1 = high, 2 = medium, 3 = low,
                        4 = lowest, 5 = target (a lambda found by a search for a target rate); other values
                        are kept and shown as numbers. Decoding never depends on it
83       4       f32    rd_lambda: the rate-distortion lambda the encoder traded bits for distortion with;
                        finite and >= 0, and 0.0 when quality is 0. Decoding never depends on it
87       1       u8     L: level count, 1..4
88       10 * L         L level records, coarsest level first, each:
                        +0 u16 t, +2 u16 h, +4 u16 w: the latent grid of one clip, 1 <= t <= clip_frames,
                        1 <= h <= clip_height, 1 <= w <= clip_width;
                        +6 u32 K: the codebook size, 2..65536
88+10L   4       u32    header CRC32 (zlib.crc32) of bytes ``[0, 88 + 10L)``
======== ======= ====== ==================================================================================

The header ends at ``H = 92 + 10L``. Then come L streams, one per level in the order of the records:

======== ======= ====== ==================================================================================
+0       4       u32    C: length of the stream, <= 1 GiB and <= what is left of the file
+4       C       bytes  the level's indices, coded with ``codec`` at ``codec_level``
======== ======= ====== ==================================================================================

and last a u32 CRC32 of every byte before it (header and streams). Nothing may follow it.

A level's ``n = n_clips * t * h * w`` indices are those of the array ``[n_clips, t, h, w]``. With codecs 1
and 2, its stream decompresses to exactly ``ceil(n * b / 8)`` bytes of packed indices, ``b = ceil(log2 K)``
bits each, in C order, least significant bit first (see ``streams``); padding bits are zero and every
index is ``< K``. A zstd stream is one frame that records its content size; a DEFLATE stream is one zlib
stream (RFC 1950) with nothing after it.

With codec 3 (``context``), the stream is the compressed words (u32, little-endian) of an rANS coder
(``constriction``'s ``AnsCoder``, 24-bit probabilities) that coded the level's indices latent frame by
latent frame, each predicted from the two frames before it, with the integer tables that ``entropy_id``
names; ``msvq_codec.entropy.coder`` specifies the symbol order and ``msvq_codec.entropy.tables`` the
tables. This module checks only its framing: a whole number of words (none at all is possible: a few
near-certain indices can leave the coder in its initial state), the last one non-zero, and no more than
``8 * n + 8`` bytes (two 24-bit symbols an index, and the coder's final state, fit well within that).
Decoding it needs the tables, which the weights carry: that is the codec's job (``msvq_codec.codec``).

With codec 4 (``prior``), the stream is the same kind of rANS words, coded with the learned prior that
``entropy_id`` names: every index gets a distribution over all K codes from an integer network
(``msvq_codec.entropy.prior``; ``msvq_codec.entropy.prior_coder`` specifies the symbol order, which goes
through each latent frame in a few parallel passes, and lets the bottom level read the top's codes). The
framing rules and the size cap are those of codec 3.

Format version 1 (still read)
-----------------------------
Version 1 is version 2 without ``entropy_id``, ``quality`` and ``rd_lambda`` (so ``codec`` at 64,
``codec_level`` at 65, ``L`` at 66, level records from 67, ``H = 71 + 10L``), with codecs 1 and 2 only and a
u64 stream length ``C``. Read, it gives a header with 16 zero bytes of ``entropy_id``, quality 0 and
rd_lambda 0.0.

Version policy
--------------
The version changes with any change to the layout or to the meaning of a field; there are no minor
versions or feature flags. A reader rejects every version it does not know. Codec ids are never reused.

Caps
----
So that no input can make a reader allocate without bound: at most 4 levels, at most ``MAX_INDICES``
(2**28) indices over all levels (so at most 512 MiB of packed indices), and every stream at most
``MAX_STREAM_BYTES`` (1 GiB) and no longer than the rest of the file. Reads are done in chunks, so
a length that overstates a non-seekable input fails at its end rather than allocating up front.

Any malformed input raises ``FormatError``; a header or index array that the writer cannot store raises
``UsageError``. Writing is deterministic: the same header and indices (or coded streams) give the same bytes.
"""

from __future__ import annotations

import io
import math
import numbers
import operator
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from msvq_codec.container.streams import (
    CODEC_LEVELS,
    RANGE_CODED,
    StreamCodec,
    compress,
    decompress,
    index_bits,
    pack_indices,
    packed_size,
    unpack_indices,
)
from msvq_codec.errors import FormatError, UsageError

MAGIC = b"\x89MSVQ\r\n\x1a"
FORMAT_VERSION = 3  # the newest version the writer writes (3 for codec prior, else 2)
READ_VERSIONS = (1, 2, 3)  # what the reader reads
MAX_LEVELS = 4
MAX_INDICES = 1 << 28
MAX_STREAM_BYTES = 1 << 30
NO_ENTROPY_ID = bytes(16)
# The ``quality`` field's preset ids (fixed: an id is never reused for another preset). What each preset's
# lambda is is the encoder's business (``msvq_codec.rdo``); the file records the lambda it used.
QUALITY_PRESETS = {0: "max", 1: "high", 2: "medium", 3: "low", 4: "lowest", 5: "target"}

_VERSION = struct.Struct("<H")
# Version 2, offsets 10..87: model_id, entropy_id, source_fps, source_width, source_height, frame_count, fps,
# clip_frames, clip_height, clip_width, n_clips, codec, codec_level, quality, rd_lambda, level count.
_FIELDS_V2 = struct.Struct("<16s16sdIIIdHHHIBBBfB")
# Version 1, offsets 10..66: the same without entropy_id, quality and rd_lambda.
_FIELDS_V1 = struct.Struct("<16sdIIIdHHHIBBB")
_LEVEL = struct.Struct("<HHHI")
_FIRST_VERSION = {StreamCodec.CONTEXT: 2, StreamCodec.PRIOR: 3}  # the first version that has each codec
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_LENGTH = {1: _U64, 2: _U32, 3: _U32}  # a stream's length field, by version
_READ_CHUNK = 1 << 20
_F32_MAX = 3.4028234663852886e38

# Integer header fields and their inclusive ranges (the widths of their fields in the file).
_INT_RANGES = {
    "source_width": (1, 2**32 - 1),
    "source_height": (1, 2**32 - 1),
    "frame_count": (1, 2**32 - 1),
    "clip_frames": (1, 2**16 - 1),
    "clip_height": (1, 2**16 - 1),
    "clip_width": (1, 2**16 - 1),
    "n_clips": (1, 2**32 - 1),
    "quality": (0, 255),
}


@dataclass(frozen=True)
class LevelInfo:
    """One level of the latent hierarchy, as the file records it."""

    grid: tuple[int, int, int]  # (t, h, w) latent grid of ONE clip at this level
    codebook_size: int  # K, 2..65536

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(self.grid))


@dataclass(frozen=True)
class Header:
    """Everything in a .msvq file but the indices. Checked when written and when read."""

    model_id: bytes  # exactly 16 bytes: hash of the weights that define codebooks + decoder
    source_fps: float  # the input's frame rate
    source_width: int  # input frame size, pixels
    source_height: int
    frame_count: int  # true number of frames at `fps` that the decoder must return (>= 1)
    fps: float  # the clips' frame rate
    clip_frames: int  # frames per clip
    clip_height: int
    clip_width: int
    n_clips: int  # ceil(frame_count / clip_frames)
    levels: tuple[LevelInfo, ...]  # 1..4 levels, coarsest first; in the order of the streams
    codec: StreamCodec
    codec_level: int  # zstd 1..22, deflate 0..9, context and prior 0
    entropy_id: bytes = NO_ENTROPY_ID  # context/prior: the model's ID (not all zero); zstd/deflate: 16 zero bytes
    quality: int = 0  # rate-control preset, 0 = none (nearest codes); informative, decoding ignores it
    rd_lambda: float = 0.0  # the lambda that preset used (float32 in the file); 0.0 with quality 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        if self.codec in StreamCodec._value2member_map_:  # a plain int id becomes the enum member
            object.__setattr__(self, "codec", StreamCodec(self.codec))
        lam = self.rd_lambda
        if isinstance(lam, numbers.Real) and not isinstance(lam, bool) and math.isfinite(lam) and abs(lam) <= _F32_MAX:
            # the file stores a float32: hold exactly the value a reader will get back
            object.__setattr__(self, "rd_lambda", struct.unpack("<f", struct.pack("<f", float(lam)))[0])

    def bits_per_index(self, level: int) -> int:
        """Bits each index of ``levels[level]`` takes packed (codecs zstd and DEFLATE): ceil(log2 K)."""
        return index_bits(self.levels[level].codebook_size)

    def n_indices(self, level: int) -> int:
        """Indices stored for ``levels[level]``: n_clips * t * h * w."""
        t, h, w = self.levels[level].grid
        return self.n_clips * t * h * w

    @property
    def paper_bpp(self) -> float:
        """Bits per pixel as the paper counts them: sum over levels of n_indices * log2 K, over the
        pixels of the (padded) clips, n_clips * clip_frames * clip_height * clip_width."""
        bits = sum(self.n_indices(i) * math.log2(lv.codebook_size) for i, lv in enumerate(self.levels))
        return bits / (self.n_clips * self.clip_frames * self.clip_height * self.clip_width)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: IDs as hex, codec as its lower-case name, plus derived sizes."""
        return {
            "model_id": self.model_id.hex(),
            "entropy_id": self.entropy_id.hex() if self.codec in RANGE_CODED else None,
            "source_fps": self.source_fps,
            "source_width": self.source_width,
            "source_height": self.source_height,
            "frame_count": self.frame_count,
            "fps": self.fps,
            "clip_frames": self.clip_frames,
            "clip_height": self.clip_height,
            "clip_width": self.clip_width,
            "n_clips": self.n_clips,
            "levels": [
                {
                    "grid": list(lv.grid),
                    "codebook_size": lv.codebook_size,
                    "bits_per_index": self.bits_per_index(i),
                    "n_indices": self.n_indices(i),
                }
                for i, lv in enumerate(self.levels)
            ],
            "codec": self.codec.name.lower(),
            "codec_level": self.codec_level,
            "quality": self.quality,
            "quality_preset": QUALITY_PRESETS.get(self.quality),
            "rd_lambda": self.rd_lambda,
            "paper_bpp": self.paper_bpp,
        }


class Container(NamedTuple):
    """A whole .msvq file: its header, one index array per level, and the streams as stored.

    ``indices`` is None for codecs ``context`` and ``prior``: their streams need the probability model,
    which the codec (``msvq_codec.codec``) holds; the container only checks their framing."""

    header: Header
    indices: tuple[np.ndarray, ...] | None  # per level [n_clips, t, h, w] uint16; None for range-coded streams
    streams: tuple[bytes, ...] = ()  # per level, the stream bytes as stored in the file
    version: int = FORMAT_VERSION  # the format version the file was written in


# ---------------------------------------------------------------------------------------------- checks


def max_context_stream(n_indices: int) -> int:
    """The most bytes a ``context`` or ``prior`` stream of ``n_indices`` indices may take (see the module
    docstring)."""
    return 8 * n_indices + 8


def _header_problem(h: Header) -> str | None:
    """What is wrong with ``h`` (the first thing found), or None. Shared by the writer and the reader."""
    if not isinstance(h.model_id, bytes) or len(h.model_id) != 16:
        return "model_id must be exactly 16 bytes"
    if not isinstance(h.entropy_id, bytes) or len(h.entropy_id) != 16:
        return "entropy_id must be exactly 16 bytes"
    for name in ("source_fps", "fps"):
        value = getattr(h, name)
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            return f"{name} must be a finite number > 0, not {value!r}"
    for name, (lo, hi) in _INT_RANGES.items():
        value = getattr(h, name)
        if not _is_int(value) or not lo <= value <= hi:
            return f"{name} must be an integer in {lo}..{hi}, not {value!r}"
    lam = h.rd_lambda
    if not isinstance(lam, numbers.Real) or isinstance(lam, bool) or not math.isfinite(lam) or lam < 0:
        return f"rd_lambda must be a finite number >= 0, not {lam!r}"
    if lam > _F32_MAX:
        return f"rd_lambda {lam!r} does not fit a float32"
    if h.quality == 0 and lam != 0:
        return f"rd_lambda must be 0 with quality 0 (no rate control), not {lam!r}"
    expected_clips = -(-h.frame_count // h.clip_frames)
    if h.n_clips != expected_clips:
        return (f"n_clips {h.n_clips} does not match frame_count {h.frame_count} / clip_frames "
                f"{h.clip_frames} (expected {expected_clips})")
    if not 1 <= len(h.levels) <= MAX_LEVELS:
        return f"level count {len(h.levels)} is out of range 1..{MAX_LEVELS}"
    clip = (h.clip_frames, h.clip_height, h.clip_width)
    for i, lv in enumerate(h.levels):
        if len(lv.grid) != 3 or not all(_is_int(d) and 1 <= d <= c for d, c in zip(lv.grid, clip)):
            return f"level {i} grid {lv.grid} must be three integers from 1 up to the clip size {clip}"
        if not _is_int(lv.codebook_size) or not 2 <= lv.codebook_size <= 65536:
            return f"level {i} codebook size {lv.codebook_size!r} is out of range 2..65536"
    total = sum(h.n_indices(i) for i in range(len(h.levels)))
    if total > MAX_INDICES:
        return f"{total} indices exceed the cap of {MAX_INDICES}"
    if h.codec not in CODEC_LEVELS:
        return f"unknown stream codec {h.codec!r}"
    lo, hi = CODEC_LEVELS[h.codec]
    if not _is_int(h.codec_level) or not lo <= h.codec_level <= hi:
        name = StreamCodec(h.codec).name.lower()
        return f"codec level {h.codec_level!r} is out of range {lo}..{hi} for {name}"
    if h.codec in RANGE_CODED and h.entropy_id == NO_ENTROPY_ID:
        return f"a {StreamCodec(h.codec).name.lower()}-coded file needs its model's ID (entropy_id is all zero)"
    if h.codec not in RANGE_CODED and h.entropy_id != NO_ENTROPY_ID:
        return f"entropy_id must be all zero with codec {StreamCodec(h.codec).name.lower()}"
    return None


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _check_indices(header: Header, indices: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(indices) != len(header.levels):
        raise UsageError(f"{len(indices)} index arrays given for {len(header.levels)} levels")
    arrays = []
    for i, (lv, arr) in enumerate(zip(header.levels, indices)):
        arr = np.asarray(arr)
        shape = (header.n_clips, *lv.grid)
        if arr.dtype.kind not in "iu":
            raise UsageError(f"level {i} indices must be integers, not {arr.dtype}")
        if arr.shape != shape:
            raise UsageError(f"level {i} indices have shape {arr.shape}, expected {shape}")
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= lv.codebook_size:
            bad = low if low < 0 else high
            raise UsageError(f"level {i} index {bad} is out of range of its codebook size {lv.codebook_size}")
        arrays.append(arr)
    return arrays


def _context_stream_problem(stream: bytes, n_indices: int) -> str | None:
    """What is wrong with the framing of a range-coded stream of ``n_indices`` indices, or None."""
    if len(stream) % 4:
        return f"{len(stream)} bytes is not a whole number of 32-bit words"
    if len(stream) > max_context_stream(n_indices):
        return f"{len(stream)} bytes is more than {n_indices} indices can take ({max_context_stream(n_indices)})"
    if stream and stream[-4:] == bytes(4):
        return "the last word is zero (a range coder never ends so)"
    return None


# ---------------------------------------------------------------------------------------------- writing


def version_for(codec: StreamCodec) -> int:
    """The format version a file of ``codec`` is written in: the lowest that holds it."""
    return 3 if codec == StreamCodec.PRIOR else 2


def _header_bytes(h: Header) -> bytes:
    body = MAGIC + _VERSION.pack(version_for(h.codec)) + _FIELDS_V2.pack(
        h.model_id, h.entropy_id, h.source_fps, h.source_width, h.source_height, h.frame_count, h.fps,
        h.clip_frames, h.clip_height, h.clip_width, h.n_clips, h.codec, h.codec_level, h.quality,
        h.rd_lambda, len(h.levels),
    )
    body += b"".join(_LEVEL.pack(*lv.grid, lv.codebook_size) for lv in h.levels)
    return body + _U32.pack(zlib.crc32(body))


def to_bytes(
    header: Header, indices: Sequence[np.ndarray] | None = None, *, streams: Sequence[bytes] | None = None
) -> bytes:
    """The complete .msvq file (format version ``version_for(header.codec)``) for ``header`` and, with codecs
    zstd and DEFLATE, one index array per level; with codecs context and prior, the coded ``streams``
    (``msvq_codec.entropy`` codes them)."""
    problem = _header_problem(header)
    if problem:
        raise UsageError(f"cannot write header: {problem}")
    if header.codec in RANGE_CODED:
        name = header.codec.name.lower()
        if streams is None or indices is not None:
            raise UsageError(f"a {name}-coded file is written from its coded streams, not from indices")
        if len(streams) != len(header.levels):
            raise UsageError(f"{len(streams)} streams given for {len(header.levels)} levels")
        coded = [bytes(s) for s in streams]
        for i, stream in enumerate(coded):
            problem = _context_stream_problem(stream, header.n_indices(i))
            if problem:
                raise UsageError(f"level {i} {name} stream: {problem}")
    else:
        if indices is None or streams is not None:
            raise UsageError(f"a {header.codec.name.lower()} file is written from its indices")
        coded = [compress(pack_indices(arr, lv.codebook_size), header.codec, header.codec_level)
                 for lv, arr in zip(header.levels, _check_indices(header, indices))]  # fmt: skip
    parts = [_header_bytes(header)]
    for stream in coded:
        if len(stream) > MAX_STREAM_BYTES:
            raise UsageError(f"a stream of {len(stream)} bytes exceeds the cap of {MAX_STREAM_BYTES}")
        parts += [_U32.pack(len(stream)), stream]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def write_container(
    fp: BinaryIO, header: Header, indices: Sequence[np.ndarray] | None = None, *, streams: Sequence[bytes] | None = None
) -> int:
    """Write the .msvq file to ``fp``; returns the number of bytes written."""
    data = to_bytes(header, indices, streams=streams)
    fp.write(data)
    return len(data)


# ---------------------------------------------------------------------------------------------- reading


def _read_up_to(fp: BinaryIO, n: int) -> bytes:
    """``n`` bytes, or fewer at the end of ``fp``; read in chunks, so that an overstated ``n`` allocates
    no more than is really there."""
    parts, got = [], 0
    while got < n:
        chunk = fp.read(min(n - got, _READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_exact(fp: BinaryIO, n: int, what: str) -> bytes:
    data = _read_up_to(fp, n)
    if len(data) < n:
        raise FormatError(f"truncated file: {what} needs {n} bytes, only {len(data)} left")
    return data


def _remaining_size(fp: BinaryIO) -> int | None:
    """Bytes from the current position to the end of ``fp``, or None when it cannot seek."""
    try:
        if not fp.seekable():
            return None
        pos = fp.tell()
        end = fp.seek(0, io.SEEK_END)
        fp.seek(pos)
    except (AttributeError, OSError, ValueError):
        return None
    return end - pos


def _read_header(fp: BinaryIO) -> tuple[Header, bytes, int]:
    """The validated header, its raw bytes (which the file CRC covers) and the file's format version."""
    magic = _read_up_to(fp, len(MAGIC))
    if magic != MAGIC[: len(magic)]:
        raise FormatError("not a .msvq file (bad magic number)")
    if len(magic) < len(MAGIC):
        raise FormatError(f"truncated file: magic number needs {len(MAGIC)} bytes, only {len(magic)} left")
    version_raw = _read_exact(fp, _VERSION.size, "format version")
    (version,) = _VERSION.unpack(version_raw)
    if version not in READ_VERSIONS:
        known = ", ".join(map(str, READ_VERSIONS[:-1])) + f" and {READ_VERSIONS[-1]}"
        raise FormatError(f"unsupported .msvq format version {version} (this reader knows {known})")
    layout = _FIELDS_V1 if version == 1 else _FIELDS_V2
    fields_raw = _read_exact(fp, layout.size, "header")
    if version != 1:
        (model_id, entropy_id, *fields, codec_id, codec_level, quality, rd_lambda,
         n_levels) = layout.unpack(fields_raw)  # fmt: skip
    else:
        model_id, *fields, codec_id, codec_level, n_levels = layout.unpack(fields_raw)
        entropy_id, quality, rd_lambda = NO_ENTROPY_ID, 0, 0.0
    if not 1 <= n_levels <= MAX_LEVELS:
        raise FormatError(f"invalid header: level count {n_levels} is out of range 1..{MAX_LEVELS}")
    levels_raw = _read_exact(fp, n_levels * _LEVEL.size, "level records")
    crc_raw = _read_exact(fp, _U32.size, "header checksum")
    raw = magic + version_raw + fields_raw + levels_raw
    if _U32.unpack(crc_raw)[0] != zlib.crc32(raw):
        raise FormatError("header checksum mismatch (corrupted header)")
    if codec_id not in StreamCodec._value2member_map_ or version < _FIRST_VERSION.get(codec_id, 1):
        raise FormatError(f"unknown stream codec id {codec_id}" + (f" in a version {version} file" if version < 3 else ""))
    levels = tuple(
        LevelInfo(grid=(t, h, w), codebook_size=k) for t, h, w, k in _LEVEL.iter_unpack(levels_raw)
    )
    header = Header(model_id, *fields, levels=levels, codec=StreamCodec(codec_id), codec_level=codec_level,
                    entropy_id=entropy_id, quality=quality, rd_lambda=rd_lambda)  # fmt: skip
    problem = _header_problem(header)
    if problem:
        raise FormatError(f"invalid header: {problem}")
    return header, raw + crc_raw, version


def read_header(fp: BinaryIO) -> Header:
    """Read and validate only the header (it has its own CRC); ``fp`` is left just after it."""
    return _read_header(fp)[0]


def read_container(fp: BinaryIO) -> Container:
    """Read a whole .msvq file from ``fp``, which must end right after it. Streams of codecs zstd and
    DEFLATE are decoded to indices; context and prior streams are checked and returned coded (``indices``
    None)."""
    remaining = _remaining_size(fp)
    header, raw, version = _read_header(fp)
    length_field = _LENGTH[version]
    crc = zlib.crc32(raw)
    consumed = len(raw)
    streams = []
    for i in range(len(header.levels)):
        length_raw = _read_exact(fp, length_field.size, f"level {i} stream length")
        (length,) = length_field.unpack(length_raw)
        consumed += length_field.size
        if length > MAX_STREAM_BYTES:
            raise FormatError(f"level {i} stream length {length} exceeds the cap of {MAX_STREAM_BYTES} bytes")
        if remaining is not None and length > remaining - consumed - _U32.size:
            left = max(remaining - consumed - _U32.size, 0)
            raise FormatError(f"level {i} stream length {length} exceeds the {left} bytes left in the file")
        if header.codec in RANGE_CODED and length > max_context_stream(header.n_indices(i)):
            raise FormatError(f"level {i} stream length {length} is more than its {header.n_indices(i)} indices "
                              f"can take ({max_context_stream(header.n_indices(i))} bytes)")  # fmt: skip
        stream = _read_exact(fp, length, f"level {i} stream")
        consumed += length
        crc = zlib.crc32(stream, zlib.crc32(length_raw, crc))
        streams.append(stream)
    (stored_crc,) = _U32.unpack(_read_exact(fp, _U32.size, "file checksum"))
    if fp.read(1):
        raise FormatError("trailing bytes after the end of the .msvq file")
    if stored_crc != crc:
        raise FormatError("file checksum mismatch (corrupted data)")

    if header.codec in RANGE_CODED:
        for i, stream in enumerate(streams):
            problem = _context_stream_problem(stream, header.n_indices(i))
            if problem:
                raise FormatError(f"level {i} stream: {problem}")
        return Container(header, None, tuple(streams), version)
    indices = []
    for i, (lv, stream) in enumerate(zip(header.levels, streams)):
        count = header.n_indices(i)
        what = f"level {i} stream"
        packed = decompress(stream, header.codec, packed_size(count, lv.codebook_size), what)
        try:
            flat = unpack_indices(packed, count, lv.codebook_size)
        except FormatError as err:
            raise FormatError(f"{what}: {err}") from None
        indices.append(flat.reshape(header.n_clips, *lv.grid))
    return Container(header, tuple(indices), tuple(streams), version)


def from_bytes(data: bytes) -> Container:
    """Read a whole .msvq file held in memory."""
    return read_container(io.BytesIO(data))

"""Tests of the .msvq container: round trips, the byte layout, and rejection of every malformed input."""

from __future__ import annotations

import ast
import io
import json
import math
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from msvq_codec.container import (
    FORMAT_VERSION,
    MAGIC,
    MAX_INDICES,
    MAX_STREAM_BYTES,
    NO_ENTROPY_ID,
    READ_VERSIONS,
    Header,
    LevelInfo,
    StreamCodec,
    default_level,
    from_bytes,
    index_bits,
    max_context_stream,
    pack_indices,
    packed_size,
    read_container,
    read_header,
    to_bytes,
    unpack_indices,
    write_container,
)
from msvq_codec.container.streams import decompress
from msvq_codec.errors import FormatError, UsageError

# ------------------------------------------------------------------------------------------- helpers


def make_header(**overrides) -> Header:
    fields = dict(
        model_id=bytes(range(16)), source_fps=29.97, source_width=320, source_height=240, frame_count=20,
        fps=16.0, clip_frames=32, clip_height=64, clip_width=64, n_clips=1,
        levels=(LevelInfo((2, 2, 2), 512), LevelInfo((4, 4, 4), 1024)),
        codec=StreamCodec.DEFLATE, codec_level=9,
    )
    fields.update(overrides)
    return Header(**fields)


def random_indices(header: Header, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, lv.codebook_size, size=(header.n_clips, *lv.grid)) for lv in header.levels]


# Where each version keeps what the tests patch: offsets of the fields, of the level records, and the stream
# length's format.
LAYOUT = {
    1: dict(model_id=10, source_fps=26, source_width=34, frame_count=42, fps=46, clip_frames=54, n_clips=60,
            codec=64, codec_level=65, n_levels=66, levels=67, length="<Q"),
    2: dict(model_id=10, entropy_id=26, source_fps=42, source_width=50, frame_count=58, fps=62, clip_frames=70,
            n_clips=76, codec=80, codec_level=81, quality=82, rd_lambda=83, n_levels=87, levels=88, length="<I"),
}
LAYOUT[3] = LAYOUT[2]  # version 3 only adds codec 4 (prior)


def header_size(n_levels: int, version: int = FORMAT_VERSION) -> int:
    return LAYOUT[version]["levels"] + 10 * n_levels + 4


def at(version: int, field: str) -> int:
    return LAYOUT[version][field]


def fix_crcs(data: bytes | bytearray) -> bytes:
    """Recompute the header CRC and the file CRC, so that a crafted field is what the reader trips on."""
    data = bytearray(data)
    version = struct.unpack_from("<H", data, 8)[0] if len(data) >= 10 else FORMAT_VERSION
    lay = LAYOUT.get(version, LAYOUT[FORMAT_VERSION])
    end = lay["levels"] + 10 * data[lay["n_levels"]] if len(data) > lay["n_levels"] else len(data)
    if len(data) >= end + 4:
        data[end : end + 4] = struct.pack("<I", zlib.crc32(data[:end]))
    if len(data) >= 4:
        data[-4:] = struct.pack("<I", zlib.crc32(data[:-4]))
    return bytes(data)


def patch(data: bytes, *edits: tuple) -> bytes:
    """``data`` with each ``(offset, fmt, *values)`` of ``edits`` packed in place and both CRCs fixed up."""
    data = bytearray(data)
    for offset, fmt, *values in edits:
        struct.pack_into(fmt, data, offset, *values)
    return fix_crcs(data)


def assemble(header: Header, streams: list[bytes]) -> bytes:
    """A version-2 file with a valid header and CRCs around arbitrary (possibly bad) streams."""
    if header.codec == StreamCodec.CONTEXT:
        head = to_bytes(header, streams=[b"\x01\x00\x00\x00"] * len(header.levels))
    else:
        head = to_bytes(header, random_indices(header))
    head = head[: header_size(len(header.levels))]
    body = head + b"".join(struct.pack("<I", len(s)) + s for s in streams)
    return body + struct.pack("<I", zlib.crc32(body))


def context_header(**overrides) -> Header:
    fields = dict(codec=StreamCodec.CONTEXT, codec_level=0, entropy_id=bytes(range(16, 32)), quality=3,
                  rd_lambda=0.25)  # fmt: skip
    fields.update(overrides)
    return make_header(**fields)


class NonSeekable(io.RawIOBase):
    """A pipe-like reader: no seek, no size."""

    def __init__(self, data: bytes):
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._buf.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


# The golden files: 1 clip, a 2x2x2 top grid (K=512) and a 4x4x4 bottom grid (K=1024), DEFLATE level 9, in
# format version 2 (what the writer writes) and version 1 (written by msvq 0.1 before version 2; still read).
GOLDEN_TOP = np.array([0, 1, 2, 511, 256, 3, 100, 7]).reshape(1, 2, 2, 2)
GOLDEN_BOTTOM = ((np.arange(64) % 8) * 100 + np.arange(64) // 16).reshape(1, 4, 4, 4)
GOLDEN = bytes.fromhex(
    "894d5356510d0a1a0200000102030405060708090a0b0c0d0e0f000000000000"
    "00000000000000000000b81e85eb51f83d4040010000f0000000140000000000"
    "00000000304020004000400001000000020900000000000202000200020000020"
    "00004000400040000040000a91da34b1100000078da6360e2f8c15fc030931900"
    "0961021e3800000078da6398d0c8e33de162bbea7a06388b71ca441fef8957a7a"
    "722b198662cecf19e7473f9522416f39c8d67bc27dfddfe14890500def72919ee"
    "f2d949"
)
GOLDEN_V1 = bytes.fromhex(
    "894d5356510d0a1a0100000102030405060708090a0b0c0d0e0fb81e85eb51f8"
    "3d4040010000f000000014000000000000000000304020004000400001000000"
    "0209020200020002000002000004000400040000040000288e318a1100000000"
    "00000078da6360e2f8c15fc0309319000961021e380000000000000078da6398"
    "d0c8e33de162bbea7a06388b71ca441fef8957a7a722b198662cecf19e7473f9"
    "522416f39c8d67bc27dfddfe14890500def72919ec792f41"
)
# A context-coded file (codec 3) around two made-up streams: the container frames them, it does not decode them.
GOLDEN_CONTEXT_STREAMS = [bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8, 9, 10, 11, 12])]
GOLDEN_CONTEXT = bytes.fromhex(
    "894d5356510d0a1a0200000102030405060708090a0b0c0d0e0f101112131415"
    "161718191a1b1c1d1e1fb81e85eb51f83d4040010000f0000000140000000000"
    "000000003040200040004000010000000300030000803e020200020002000002"
    "0000040004000400000400008a61cc9c04000000010203040800000005060708"
    "090a0b0c51278ecd"
)
# The same streams in a prior-coded file (codec 4): format version 3.
GOLDEN_PRIOR = bytes.fromhex(
    "894d5356510d0a1a0300000102030405060708090a0b0c0d0e0f101112131415"
    "161718191a1b1c1d1e1fb81e85eb51f83d4040010000f0000000140000000000"
    "000000003040200040004000010000000400030000803e020200020002000002"
    "00000400040004000004000044545aed04000000010203040800000005060708"
    "090a0b0c51278ecd"
)
GOLDENS = {"v2": GOLDEN, "v1": GOLDEN_V1, "v2-context": GOLDEN_CONTEXT, "v3-prior": GOLDEN_PRIOR}
VERSION_OF = {"v2": 2, "v1": 1, "v2-context": 2, "v3-prior": 3}

# ---------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", [StreamCodec.ZSTD, StreamCodec.DEFLATE])
@pytest.mark.parametrize("n_levels", [1, 2])
@pytest.mark.parametrize("k", [2, 3, 512, 1024, 65536])
def test_round_trip_is_bit_exact(codec, n_levels, k):
    levels = (LevelInfo((2, 4, 4), k), LevelInfo((4, 8, 8), k))[:n_levels]
    header = make_header(
        frame_count=70, n_clips=3, levels=levels, codec=codec, codec_level=default_level(codec)
    )
    indices = random_indices(header, seed=k)
    data = to_bytes(header, indices)
    got = from_bytes(data)
    assert got.header == header
    for want, have in zip(indices, got.indices):
        assert have.dtype == np.uint16 and have.shape == want.shape
        np.testing.assert_array_equal(have, want)
    assert to_bytes(header, indices) == data  # deterministic


def test_file_object_round_trip(tmp_path):
    header = make_header(codec=StreamCodec.ZSTD, codec_level=3)
    indices = random_indices(header)
    path = tmp_path / "clip.msvq"
    with open(path, "wb") as f:
        written = write_container(f, header, indices)
    assert written == path.stat().st_size
    with open(path, "rb") as f:
        assert read_header(f) == header
        assert f.tell() == header_size(2)
    with open(path, "rb") as f:
        got = read_container(f)
    assert got.header == header
    assert all(np.array_equal(a, b) for a, b in zip(got.indices, indices))
    assert read_container(NonSeekable(path.read_bytes())).header == header


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, np.uint64])
def test_writer_accepts_any_integer_dtype(dtype):
    header = make_header()
    indices = [a.astype(dtype) for a in random_indices(header)]
    assert to_bytes(header, indices) == to_bytes(header, random_indices(header))


# ------------------------------------------------------------------------------------ the byte layout


@pytest.mark.skipif("ng" in zlib.ZLIB_RUNTIME_VERSION, reason="zlib-ng compresses differently")
def test_golden_bytes_written():
    assert to_bytes(make_header(), [GOLDEN_TOP, GOLDEN_BOTTOM]) == GOLDEN


def test_golden_context_bytes_written():
    assert to_bytes(context_header(), streams=GOLDEN_CONTEXT_STREAMS) == GOLDEN_CONTEXT


@pytest.mark.parametrize("name", ["v2", "v1"])
def test_golden_bytes_read(name):
    got = from_bytes(GOLDENS[name])
    assert got.header == make_header() and got.version == VERSION_OF[name]
    np.testing.assert_array_equal(got.indices[0], GOLDEN_TOP)
    np.testing.assert_array_equal(got.indices[1], GOLDEN_BOTTOM)


def test_golden_context_read():
    got = from_bytes(GOLDEN_CONTEXT)
    assert got.header == context_header() and got.version == 2
    assert got.indices is None and list(got.streams) == GOLDEN_CONTEXT_STREAMS


def test_golden_prior_bytes_written_and_read():
    header = context_header(codec=StreamCodec.PRIOR)
    assert to_bytes(header, streams=GOLDEN_CONTEXT_STREAMS) == GOLDEN_PRIOR
    got = from_bytes(GOLDEN_PRIOR)
    assert got.header == header and got.version == 3
    assert got.indices is None and list(got.streams) == GOLDEN_CONTEXT_STREAMS
    # version 3 differs from the context file only in the version, the codec id and the checksums
    assert struct.unpack_from("<H", GOLDEN_PRIOR, 8) == (3,) and GOLDEN_PRIOR[80] == StreamCodec.PRIOR == 4


def test_the_writer_writes_the_lowest_version_that_holds_the_file():
    assert from_bytes(GOLDEN).version == 2 and from_bytes(GOLDEN_CONTEXT).version == 2
    assert from_bytes(GOLDEN_PRIOR).version == 3 == FORMAT_VERSION


def test_a_version_1_file_reads_as_version_2_without_rate_control_or_entropy_model():
    header = from_bytes(GOLDEN_V1).header
    assert (header.entropy_id, header.quality, header.rd_lambda) == (NO_ENTROPY_ID, 0, 0.0)
    assert READ_VERSIONS == (1, 2, 3) and FORMAT_VERSION == 3
    # and written again it is a version 2 file of the same header and indices
    again = from_bytes(to_bytes(header, from_bytes(GOLDEN_V1).indices))
    assert again.version == 2 and again.header == header


def test_fields_sit_at_their_documented_offsets():
    data = GOLDEN_CONTEXT
    assert data[0:8] == MAGIC == b"\x89MSVQ\r\n\x1a"
    assert struct.unpack_from("<H", data, 8) == (2,)
    assert data[10:26] == bytes(range(16))
    assert data[26:42] == bytes(range(16, 32))
    assert struct.unpack_from("<d", data, 42) == (29.97,)
    assert struct.unpack_from("<III", data, 50) == (320, 240, 20)
    assert struct.unpack_from("<d", data, 62) == (16.0,)
    assert struct.unpack_from("<HHHI", data, 70) == (32, 64, 64, 1)
    assert struct.unpack_from("<BBBfB", data, 80) == (StreamCodec.CONTEXT, 0, 3, 0.25, 2)
    assert struct.unpack_from("<HHHI", data, 88) == (2, 2, 2, 512)
    assert struct.unpack_from("<HHHI", data, 98) == (4, 4, 4, 1024)
    assert struct.unpack_from("<I", data, 108) == (zlib.crc32(data[:108]),)
    assert header_size(2) == 112
    pos = 112
    for stream in GOLDEN_CONTEXT_STREAMS:
        assert struct.unpack_from("<I", data, pos) == (len(stream),)
        assert data[pos + 4 : pos + 4 + len(stream)] == stream
        pos += 4 + len(stream)
    assert pos + 4 == len(data)
    assert struct.unpack_from("<I", data, len(data) - 4) == (zlib.crc32(data[:-4]),)
    # a zstd/DEFLATE file: entropy_id all zero, no rate control, the same layout
    assert GOLDEN[26:42] == bytes(16) and struct.unpack_from("<BBBfB", GOLDEN, 80) == (StreamCodec.DEFLATE, 9, 0, 0.0, 2)
    (top_len,) = struct.unpack_from("<I", GOLDEN, 112)
    top = zlib.decompress(GOLDEN[116 : 116 + top_len])
    assert top == pack_indices(GOLDEN_TOP, 512) and len(top) == math.ceil(8 * 9 / 8)


def test_version_1_fields_sit_at_their_documented_offsets():
    data = GOLDEN_V1
    assert struct.unpack_from("<H", data, 8) == (1,)
    assert data[10:26] == bytes(range(16))
    assert struct.unpack_from("<d", data, 26) == (29.97,)
    assert struct.unpack_from("<III", data, 34) == (320, 240, 20)
    assert struct.unpack_from("<d", data, 46) == (16.0,)
    assert struct.unpack_from("<HHHI", data, 54) == (32, 64, 64, 1)
    assert struct.unpack_from("<BBB", data, 64) == (StreamCodec.DEFLATE, 9, 2)
    assert struct.unpack_from("<HHHI", data, 67) == (2, 2, 2, 512)
    assert struct.unpack_from("<HHHI", data, 77) == (4, 4, 4, 1024)
    assert struct.unpack_from("<I", data, 87) == (zlib.crc32(data[:87]),)
    (top_len,) = struct.unpack_from("<Q", data, 91)
    top = zlib.decompress(data[99 : 99 + top_len])
    assert top == pack_indices(GOLDEN_TOP, 512)
    pos = 99 + top_len
    (bottom_len,) = struct.unpack_from("<Q", data, pos)
    assert len(zlib.decompress(data[pos + 8 : pos + 8 + bottom_len])) == 64 * 10 // 8
    assert pos + 8 + bottom_len + 4 == len(data)


def test_codec_ids_and_defaults_are_fixed():
    assert (StreamCodec.ZSTD, StreamCodec.DEFLATE, StreamCodec.CONTEXT, StreamCodec.PRIOR) == (1, 2, 3, 4)
    assert default_level(StreamCodec.ZSTD) == 19 and default_level(StreamCodec.DEFLATE) == 9
    assert default_level(StreamCodec.CONTEXT) == 0 == default_level(StreamCodec.PRIOR)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(source_fps=29.97, fps=23.976),
        dict(source_fps=1 / 3, fps=1e-3, source_width=1, source_height=1),
        dict(source_fps=1e300, source_width=2**32 - 1, source_height=4097),
        dict(frame_count=1, clip_frames=1, clip_height=1, clip_width=1, levels=(LevelInfo((1, 1, 1), 2),)),
        dict(frame_count=12345, clip_frames=7, n_clips=1764, clip_height=65535, clip_width=3,
             levels=(LevelInfo((1, 2, 3), 3),), codec=StreamCodec.ZSTD, codec_level=1),
        dict(model_id=b"\xff" * 16, levels=tuple(LevelInfo((1, 2, 2), 7 + i) for i in range(4)),
             codec=StreamCodec.DEFLATE, codec_level=0),
        dict(quality=255, rd_lambda=3.0e38),
        dict(quality=1, rd_lambda=0.0),
        dict(quality=7, rd_lambda=1e-30),
    ],
)
def test_every_header_field_round_trips(overrides):
    header = make_header(**overrides)
    assert from_bytes(to_bytes(header, random_indices(header))).header == header


def test_rd_lambda_is_held_as_the_float32_the_file_stores():
    header = make_header(quality=2, rd_lambda=0.1)
    assert header.rd_lambda == struct.unpack("<f", struct.pack("<f", 0.1))[0] != 0.1
    assert from_bytes(to_bytes(header, random_indices(header))).header == header


@pytest.mark.parametrize("k", [2, 1024, 65536])
def test_context_round_trip(k):
    header = context_header(levels=(LevelInfo((2, 4, 4), k), LevelInfo((4, 8, 8), k)), frame_count=70, n_clips=3)
    rng = np.random.default_rng(k)
    streams = [rng.integers(1, 2**32, size=n, dtype=np.uint32).astype("<u4").tobytes() for n in (0, 5)]
    data = to_bytes(header, streams=streams)
    got = from_bytes(data)
    assert got.header == header and got.indices is None and list(got.streams) == streams
    assert to_bytes(header, streams=streams) == data


FAST_LEVELS = {StreamCodec.ZSTD: (1, 5), StreamCodec.DEFLATE: (0, 9)}
positive = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_headers_round_trip(data):
    clip = data.draw(st.tuples(*[st.integers(1, 65535)] * 3))
    frame_count = data.draw(st.integers(1, 200))
    grids = data.draw(st.lists(st.tuples(*[st.integers(1, min(c, 3)) for c in clip]), min_size=1, max_size=4))
    codec = data.draw(st.sampled_from([StreamCodec.ZSTD, StreamCodec.DEFLATE]))
    quality = data.draw(st.integers(0, 255))
    header = make_header(
        quality=quality, rd_lambda=data.draw(st.floats(0, 1e30)) if quality else 0.0,
        model_id=data.draw(st.binary(min_size=16, max_size=16)), source_fps=data.draw(positive),
        fps=data.draw(positive), source_width=data.draw(st.integers(1, 2**32 - 1)),
        source_height=data.draw(st.integers(1, 2**32 - 1)), frame_count=frame_count,
        clip_frames=clip[0], clip_height=clip[1], clip_width=clip[2], n_clips=-(-frame_count // clip[0]),
        levels=tuple(LevelInfo(g, data.draw(st.integers(2, 65536))) for g in grids),
        codec=codec, codec_level=data.draw(st.integers(*FAST_LEVELS[codec])),
    )
    indices = random_indices(header, seed=data.draw(st.integers(0, 1000)))
    got = from_bytes(to_bytes(header, indices))
    assert got.header == header
    assert all(np.array_equal(a, b) for a, b in zip(got.indices, indices))


def test_derived_values_and_dict():
    header = make_header(levels=(LevelInfo((4, 8, 8), 1024), LevelInfo((8, 16, 16), 1000)), n_clips=1)
    assert [header.bits_per_index(i) for i in range(2)] == [10, 10]
    # the paper's formula uses log2 K, not the stored ceil(log2 K) bits
    assert header.paper_bpp == pytest.approx((256 * 10 + 2048 * math.log2(1000)) / (32 * 64 * 64))
    d = json.loads(json.dumps(header.to_dict()))
    assert d["model_id"] == bytes(range(16)).hex() and d["codec"] == "deflate"
    assert d["entropy_id"] is None and d["quality"] == 0 and d["rd_lambda"] == 0.0
    c = context_header().to_dict()
    assert c["entropy_id"] == bytes(range(16, 32)).hex() and c["codec"] == "context" and c["quality"] == 3
    assert d["levels"][1] == {
        "grid": [8, 16, 16], "codebook_size": 1000, "bits_per_index": 10, "n_indices": 2048
    }


# -------------------------------------------------------------------------------------------- packing


@pytest.mark.parametrize(
    "k, bits",
    [(2, 1), (3, 2), (4, 2), (5, 3), (255, 8), (256, 8), (257, 9), (512, 9), (1024, 10), (65536, 16)],
)
def test_bits_per_index_is_ceil_log2(k, bits):
    assert index_bits(k) == bits == math.ceil(math.log2(k))
    for count in (1, 7, 8, 9, 1001):
        values = np.random.default_rng(count).integers(0, k, size=count)
        packed = pack_indices(values, k)
        assert len(packed) == packed_size(count, k) == math.ceil(count * bits / 8)
        np.testing.assert_array_equal(unpack_indices(packed, count, k), values)


def test_packing_bit_order():
    assert pack_indices(np.array([1, 2, 3, 0]), 4) == bytes([0b00111001])
    assert pack_indices(np.array([1, 1023]), 1024) == bytes([0x01, 0xFC, 0x0F])  # 1 | 1023 << 10


def test_packing_many_chunks():
    values = np.random.default_rng(1).integers(0, 1000, size=600_001)
    packed = pack_indices(values, 1000)
    assert len(packed) == math.ceil(600_001 * 10 / 8)
    np.testing.assert_array_equal(unpack_indices(packed, values.size, 1000), values)


def test_unpacking_rejects_bad_data():
    with pytest.raises(FormatError, match="expected 3"):
        unpack_indices(b"\x00\x00", 2, 1024)
    with pytest.raises(FormatError, match="padding"):
        unpack_indices(bytes([0x01, 0x00, 0x10]), 2, 1024)
    with pytest.raises(FormatError, match="out of range"):
        unpack_indices(bytes([0b11]), 1, 3)


def test_decompression_is_bounded():
    bomb = zlib.compress(bytes(50_000_000), 9)
    with pytest.raises(FormatError, match="more than the expected 100 bytes"):
        decompress(bomb, StreamCodec.DEFLATE, 100)
    zbomb = zstandard.ZstdCompressor(level=3).compress(bytes(50_000_000))
    with pytest.raises(FormatError, match="declares 50000000 bytes, expected 100"):
        decompress(zbomb, StreamCodec.ZSTD, 100)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(100))
    with pytest.raises(FormatError, match="declares no size"):
        decompress(unsized, StreamCodec.ZSTD, 100)


# ------------------------------------------------------------------------- writing what cannot be stored


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_clips=2), "n_clips 2 does not match"),
        (dict(codec_level=10), "codec level 10 is out of range 0..9"),
        (dict(codec=StreamCodec.ZSTD, codec_level=0), "codec level 0 is out of range 1..22"),
        (dict(model_id=b"short"), "model_id"),
        (dict(fps=float("nan")), "fps"),
        (dict(levels=()), "level count 0"),
        (dict(levels=(LevelInfo((64, 1, 1), 2),)), "grid"),
        (dict(levels=(LevelInfo((1, 1, 1), 65537),)), "codebook size 65537"),
        (dict(frame_count=2.5), "frame_count"),
        (dict(quality=256), "quality must be an integer in 0..255"),
        (dict(quality=-1), "quality must be"),
        (dict(quality=0, rd_lambda=0.5), "rd_lambda must be 0 with quality 0"),
        (dict(quality=1, rd_lambda=-1.0), "rd_lambda must be a finite number >= 0"),
        (dict(quality=1, rd_lambda=float("inf")), "rd_lambda must be a finite number >= 0"),
        (dict(quality=1, rd_lambda=1e39), "does not fit a float32"),
        (dict(entropy_id=b"\x01" * 16), "entropy_id must be all zero with codec deflate"),
        (dict(entropy_id=b"short"), "entropy_id must be exactly 16 bytes"),
    ],
)
def test_writer_rejects_bad_headers(overrides, message):
    header = make_header(**overrides)
    with pytest.raises(UsageError, match=message):
        to_bytes(header, [np.zeros((1, *lv.grid), np.int64) for lv in header.levels])


def test_writer_rejects_bad_context_files():
    header = context_header()
    with pytest.raises(UsageError, match="needs its model's ID"):
        to_bytes(context_header(entropy_id=NO_ENTROPY_ID), streams=GOLDEN_CONTEXT_STREAMS)
    with pytest.raises(UsageError, match="codec level 1 is out of range 0..0"):
        to_bytes(context_header(codec_level=1), streams=GOLDEN_CONTEXT_STREAMS)
    with pytest.raises(UsageError, match="written from its coded streams"):
        to_bytes(header, random_indices(header))
    with pytest.raises(UsageError, match="written from its indices"):
        to_bytes(make_header(), streams=GOLDEN_CONTEXT_STREAMS)
    with pytest.raises(UsageError, match="1 streams given for 2 levels"):
        to_bytes(header, streams=GOLDEN_CONTEXT_STREAMS[:1])
    one = b"\x01\x00\x00\x00"
    with pytest.raises(UsageError, match="not a whole number of 32-bit words"):
        to_bytes(header, streams=[b"\x01\x02\x03", one])
    with pytest.raises(UsageError, match="last word is zero"):
        to_bytes(header, streams=[bytes(4), one])
    too_long = b"\x01" * (max_context_stream(8) + 4)
    with pytest.raises(UsageError, match="more than 8 indices can take"):
        to_bytes(header, streams=[too_long, one])


def test_writer_rejects_bad_indices():
    header = make_header()
    top, bottom = random_indices(header)
    with pytest.raises(UsageError, match="index 1024 is out of range"):
        to_bytes(header, [top, np.full_like(bottom, 1024)])
    with pytest.raises(UsageError, match="index -1 is out of range"):
        to_bytes(header, [np.full_like(top, -1), bottom])
    with pytest.raises(UsageError, match="shape"):
        to_bytes(header, [top, bottom[:, :2]])
    with pytest.raises(UsageError, match="1 index arrays given for 2 levels"):
        to_bytes(header, [top])
    with pytest.raises(UsageError, match="integers"):
        to_bytes(header, [top.astype(np.float32), bottom])


# --------------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("name", GOLDENS)
def test_truncation_at_every_offset(name):
    golden = GOLDENS[name]
    for cut in range(len(golden)):
        with pytest.raises(FormatError):
            from_bytes(golden[:cut])
        with pytest.raises(FormatError, match="truncated|bad magic"):
            read_container(NonSeekable(golden[:cut]))


@pytest.mark.parametrize("name", GOLDENS)
def test_header_alone_reads_from_a_truncated_file(name):
    golden, size = GOLDENS[name], header_size(2, VERSION_OF[name])
    assert read_header(io.BytesIO(golden[:size])) == from_bytes(golden).header
    with pytest.raises(FormatError, match="truncated"):
        read_header(io.BytesIO(golden[: size - 1]))


@pytest.mark.parametrize("name", GOLDENS)
def test_every_single_bit_flip_is_caught(name):
    golden, size = GOLDENS[name], header_size(2, VERSION_OF[name])
    for bit in range(len(golden) * 8):  # the whole file: header and payload
        data = bytearray(golden)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            from_bytes(bytes(data))
        if bit < size * 8:
            with pytest.raises(FormatError):
                read_header(io.BytesIO(bytes(data)))


@pytest.mark.parametrize("name", GOLDENS)
def test_checksum_messages(name):
    data = bytearray(GOLDENS[name])
    data[30] ^= 1
    with pytest.raises(FormatError, match="header checksum mismatch"):
        from_bytes(bytes(data))
    data = bytearray(GOLDENS[name])
    data[-6] ^= 1
    with pytest.raises(FormatError, match="file checksum mismatch"):
        from_bytes(bytes(data))


def _v(version: int, field: str) -> int:
    return LAYOUT[version][field]


G1, G2, GC, GP = GOLDEN_V1, GOLDEN, GOLDEN_CONTEXT, GOLDEN_PRIOR
MALFORMED = [
    (G2 + b"\x00", "trailing bytes"),
    (G1 + b"\x00", "trailing bytes"),
    (b"", "truncated"),
    (b"\x89MSV", "truncated"),
    (b"PK\x03\x04" + G2[4:], "bad magic"),
    (b"\x89MSVQ\n\x1a\n" + G2[8:], "bad magic"),
    (G2[:8] + b"\x04\x00" + G2[10:], "unsupported .msvq format version 4 \\(this reader knows 1, 2 and 3\\)"),
    (G2[:8] + b"\x00\x00" + G2[10:], "unsupported .msvq format version 0"),
    (patch(G1, (64, "<B", 3)), "unknown stream codec id 3 in a version 1 file"),
    (patch(G2, (80, "<B", 4)), "unknown stream codec id 4 in a version 2 file"),
    (patch(G2, (80, "<B", 5)), "unknown stream codec id 5"),
    (patch(GP, (80, "<B", 5)), "unknown stream codec id 5"),
    (patch(GP, (81, "<B", 1)), "codec level 1 is out of range 0..0 for prior"),
    (patch(GP, (26, "16s", bytes(16))), "needs its model's ID"),
    (patch(GP, (116, "<I", 0)), "last word is zero"),
    (patch(G2, (80, "<B", 0)), "unknown stream codec id 0"),
    (patch(G1, (64, "<B", 0)), "unknown stream codec id 0"),
    (patch(G2, (81, "<B", 10)), "codec level 10 is out of range 0..9"),
    (patch(G1, (65, "<B", 10)), "codec level 10 is out of range 0..9"),
    (patch(G2, (80, "<BB", StreamCodec.ZSTD, 23)), "codec level 23 is out of range 1..22"),
    (patch(GC, (81, "<B", 1)), "codec level 1 is out of range 0..0 for context"),
    (patch(GC, (26, "16s", bytes(16))), "needs its model's ID"),
    (patch(G2, (26, "16s", b"\x01" * 16)), "entropy_id must be all zero with codec deflate"),
    (patch(G2, (82, "<Bf", 0, 1.0)), "rd_lambda must be 0 with quality 0"),
    (patch(GC, (83, "<f", -1.0)), "rd_lambda must be a finite number >= 0"),
    (patch(GC, (83, "<f", float("nan"))), "rd_lambda must be a finite number >= 0"),
    (patch(GC, (83, "<f", float("inf"))), "rd_lambda must be a finite number >= 0"),
    (patch(G2, (87, "<B", 0)), "level count 0 is out of range"),
    (patch(G2, (87, "<B", 5)), "level count 5 is out of range"),
    (patch(G1, (66, "<B", 5)), "level count 5 is out of range"),
    (patch(G2, (76, "<I", 2)), "n_clips 2 does not match"),
    (patch(G1, (60, "<I", 2)), "n_clips 2 does not match"),
    (patch(G2, (58, "<I", 0)), "frame_count must be"),
    (patch(G2, (70, "<H", 0)), "clip_frames must be"),
    (patch(G2, (50, "<I", 0)), "source_width must be"),
    (patch(G2, (42, "<d", float("inf"))), "source_fps must be"),
    (patch(G2, (62, "<d", -16.0)), ": fps must be"),
    (patch(G1, (46, "<d", -16.0)), ": fps must be"),
    (patch(G2, (88, "<H", 0)), "level 0 grid"),
    (patch(G2, (98, "<HHH", 60000, 4, 4)), "level 1 grid"),  # larger than the clip
    (patch(G2, (94, "<I", 1)), "codebook size 1 is out of range"),
    (patch(G2, (104, "<I", 70000)), "codebook size 70000 is out of range"),
    (patch(G1, (83, "<I", 70000)), "codebook size 70000 is out of range"),
    # absurd counts: consistent with each other, stopped by the cap on the total index count
    (patch(G2, (58, "<I", 2**32 - 4), (70, "<H", 4), (76, "<I", 2**30 - 1)), "indices exceed the cap"),
    (patch(G2, (70, "<HHH", *[65535] * 3), (98, "<HHH", *[65535] * 3)), "indices exceed the cap"),
    (patch(G2, (112, "<I", 2**32 - 1)), "stream length 4294967295 exceeds the cap"),
    (patch(G1, (91, "<Q", 2**63)), "stream length 9223372036854775808 exceeds the cap"),
    (patch(G2, (112, "<I", 10_000)), "level 0 stream length 10000 exceeds the 77 bytes left"),
    (patch(G1, (91, "<Q", 10_000)), "level 0 stream length 10000 exceeds the 81 bytes left"),
    # context streams: framing only
    (patch(GC, (112, "<I", 6)), "level 1 stream length 100990976 exceeds"),  # the rest no longer lines up
    (patch(GC, (116, "<I", 0)), "last word is zero"),
    (patch(GC, (120, "<I", 13)), "level 1 stream length 13"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=lambda value: value if isinstance(value, str) else "file")
def test_specific_malformations(data, message):
    with pytest.raises(FormatError, match=message):
        from_bytes(data)


def test_overstated_stream_length_without_file_size():
    with pytest.raises(FormatError, match="exceeds the cap"):
        read_container(NonSeekable(patch(GOLDEN, (112, "<I", MAX_STREAM_BYTES + 1))))
    with pytest.raises(FormatError, match="exceeds the cap"):
        read_container(NonSeekable(patch(GOLDEN_V1, (91, "<Q", MAX_STREAM_BYTES + 1))))
    # within the cap: read in chunks until the data runs out, never allocated up front
    with pytest.raises(FormatError, match="truncated file: level 0 stream needs 1073741824 bytes"):
        read_container(NonSeekable(patch(GOLDEN, (112, "<I", MAX_STREAM_BYTES))))
    # a context stream longer than its indices can take is refused before it is read
    with pytest.raises(FormatError, match="is more than its 8 indices can take"):
        read_container(NonSeekable(patch(GOLDEN_CONTEXT, (112, "<I", max_context_stream(8) + 4))))


def test_bad_context_stream_framing_with_valid_checksums():
    header = context_header(levels=(LevelInfo((2, 2, 2), 3),))  # 8 indices
    assert from_bytes(assemble(header, [b"\x07\x00\x00\x00"])).streams == (b"\x07\x00\x00\x00",)
    assert from_bytes(assemble(header, [b""])).streams == (b"",)  # the range decoder judges an empty stream
    cases = [
        (b"\x01\x00\x00", "3 bytes is not a whole number of 32-bit words"),
        (b"\x01\x00\x00\x00" + bytes(4), "last word is zero"),
        (b"\x01" * (max_context_stream(8) + 4), "more than its 8 indices can take"),
    ]
    for stream, message in cases:
        with pytest.raises(FormatError, match=message):
            from_bytes(assemble(header, [stream]))


def test_bad_stream_contents_with_valid_checksums():
    header = make_header(levels=(LevelInfo((2, 2, 2), 3),))  # 8 indices * 2 bits = 2 bytes
    good = zlib.compress(bytes(2))
    assert from_bytes(assemble(header, [good])).indices[0].sum() == 0
    cases = [
        (zlib.compress(bytes(3)), "more than the expected 2 bytes"),
        (zlib.compress(bytes(1)), "decompresses to 1 bytes, expected 2"),
        (zlib.compress(bytes(2)) + b"x", "1 bytes after the end of the deflate stream"),
        (zlib.compress(bytes(2))[:-2], "incomplete"),
        (b"", "decompresses to 0 bytes"),
        (b"garbage!", "corrupt deflate data"),
        (zlib.compress(bytes(50_000_000)), "more than the expected 2 bytes"),
        (zlib.compress(b"\xff\x00"), "out of range of the codebook size 3"),
    ]
    for stream, message in cases:
        with pytest.raises(FormatError, match=message):
            from_bytes(assemble(header, [stream]))
    # 3 indices * 10 bits = 30 bits: 4 bytes, the top 2 bits padding
    zheader = make_header(levels=(LevelInfo((1, 1, 3), 1024),), codec=StreamCodec.ZSTD, codec_level=3)
    zcases = [
        (zstandard.ZstdCompressor().compress(bytes(5)), "declares 5 bytes, expected 4"),
        (zstandard.ZstdCompressor(write_content_size=False).compress(bytes(4)), "declares no size"),
        (zstandard.ZstdCompressor().compress(bytes(4)) * 2, "unused data"),
        (b"not zstd", "not a zstd frame"),
        (zstandard.ZstdCompressor().compress(bytes(3) + b"\xc0"), "non-zero padding bits"),
    ]
    for stream, message in zcases:
        with pytest.raises(FormatError, match=message):
            from_bytes(assemble(zheader, [stream]))


# ------------------------------------------------------------------------------- property: only FormatError


def _parses_or_format_error(data: bytes) -> None:
    try:
        from_bytes(data)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_format_error(data):
    _parses_or_format_error(data)
    _parses_or_format_error(GOLDEN[:10] + data)  # past the magic and version
    _parses_or_format_error(GOLDEN_V1[:10] + data)


mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete"]), st.integers(0, len(GOLDEN)), st.integers(0, 255)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(mutation, min_size=1, max_size=6), st.booleans(), st.sampled_from(sorted(GOLDENS)))
def test_mutated_files_only_raise_format_error(mutations, refresh_crcs, name):
    data = bytearray(GOLDENS[name])
    for kind, pos, value in mutations:
        pos = min(pos, len(data) - 1) if data else 0
        if kind == "set" and data:
            data[pos] = value
        elif kind == "insert":
            data.insert(pos, value)
        elif data:
            del data[pos]
    # With fresh CRCs the mutated fields reach the checks behind the checksums.
    _parses_or_format_error(fix_crcs(data) if refresh_crcs else bytes(data))


def test_container_imports_no_torch_or_cv2():
    code = (
        "import sys, msvq_codec.container\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # and of our own package, the container uses only itself and the errors
    import msvq_codec.container as package

    for path in pathlib.Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("msvq_codec"):
                assert node.module.startswith(("msvq_codec.container", "msvq_codec.errors")), path



def test_caps_are_what_the_docs_say():
    assert MAX_INDICES == 2**28 and MAX_STREAM_BYTES == 2**30

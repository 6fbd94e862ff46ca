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
    Header,
    LevelInfo,
    StreamCodec,
    default_level,
    from_bytes,
    index_bits,
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


def header_size(n_levels: int) -> int:
    return 71 + 10 * n_levels


def fix_crcs(data: bytes | bytearray) -> bytes:
    """Recompute the header CRC and the file CRC, so that a crafted field is what the reader trips on."""
    data = bytearray(data)
    end = 67 + 10 * data[66] if len(data) > 66 else len(data)
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
    """A file with a valid header and CRCs around arbitrary (possibly bad) compressed streams."""
    head = to_bytes(header, random_indices(header))[: header_size(len(header.levels))]
    body = head + b"".join(struct.pack("<Q", len(s)) + s for s in streams)
    return body + struct.pack("<I", zlib.crc32(body))


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


# The golden file: 1 clip, a 2x2x2 top grid (K=512) and a 4x4x4 bottom grid (K=1024), DEFLATE level 9.
GOLDEN_TOP = np.array([0, 1, 2, 511, 256, 3, 100, 7]).reshape(1, 2, 2, 2)
GOLDEN_BOTTOM = ((np.arange(64) % 8) * 100 + np.arange(64) // 16).reshape(1, 4, 4, 4)
GOLDEN = bytes.fromhex(
    "894d5356510d0a1a0100000102030405060708090a0b0c0d0e0fb81e85eb51f8"
    "3d4040010000f000000014000000000000000000304020004000400001000000"
    "0209020200020002000002000004000400040000040000288e318a1100000000"
    "00000078da6360e2f8c15fc0309319000961021e380000000000000078da6398"
    "d0c8e33de162bbea7a06388b71ca441fef8957a7a722b198662cecf19e7473f9"
    "522416f39c8d67bc27dfddfe14890500def72919ec792f41"
)

# ---------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", list(StreamCodec))
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


def test_golden_bytes_read():
    got = from_bytes(GOLDEN)
    assert got.header == make_header()
    np.testing.assert_array_equal(got.indices[0], GOLDEN_TOP)
    np.testing.assert_array_equal(got.indices[1], GOLDEN_BOTTOM)


def test_fields_sit_at_their_documented_offsets():
    data = GOLDEN
    assert data[0:8] == MAGIC == b"\x89MSVQ\r\n\x1a"
    assert struct.unpack_from("<H", data, 8) == (FORMAT_VERSION,) == (1,)
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
    assert top == pack_indices(GOLDEN_TOP, 512) and len(top) == math.ceil(8 * 9 / 8)
    pos = 99 + top_len
    (bottom_len,) = struct.unpack_from("<Q", data, pos)
    bottom = zlib.decompress(data[pos + 8 : pos + 8 + bottom_len])
    assert len(bottom) == 64 * 10 // 8
    assert pos + 8 + bottom_len + 4 == len(data)
    assert struct.unpack_from("<I", data, len(data) - 4) == (zlib.crc32(data[:-4]),)


def test_codec_ids_and_defaults_are_fixed():
    assert (StreamCodec.ZSTD, StreamCodec.DEFLATE) == (1, 2)
    assert default_level(StreamCodec.ZSTD) == 19 and default_level(StreamCodec.DEFLATE) == 9


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
    ],
)
def test_every_header_field_round_trips(overrides):
    header = make_header(**overrides)
    assert from_bytes(to_bytes(header, random_indices(header))).header == header


FAST_LEVELS = {StreamCodec.ZSTD: (1, 5), StreamCodec.DEFLATE: (0, 9)}
positive = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_headers_round_trip(data):
    clip = data.draw(st.tuples(*[st.integers(1, 65535)] * 3))
    frame_count = data.draw(st.integers(1, 200))
    grids = data.draw(st.lists(st.tuples(*[st.integers(1, min(c, 3)) for c in clip]), min_size=1, max_size=4))
    codec = data.draw(st.sampled_from(list(StreamCodec)))
    header = make_header(
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
    ],
)
def test_writer_rejects_bad_headers(overrides, message):
    header = make_header(**overrides)
    with pytest.raises(UsageError, match=message):
        to_bytes(header, [np.zeros((1, *lv.grid), np.int64) for lv in header.levels])


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


def test_truncation_at_every_offset():
    for cut in range(len(GOLDEN)):
        with pytest.raises(FormatError):
            from_bytes(GOLDEN[:cut])
        with pytest.raises(FormatError, match="truncated|bad magic"):
            read_container(NonSeekable(GOLDEN[:cut]))


def test_header_alone_reads_from_a_truncated_file():
    assert read_header(io.BytesIO(GOLDEN[: header_size(2)])) == make_header()
    with pytest.raises(FormatError, match="truncated"):
        read_header(io.BytesIO(GOLDEN[: header_size(2) - 1]))


def test_every_single_bit_flip_is_caught():
    for bit in range(len(GOLDEN) * 8):  # the whole file: header and payload
        data = bytearray(GOLDEN)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            from_bytes(bytes(data))
        if bit < header_size(2) * 8:
            with pytest.raises(FormatError):
                read_header(io.BytesIO(bytes(data)))


def test_checksum_messages():
    data = bytearray(GOLDEN)
    data[30] ^= 1
    with pytest.raises(FormatError, match="header checksum mismatch"):
        from_bytes(bytes(data))
    data = bytearray(GOLDEN)
    data[-10] ^= 1
    with pytest.raises(FormatError, match="file checksum mismatch"):
        from_bytes(bytes(data))


@pytest.mark.parametrize(
    "data, message",
    [
        (GOLDEN + b"\x00", "trailing bytes"),
        (b"", "truncated"),
        (b"\x89MSV", "truncated"),
        (b"PK\x03\x04" + GOLDEN[4:], "bad magic"),
        (b"\x89MSVQ\n\x1a\n" + GOLDEN[8:], "bad magic"),
        (GOLDEN[:8] + b"\x02\x00" + GOLDEN[10:], "unsupported .msvq format version 2"),
        (patch(GOLDEN, (64, "<B", 3)), "unknown stream codec id 3"),
        (patch(GOLDEN, (64, "<B", 0)), "unknown stream codec id 0"),
        (patch(GOLDEN, (65, "<B", 10)), "codec level 10 is out of range 0..9"),
        (patch(GOLDEN, (64, "<BB", StreamCodec.ZSTD, 23)), "codec level 23 is out of range 1..22"),
        (patch(GOLDEN, (66, "<B", 0)), "level count 0 is out of range"),
        (patch(GOLDEN, (66, "<B", 5)), "level count 5 is out of range"),
        (patch(GOLDEN, (60, "<I", 2)), "n_clips 2 does not match"),
        (patch(GOLDEN, (42, "<I", 0)), "frame_count must be"),
        (patch(GOLDEN, (54, "<H", 0)), "clip_frames must be"),
        (patch(GOLDEN, (34, "<I", 0)), "source_width must be"),
        (patch(GOLDEN, (26, "<d", float("inf"))), "source_fps must be"),
        (patch(GOLDEN, (46, "<d", -16.0)), ": fps must be"),
        (patch(GOLDEN, (67, "<H", 0)), "level 0 grid"),
        (patch(GOLDEN, (77, "<HHH", 60000, 4, 4)), "level 1 grid"),  # larger than the clip
        (patch(GOLDEN, (73, "<I", 1)), "codebook size 1 is out of range"),
        (patch(GOLDEN, (83, "<I", 70000)), "codebook size 70000 is out of range"),
        # absurd counts: consistent with each other, stopped by the cap on the total index count
        (patch(GOLDEN, (42, "<I", 2**32 - 4), (54, "<H", 4), (60, "<I", 2**30 - 1)),
         "indices exceed the cap"),
        (patch(GOLDEN, (54, "<HHH", *[65535] * 3), (77, "<HHH", *[65535] * 3)), "indices exceed the cap"),
        (patch(GOLDEN, (91, "<Q", 2**63)), "stream length 9223372036854775808 exceeds the cap"),
        (patch(GOLDEN, (91, "<Q", 10_000)), "level 0 stream length 10000 exceeds the 81 bytes left"),
    ],
    ids=lambda value: value if isinstance(value, str) else "file",
)
def test_specific_malformations(data, message):
    with pytest.raises(FormatError, match=message):
        from_bytes(data)


def test_overstated_stream_length_without_file_size():
    with pytest.raises(FormatError, match="exceeds the cap"):
        read_container(NonSeekable(patch(GOLDEN, (91, "<Q", MAX_STREAM_BYTES + 1))))
    # within the cap: read in chunks until the data runs out, never allocated up front
    with pytest.raises(FormatError, match="truncated file: level 0 stream needs 1073741824 bytes"):
        read_container(NonSeekable(patch(GOLDEN, (91, "<Q", MAX_STREAM_BYTES))))


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


mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete"]), st.integers(0, len(GOLDEN)), st.integers(0, 255)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(mutation, min_size=1, max_size=6), st.booleans())
def test_mutated_files_only_raise_format_error(mutations, refresh_crcs):
    data = bytearray(GOLDEN)
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

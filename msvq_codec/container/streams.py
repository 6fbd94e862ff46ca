"""Index streams: bit packing of codebook indices, and the stream compressors.

A level's indices are stored in two steps:

1. **Packing.** Each index takes exactly ``b = ceil(log2 K)`` bits (K = the level's codebook size;
   K = 1024 gives 10 bits, K = 3 gives 2). The packed stream is the little-endian integer
   ``sum(index[i] << (i * b))`` written in ``ceil(n * b / 8)`` bytes: bit ``j`` of index ``i`` is bit
   ``(i * b + j) % 8`` (counting from the least significant bit) of byte ``(i * b + j) // 8``.
   The unused high bits of the last byte are zero.
2. **Compression** of the packed bytes with zstd or DEFLATE.

(The range-coded codecs, ``context`` and ``prior``, code indices, not packed bytes, with a probability model
that lives beside the weights: ``msvq_codec.entropy``.)

Both directions are vectorised numpy (the only Python loop is over chunks of ``_CHUNK`` indices, which
bounds the temporary memory), and decompression never produces more than the size the caller expects:
a stream that would inflate beyond it is a :class:`~msvq_codec.errors.FormatError`, not a memory spike.
"""

from __future__ import annotations

import enum
import zlib

import numpy as np
import zstandard

from msvq_codec.errors import FormatError, UsageError

# Indices handled per vectorised step. A multiple of 8, so every chunk but the last ends on a byte boundary.
_CHUNK = 1 << 18


class StreamCodec(enum.IntEnum):
    """How each level's packed indices are compressed. The ids are stored in files: fixed forever."""

    ZSTD = 1  # a single Zstandard frame (RFC 8878) that records its content size
    DEFLATE = 2  # a zlib stream (RFC 1950) wrapping DEFLATE (RFC 1951)
    CONTEXT = 3  # range-coded with the weights' context model (format version 2; msvq_codec.entropy)
    PRIOR = 4  # range-coded with the weights' learned prior (format version 3; msvq_codec.entropy.prior)


# The codecs whose streams are range-coded with a model the file names by ``entropy_id``.
RANGE_CODED = (StreamCodec.CONTEXT, StreamCodec.PRIOR)


# Valid compression levels, inclusive; checked when writing and when reading.
CODEC_LEVELS: dict[StreamCodec, tuple[int, int]] = {
    StreamCodec.ZSTD: (1, 22),
    StreamCodec.DEFLATE: (0, 9),
    StreamCodec.CONTEXT: (0, 0),
    StreamCodec.PRIOR: (0, 0),
}

_DEFAULT_LEVELS = {StreamCodec.ZSTD: 19, StreamCodec.DEFLATE: 9, StreamCodec.CONTEXT: 0, StreamCodec.PRIOR: 0}


def default_level(codec: StreamCodec) -> int:
    """The compression level used when none is given: the slowest that is still quick for our sizes."""
    return _DEFAULT_LEVELS[StreamCodec(codec)]


# --------------------------------------------------------------------------------------------- packing


def index_bits(codebook_size: int) -> int:
    """Bits per index for a codebook of ``codebook_size`` entries: ``ceil(log2 K)``, exactly."""
    if codebook_size < 2:
        raise UsageError(f"codebook size must be at least 2, not {codebook_size}")
    return (codebook_size - 1).bit_length()


def packed_size(count: int, codebook_size: int) -> int:
    """Bytes taken by ``count`` packed indices of a codebook of ``codebook_size`` entries."""
    return (count * index_bits(codebook_size) + 7) // 8


def pack_indices(indices: np.ndarray, codebook_size: int) -> bytes:
    """Pack ``indices`` (any shape, flattened in C order) at ``index_bits(codebook_size)`` bits each.

    The caller guarantees ``0 <= index < codebook_size`` (see ``format.write_container``).
    """
    bits = index_bits(codebook_size)
    flat = np.ascontiguousarray(indices).reshape(-1).astype(np.uint32)
    shifts = np.arange(bits, dtype=np.uint32)
    parts = []
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        bit_rows = ((chunk[:, None] >> shifts) & 1).astype(np.uint8)  # [n, bits], least significant first
        parts.append(np.packbits(bit_rows.reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def unpack_indices(data: bytes, count: int, codebook_size: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`: ``count`` indices as a flat ``uint16`` array.

    Raises ``FormatError`` if ``data`` is not exactly ``packed_size(count, codebook_size)`` bytes, if its
    padding bits are not zero, or if any index is ``>= codebook_size``.
    """
    bits = index_bits(codebook_size)
    expected = packed_size(count, codebook_size)
    if len(data) != expected:
        raise FormatError(f"packed indices are {len(data)} bytes, expected {expected}")
    raw = np.frombuffer(data, dtype=np.uint8)
    used_bits = count * bits
    if used_bits % 8 and raw[-1] >> (used_bits % 8):
        raise FormatError("packed indices have non-zero padding bits")
    # Each index lies within 3 bytes (at most 7 + 16 bits): gather those bytes, shift and mask.
    padded = np.concatenate([raw, np.zeros(3, np.uint8)])
    mask = np.uint32((1 << bits) - 1)
    out = np.empty(count, dtype=np.uint16)
    for start in range(0, count, _CHUNK):
        bit_pos = np.arange(start, min(start + _CHUNK, count), dtype=np.uint64) * np.uint64(bits)
        byte = (bit_pos >> np.uint64(3)).astype(np.intp)
        window = (
            padded[byte].astype(np.uint32)
            | (padded[byte + 1].astype(np.uint32) << np.uint32(8))
            | (padded[byte + 2].astype(np.uint32) << np.uint32(16))
        )
        out[start : start + len(byte)] = (window >> (bit_pos & np.uint64(7)).astype(np.uint32)) & mask
    if count and int(out.max()) >= codebook_size:
        raise FormatError(f"index {int(out.max())} is out of range of the codebook size {codebook_size}")
    return out


# ----------------------------------------------------------------------------------------- compression


def compress(data: bytes, codec: StreamCodec, level: int) -> bytes:
    """Compress ``data`` deterministically (same input, codec and level give the same bytes)."""
    if codec == StreamCodec.ZSTD:
        compressor = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        return compressor.compress(data)
    if codec == StreamCodec.DEFLATE:
        return zlib.compress(data, level)
    raise UsageError(f"stream codec {codec!r} does not compress packed bytes")


def decompress(data: bytes, codec: StreamCodec, size: int, what: str = "stream") -> bytes:
    """Decompress ``data``, which must hold exactly one complete stream of exactly ``size`` bytes.

    Never produces (or allocates for) more than ``size`` bytes, whatever ``data`` claims. ``what`` names
    the stream in error messages.
    """
    if codec == StreamCodec.ZSTD:
        return _zstd_decompress(data, size, what)
    if codec == StreamCodec.DEFLATE:
        return _deflate_decompress(data, size, what)
    raise FormatError(f"{what}: stream codec {codec!r} does not hold packed bytes")


def _zstd_decompress(data: bytes, size: int, what: str) -> bytes:
    # zstandard sizes its output from the frame's content size and ignores max_output_size when the
    # frame has one, so check the declared size first: a frame that claims more is rejected unread.
    try:
        declared = zstandard.get_frame_parameters(data).content_size
    except zstandard.ZstdError as err:
        raise FormatError(f"{what}: not a zstd frame ({err})") from None
    if declared != size:
        shown = "no size" if declared == zstandard.CONTENTSIZE_UNKNOWN else f"{declared} bytes"
        raise FormatError(f"{what}: zstd frame declares {shown}, expected {size} bytes")
    try:
        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as err:
        raise FormatError(f"{what}: corrupt zstd data ({err})") from None
    if len(out) != size:
        raise FormatError(f"{what}: decompressed to {len(out)} bytes, expected {size}")
    return out


def _deflate_decompress(data: bytes, size: int, what: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        # One byte of headroom: a stream that is longer than `size` shows up as len(out) > size.
        out = inflater.decompress(data, size + 1)
    except zlib.error as err:
        raise FormatError(f"{what}: corrupt deflate data ({err})") from None
    if len(out) > size:
        raise FormatError(f"{what}: decompresses to more than the expected {size} bytes")
    if len(out) < size:
        raise FormatError(f"{what}: decompresses to {len(out)} bytes, expected {size}")
    if not inflater.eof or inflater.unconsumed_tail:
        raise FormatError(f"{what}: deflate stream is incomplete")
    if inflater.unused_data:
        raise FormatError(f"{what}: {len(inflater.unused_data)} bytes after the end of the deflate stream")
    return out

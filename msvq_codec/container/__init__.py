"""The .msvq container: a header and, per latent level, the compressed bit-packed codebook indices.

The byte layout is specified in :mod:`msvq_codec.container.format` (and, for users, in docs/FORMAT.md).
"""

from msvq_codec.container.format import (
    FORMAT_VERSION,
    MAGIC,
    MAX_INDICES,
    MAX_LEVELS,
    MAX_STREAM_BYTES,
    NO_ENTROPY_ID,
    QUALITY_PRESETS,
    READ_VERSIONS,
    Container,
    Header,
    LevelInfo,
    from_bytes,
    max_context_stream,
    read_container,
    read_header,
    to_bytes,
    write_container,
)
from msvq_codec.container.streams import (
    CODEC_LEVELS,
    RANGE_CODED,
    StreamCodec,
    default_level,
    index_bits,
    pack_indices,
    packed_size,
    unpack_indices,
)

__all__ = [
    "CODEC_LEVELS",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_INDICES",
    "MAX_LEVELS",
    "MAX_STREAM_BYTES",
    "NO_ENTROPY_ID",
    "QUALITY_PRESETS",
    "RANGE_CODED",
    "READ_VERSIONS",
    "Container",
    "Header",
    "LevelInfo",
    "StreamCodec",
    "default_level",
    "from_bytes",
    "max_context_stream",
    "index_bits",
    "pack_indices",
    "packed_size",
    "read_container",
    "read_header",
    "to_bytes",
    "unpack_indices",
    "write_container",
]

"""Shared test helper: damaged copies of a range-coded stream, and the check every decoder must pass on them."""

from typing import Callable

import numpy as np

from msvq_codec.errors import FormatError


def damaged(stream: bytes, seed: int = 6) -> list[bytes]:
    """Every 4-byte truncation, every single-bit flip, a word appended or prepended, the last byte cut, empty,
    zeros, all ones, and random words of 1 to 39 u32s."""
    rng = np.random.default_rng(seed)
    variants = [stream[:cut] for cut in range(0, len(stream), 4)]
    for bit in range(len(stream) * 8):
        flipped = bytearray(stream)
        flipped[bit // 8] ^= 1 << (bit % 8)
        variants.append(bytes(flipped))
    variants += [stream + b"\x01\x00\x00\x00", b"\x01\x00\x00\x00" + stream, stream[:-1], b"", bytes(8), b"\xff" * 64]
    variants += [rng.integers(1, 2**32, size=n, dtype=np.uint32).astype("<u4").tobytes() for n in range(1, 40)]
    return variants


def clean_errors(decode: Callable[[bytes], np.ndarray], variants: list[bytes], shape: tuple, k: int) -> int:
    """Decode every variant: each must give one FormatError of one line, or a uint16 grid of exactly ``shape``
    with codes below ``k`` (never another exception or a wrong-sized grid). Returns how many gave an error."""
    errors = 0
    for data in variants:
        try:
            grid = decode(data)
        except FormatError as err:
            assert "\n" not in str(err)
            errors += 1
            continue
        assert grid.shape == shape and grid.dtype == np.uint16 and int(grid.max()) < k
    return errors

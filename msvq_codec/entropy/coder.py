"""Range coding (rANS, by ``constriction``) of one level's index grid with the context model's tables.

Stream of a level (what the container stores for codec ``context``): the ANS coder's compressed words, u32
little-endian. Symbols are popped in this order, for each latent frame ``f`` of the level in file order
(``context.frames_of``):

1. for every position of the frame in C order, its *choice* ``c`` in ``0..M``: candidate ``c`` of its row
   (``cand[slot, c]``), or ``M`` = escape; probabilities ``freq[slot] / 2**16``;
2. then, for each escaped position in C order, its code in ``0..K-1``; probabilities ``escape / 2**20``.

The decoder computes frame ``f``'s rows from frames ``f - 1`` and ``f - 2``, which it already has. After the
last symbol the coder must be exactly empty. A stream that is not is refused; any stream, however made, can
only ever produce indices inside the codebook, and exactly as many as the header says.
"""

from __future__ import annotations

import numpy as np

from msvq_codec.entropy.context import all_rows, frames_of, rows_of
from msvq_codec.entropy.tables import CAND_BITS, ESCAPE_BITS, LevelTables
from msvq_codec.errors import FormatError


def load_constriction():
    """The ``constriction`` module, imported on first use (not when msvq starts)."""
    import constriction

    return constriction


def open_stream(data: bytes, what: str):
    """An ANS decoder over a level's stream of u32 words; FormatError for bytes that are not one. (Shared with
    ``prior_coder``: both codecs frame their streams alike.)"""
    if len(data) % 4:
        raise FormatError(f"{what}: {len(data)} bytes is not a whole number of 32-bit words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
        return load_constriction().stream.stack.AnsCoder(words)
    except (ValueError, RuntimeError) as err:
        raise FormatError(f"{what}: not a range-coded stream ({err})") from None


def close_stream(coder, frames: np.ndarray, k: int, what: str) -> None:
    """FormatError unless the decoder is exactly empty and every decoded index ``frames`` holds is below ``k``."""
    if not coder.is_empty():
        raise FormatError(f"{what}: corrupt range-coded data ({coder.num_bits()} bits left after the last index)")
    if frames.size and int(frames.max()) >= k:  # cannot happen; never pass it on
        raise FormatError(f"{what}: decoded an index outside the codebook")


class LevelCoder:
    """Encode and decode one level with its tables (the constriction models are built once)."""

    def __init__(self, tables: LevelTables):
        c = load_constriction()
        self.tables = tables
        self.k = tables.codebook_size
        self.m = tables.n_candidates
        self.probs = tables.freq.astype(np.float64) / float(1 << CAND_BITS)  # exact: integers over 2**16
        self.family = c.stream.model.Categorical(perfect=False)
        self.escape = c.stream.model.Categorical(tables.escape.astype(np.float64) / float(1 << ESCAPE_BITS),
                                                 perfect=False)  # fmt: skip

    # ---- the choices ---------------------------------------------------------------------------------
    def _choices(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slots, choices) of every position of ``frames [F, h, w]``, flattened per frame: ``[F, h * w]``."""
        n_frames = frames.shape[0]
        slots = self.tables.row_slot[all_rows(frames, self.k)].reshape(n_frames, -1)
        flat = frames.reshape(n_frames, -1)
        choices = np.empty(slots.shape, np.int64)
        step = max(1, (1 << 21) // max(1, slots.shape[1] * self.m))  # bounds the [frames, n, M] temporaries
        for a in range(0, n_frames, step):
            match = self.tables.cand[slots[a : a + step]] == flat[a : a + step, :, None]  # [f, n, M]
            choices[a : a + step] = np.where(match.any(-1), match.argmax(-1), self.m)
        return slots, choices

    def index_bits(self, grid: np.ndarray) -> np.ndarray:
        """What each index of ``grid [n_clips, t, h, w]`` costs under the tables, given the indices before it
        (as coded in one stream): -log2 p in bits, float64 of the grid's shape. (For rate control: a code that
        repeats its context is cheap.)"""
        grid = np.asarray(grid)
        frames = frames_of(grid).astype(np.int64)
        slots, choices = self._choices(frames)
        bits = -np.log2(self.tables.freq[slots, choices].astype(np.float64) / (1 << CAND_BITS))
        escaped = choices == self.m
        codes = frames.reshape(choices.shape)[escaped]
        bits[escaped] -= np.log2(self.tables.escape[codes].astype(np.float64) / (1 << ESCAPE_BITS))
        return bits.reshape(grid.shape)

    def ideal_bits(self, grid: np.ndarray) -> float:
        """-log2 of the probability the tables give ``grid [n_clips, t, h, w]`` (as coded in one stream)."""
        return float(self.index_bits(grid).sum())

    # ---- coding --------------------------------------------------------------------------------------
    def encode(self, grid: np.ndarray) -> bytes:
        """``grid [n_clips, t, h, w]`` (codes < K) -> the level's stream."""
        c = load_constriction()
        frames = frames_of(np.asarray(grid)).astype(np.int64)
        slots, choices = self._choices(frames)
        flat = frames.reshape(choices.shape)
        coder = c.stream.stack.AnsCoder()
        for f in range(frames.shape[0] - 1, -1, -1):  # a stack: push the last frame first
            escaped = flat[f][choices[f] == self.m]
            if escaped.size:
                coder.encode_reverse(escaped.astype(np.int32), self.escape)
            coder.encode_reverse(choices[f].astype(np.int32), self.family, self.probs[slots[f]])
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, shape: tuple[int, int, int, int], what: str = "stream") -> np.ndarray:
        """The level's stream -> ``[n_clips, t, h, w]`` uint16; FormatError for a stream that is not one."""
        coder = open_stream(data, what)
        n, t, h, w = shape
        frames = np.empty((n * t, h, w), np.uint16)  # the output itself: 2 bytes an index, whatever the count
        none = np.full((h, w), self.k, np.int64)
        row_slot, cand = self.tables.row_slot, self.tables.cand
        try:
            for f in range(n * t):
                p1 = frames[f - 1].astype(np.int64) if f >= 1 else none
                p2 = frames[f - 2].astype(np.int64) if f >= 2 else none
                slots = row_slot[rows_of(p1, p2, self.k)].reshape(-1)
                choice = coder.decode(self.family, self.probs[slots]).astype(np.int64)
                escaped = choice == self.m
                values = cand[slots, np.minimum(choice, self.m - 1)].astype(np.int64)
                n_escaped = int(escaped.sum())
                if n_escaped:
                    values[escaped] = coder.decode(self.escape, n_escaped)
                frames[f] = values.reshape(h, w)
        except (ValueError, RuntimeError, OverflowError) as err:
            raise FormatError(f"{what}: corrupt range-coded data ({err})") from None
        close_stream(coder, frames, self.k, what)
        return frames.reshape(n, t, h, w)

"""Range coding (rANS, by ``constriction``) of one level's index grid with its learned prior (``prior``).

Stream of a level (what the container stores for codec ``prior``): the ANS coder's compressed words, u32
little-endian. Symbols are popped in this order: for each latent frame ``f`` of the level in file order
(``context.frames_of``), for each pass ``p`` of the frame (``prior.pass_map``), the codes of the positions of
that pass in C order, each with the integer frequencies ``IntegerPrior.frequencies`` of its tokens as pass
``p`` sees them (constriction's ``Categorical(perfect=False)`` rescales them to its 24-bit fixed point). A level with a coarser level above it (the bottom) reads that level's decoded grid.

After the last symbol the coder must be exactly empty. A stream that is not is refused; any stream, however
made, can only ever produce indices inside the codebook, and exactly as many as the header says.
"""

from __future__ import annotations

import numpy as np

from msvq_codec.entropy.coder import load_constriction, close_stream, open_stream
from msvq_codec.entropy.context import frames_of
from msvq_codec.entropy.prior import (
    Context, IntegerPrior, file_contexts, neighbour_index, one_thread, pass_map, set_current, tokens, tokens_all,
    upsample_parent,
)  # fmt: skip
from msvq_codec.errors import FormatError

_CHUNK_INDICES = 1 << 9  # positions whose [n, K] frequencies are built at once (their arrays stay in cache)


class PriorCoder:
    """Encode and decode one level with its integer prior."""

    def __init__(self, prior: IntegerPrior):
        self.prior = prior
        self.cfg = prior.config
        self.k = self.cfg.codebook_size
        self.family = load_constriction().stream.model.Categorical(perfect=False)

    def _parent(self, parent: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.cfg.parent_size:
            return None
        if parent is None:
            raise ValueError("this level's prior needs the coarser level's grid")
        return upsample_parent(np.asarray(parent), shape)

    def _ordered(self, grid: np.ndarray, parent: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Every index's tokens ``[N, 30]`` and code ``[N]``, in coding order (frame, pass, C order)."""
        grid = np.asarray(grid)
        frames = frames_of(grid).astype(np.int64)  # [F, h, w]
        ctx = file_contexts(frames, self.cfg.clip_t, self._parent(parent, grid.shape), self.k)
        tok = tokens_all(self.cfg, ctx)  # [F, h, w, 30]
        passes = pass_map(self.cfg.passes, *frames.shape[1:]).reshape(-1)
        order = np.argsort(passes, kind="stable")  # within a frame: pass, then C order
        n_frames = frames.shape[0]
        tok = tok.reshape(n_frames, -1, self.cfg.n_slots)[:, order].reshape(-1, self.cfg.n_slots)
        return tok, frames.reshape(n_frames, -1)[:, order].reshape(-1)

    def index_bits(self, grid: np.ndarray, parent: np.ndarray | None = None) -> np.ndarray:
        """What each index of ``grid [n_clips, t, h, w]`` costs under the prior given the indices before it
        (as coded in one stream): -log2 p in bits, float64 of the grid's shape."""
        with one_thread():
            return self._index_bits(np.asarray(grid), parent)

    def _index_bits(self, grid: np.ndarray, parent: np.ndarray | None) -> np.ndarray:
        tok, codes = self._ordered(grid, parent)
        bits = np.empty(len(codes))
        for a in range(0, len(codes), _CHUNK_INDICES):
            bits[a : a + _CHUNK_INDICES] = self.prior.index_bits(tok[a : a + _CHUNK_INDICES], codes[a : a + _CHUNK_INDICES])
        n_frames = grid.shape[0] * grid.shape[1]
        order = np.argsort(pass_map(self.cfg.passes, *grid.shape[2:]).reshape(-1), kind="stable")
        out = np.empty((n_frames, order.size))
        out[:, order] = bits.reshape(n_frames, -1)
        return out.reshape(grid.shape)

    def ideal_bits(self, grid: np.ndarray, parent: np.ndarray | None = None) -> float:
        return float(self.index_bits(grid, parent).sum())

    def encode(self, grid: np.ndarray, parent: np.ndarray | None = None) -> bytes:
        """``grid [n_clips, t, h, w]`` (codes < K) -> the level's stream."""
        with one_thread():
            return self._encode(grid, parent)

    def _encode(self, grid: np.ndarray, parent: np.ndarray | None) -> bytes:
        tok, codes = self._ordered(grid, parent)
        coder = load_constriction().stream.stack.AnsCoder()
        last = len(codes)
        while last > 0:  # a stack: push the last chunk first
            first = max(0, last - _CHUNK_INDICES)
            coder.encode_reverse(codes[first:last].astype(np.int32), self.family, self.prior.frequencies(tok[first:last]))
            last = first
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, shape: tuple[int, int, int, int], parent: np.ndarray | None = None,
               what: str = "stream") -> np.ndarray:
        """The level's stream -> ``[n_clips, t, h, w]`` uint16; FormatError for a stream that is not one."""
        with one_thread():
            return self._decode(data, shape, parent, what)

    def _decode(self, data: bytes, shape: tuple[int, int, int, int], parent: np.ndarray | None,
                what: str) -> np.ndarray:  # fmt: skip
        coder = open_stream(data, what)
        n, t, h, w = shape
        up = self._parent(parent, shape)
        frames = np.empty((n * t, h, w), np.uint16)
        none = np.full((1, h, w), self.k, np.int64)
        passes = pass_map(self.cfg.passes, h, w)
        where = [np.nonzero(passes == p) for p in range(self.cfg.passes)]  # (ys, xs) of each pass, C order
        around = [neighbour_index(h, w, ys, xs) for ys, xs in where]  # [n_p, 8] each, in the padded frame
        try:
            for f in range(n * t):
                p1 = frames[f - 1 : f].astype(np.int64) if f >= 1 else none
                p2 = frames[f - 2 : f - 1].astype(np.int64) if f >= 2 else none
                qc = np.full((1, h + 2, w + 2), self.k, np.int64)  # the frame, padded with NONE
                qc[:, 1:-1, 1:-1] = self.k + 1  # UNKNOWN: nothing decoded yet
                ctx = Context(p1, p2, qc[:, 1:-1, 1:-1], np.array([f % t]), up[f : f + 1] if up is not None else None)
                seen = tokens(self.cfg, ctx, 0)[0]  # [h, w, 30]: the frame's tokens as pass 0 sees them
                for p, (ys, xs) in enumerate(where):
                    tok = seen[ys, xs]  # [n_p, 30], C order
                    if p:  # what the passes before decoded
                        set_current(self.cfg, tok, qc.reshape(-1)[around[p]], p)
                    qc[0, 1 + ys, 1 + xs] = coder.decode(self.family, self.prior.frequencies(tok))
                frames[f] = qc[0, 1:-1, 1:-1]
        except (ValueError, RuntimeError, OverflowError) as err:
            raise FormatError(f"{what}: corrupt range-coded data ({err})") from None
        close_stream(coder, frames, self.k, what)
        return frames.reshape(n, t, h, w)

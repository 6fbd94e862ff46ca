"""The context of each index: what the decoder already has when it decodes a latent frame.

A level's indices are coded latent frame by latent frame, in file order: ``[n_clips, t, h, w]`` is read as
``n_clips * t`` frames of ``h x w``, so the first frame of a clip follows the last frame of the clip before
it. An index at ``(f, y, x)`` is predicted from the two frames before it at the same level, ``f - 1`` and
``f - 2`` (NONE before the first frame of the file), by a *context row*:

    prev    the code at (f - 1, y, x), or NONE (= K)
    static  1 if (f - 1, y, x) == (f - 2, y, x), 0 if not, 2 if either is NONE
    stat4   of the four neighbours (y +- 1, x +- 1) in frame f - 1: how many equal their code in f - 2
    same4   of the same four neighbours: how many equal ``prev``
    row     ((prev * 3 + static) * 5 + stat4) * 5 + same4,   0 <= row < 75 * (K + 1)

Neighbours beyond the frame's edge are the edge cell itself (edge replication). Everything is integer and
depends only on decoded codes, so the encoder can compute the rows of every frame in one vectorised call and
the decoder those of one frame at a time; both get identical rows on any machine. Measured on the dev set,
these contexts hold almost all of what the previous frames say (``benchmarks/entropy/entropy_models.py``); the
co-located top code adds nothing once ``prev`` is known, so each level is coded on its own.
"""

from __future__ import annotations

import numpy as np

N_STATIC = 3
N_COUNT = 5  # 0..4 neighbours
ROWS_PER_CODE = N_STATIC * N_COUNT * N_COUNT  # 75


def n_rows(codebook_size: int) -> int:
    """Context rows of a level with ``codebook_size`` codes (NONE included)."""
    return ROWS_PER_CODE * (codebook_size + 1)


def parent_row(rows: np.ndarray) -> np.ndarray:
    """The coarser context each row backs off to: ``prev * 3 + static``."""
    return rows // (N_COUNT * N_COUNT)


def prev_of(rows: np.ndarray) -> np.ndarray:
    """The ``prev`` code of each row (``K`` = NONE)."""
    return rows // ROWS_PER_CODE


def rows_of(p1: np.ndarray, p2: np.ndarray, none: int) -> np.ndarray:
    """Context rows of frames whose two previous frames are ``p1`` (f - 1) and ``p2`` (f - 2).

    ``p1``, ``p2``: int arrays ``[..., h, w]`` (any leading shape: one frame or a stack), ``none`` (= K) where
    a frame does not exist. Returns int64 rows of the same shape.
    """
    p1 = p1.astype(np.int64, copy=False)
    p2 = p2.astype(np.int64, copy=False)
    static = np.where((p1 == none) | (p2 == none), 2, (p1 == p2).astype(np.int64))
    pad = [(0, 0)] * (p1.ndim - 2) + [(1, 1), (1, 1)]
    q1 = np.pad(p1, pad, mode="edge")
    q2 = np.pad(p2, pad, mode="edge")
    h, w = p1.shape[-2:]
    stat4 = np.zeros(p1.shape, np.int64)
    same4 = np.zeros(p1.shape, np.int64)
    for dy, dx in ((0, 1), (1, 0), (1, 2), (2, 1)):
        n1 = q1[..., dy : dy + h, dx : dx + w]
        n2 = q2[..., dy : dy + h, dx : dx + w]
        stat4 += (n1 == n2) & (n2 != none)
        same4 += n1 == p1
    return ((p1 * N_STATIC + static) * N_COUNT + stat4) * N_COUNT + same4


def frames_of(grid: np.ndarray) -> np.ndarray:
    """``[n_clips, t, h, w]`` -> ``[n_clips * t, h, w]``: the level's latent frames in coding order."""
    n, t, h, w = grid.shape
    return grid.reshape(n * t, h, w)


def all_rows(frames: np.ndarray, none: int) -> np.ndarray:
    """The rows of every frame of ``frames [F, h, w]`` at once (what the encoder needs)."""
    p1 = np.full(frames.shape, none, np.int64)
    p2 = np.full(frames.shape, none, np.int64)
    p1[1:] = frames[:-1]
    p2[2:] = frames[:-2]
    return rows_of(p1, p2, none)

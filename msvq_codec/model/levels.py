"""How much each level of a model's codes carries, measured on the codes of many clips.

A level whose grid is the same for every clip carries nothing about the clips: the hierarchy has collapsed
onto the other level (HQ-VAE's "layer collapse"). Counting the codebook entries a level uses does not show
it (one grid can use dozens of entries); these do:

* ``level_use``: over a set of clips, how many distinct grids and distinct codes a level has, and the
  perplexity of its codes (the number of equally likely codes with the same entropy).
* ``most_common_grid`` and ``with_top``: every clip's top grid replaced by one fixed grid. Decoding both the
  real codes and these, the difference (in PSNR against the input, or between the two decodes) is what the top
  level adds to the picture: nothing, for a top level that is a constant.

Training's validation (``train.loop.validate``) and ``msvq bench`` report them per level.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np
import torch

from msvq_codec.model.vqvae import Codes


class LevelUse(NamedTuple):
    clips: int  # clips measured
    grids: int  # distinct grids among them (1: the level is the same for every clip)
    codes: int  # distinct codebook entries used
    perplexity: float  # exp of the entropy of the codes' distribution

    def to_dict(self) -> dict[str, float | int]:
        return self._asdict()


def level_use(indices: np.ndarray | torch.Tensor) -> LevelUse:
    """``indices`` [n_clips, t, h, w] of one level -> its ``LevelUse``."""
    a = np.ascontiguousarray(indices.cpu().numpy() if isinstance(indices, torch.Tensor) else indices)
    n = a.shape[0]
    flat = a.reshape(n, -1)  # [n, t*h*w]
    grids = len({row.tobytes() for row in flat})
    _, counts = np.unique(flat, return_counts=True)
    p = counts / counts.sum()
    return LevelUse(n, grids, int(len(counts)), float(math.exp(-(p * np.log(p)).sum())))


def most_common_grid(indices: np.ndarray | torch.Tensor) -> np.ndarray:
    """The grid [t, h, w] that most clips of ``indices`` [n_clips, t, h, w] have (the first such, on a tie)."""
    a = np.ascontiguousarray(indices.cpu().numpy() if isinstance(indices, torch.Tensor) else indices)
    rows = [row.tobytes() for row in a.reshape(a.shape[0], -1)]
    first = rows.index(Counter(rows).most_common(1)[0][0])
    return a[first].copy()


def with_top(codes: Codes, grid: np.ndarray | torch.Tensor) -> Codes:
    """``codes`` with every clip's top grid replaced by ``grid`` [t, h, w] (a two-level model's codes)."""
    if codes.top is None:
        raise ValueError("a single-level model has no top level")
    top = torch.as_tensor(np.asarray(grid), dtype=codes.top.dtype, device=codes.top.device)
    return Codes(top.expand_as(codes.top).clone(), codes.bottom)  # [b, t, h, w]


__all__ = ["LevelUse", "level_use", "most_common_grid", "with_top"]

"""Tests for msvq_codec.model.levels: what a level of codes carries, counted over clips; the top grid replaced
by the most common one; and the figures training's validation and msvq bench report with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from msvq_codec.model.levels import level_use, most_common_grid, with_top
from msvq_codec.model.vqvae import Codes


def grids(n: int, seed: int = 0, k: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, (n, 2, 3, 3)).astype(np.uint16)


def test_a_constant_level_has_one_grid_however_many_codes_it_uses():
    one = np.tile(np.arange(18, dtype=np.uint16).reshape(1, 2, 3, 3), (5, 1, 1, 1))  # [5, 2, 3, 3]
    use = level_use(one)
    assert (use.clips, use.grids, use.codes) == (5, 1, 18) and use.perplexity == pytest.approx(18.0)
    assert level_use(torch.from_numpy(one.astype(np.int64))) == use  # tensors too


def test_level_use_counts_grids_codes_and_perplexity():
    a = grids(6)
    a[3] = a[1]  # two clips alike
    use = level_use(a)
    assert use.grids == 5 and use.codes == len(np.unique(a))
    _, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    assert use.perplexity == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert 1 <= use.perplexity <= use.codes


def test_most_common_grid_and_with_top():
    a = grids(5)
    a[2] = a[4] = a[0]
    assert np.array_equal(most_common_grid(a), a[0])
    assert np.array_equal(most_common_grid(a[1:2]), a[1])
    codes = Codes(torch.from_numpy(a.astype(np.int64)), torch.zeros(5, 4, 6, 6, dtype=torch.int64))
    fixed = with_top(codes, a[1])
    assert fixed.top.shape == codes.top.shape and all(torch.equal(t, torch.from_numpy(a[1].astype(np.int64)))
                                                      for t in fixed.top)  # fmt: skip
    assert fixed.bottom is codes.bottom and fixed.top.dtype == torch.int64
    with pytest.raises(ValueError, match="no top level"):
        with_top(Codes(None, codes.bottom), a[1])

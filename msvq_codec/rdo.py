"""Rate control (``msvq encode --quality``): which code the encoder writes for each latent position.

The decoder only looks codes up, so the encoder may write any code. With the context-model entropy coder a
code that repeats its context is cheap and a surprising one dear; the encoder trades distortion for bits by
choosing, for each latent position, the code ``e`` of the whole codebook that minimises

    J(e) = w_level * ||z - e||^2 + lambda * bits(e)

``bits(e)`` is exactly what the range coder will spend on ``e`` (``-log2`` of its integer probability, as
``LevelCoder.index_bits`` counts it) given the codes already chosen: the context model predicts an index from
the two latent frames before it in file order, so the choice runs latent frame by latent frame in file order
(across clips and batches: a chooser serves one file), all positions of one latent frame at once.
``w_level ||z - e||^2`` estimates the pixel squared error (8-bit units, summed over the clip's RGB values)
the code costs: for the bottom level the latent distance predicts it well and ``w`` is fitted
(``benchmarks/rate-control/rdo_calibrate.py``); for the top level the latent distance does not predict the
pixel error (the bottom level, computed from the chosen top, makes up for most of it), so the top takes the
bottom's weight. Levels are ordered by the model: the top is chosen first and the bottom latent is then computed from
the *chosen* top codes (``MSVQVAE.encode``'s chooser).

Passes. One pass chooses each frame greedily. A second pass (every preset but max) revisits every frame in
order, given the frames before it as now chosen, shortlists each position's ``SHORTLIST`` cheapest codes by
``J`` and charges each also what it does to the next frame's codes (as chosen by the first pass): the bits of
the next frame's code at the same position and at its four neighbours, whose contexts it enters. On the dev
set it saved 2-4 % of the bits at equal or better PSNR at every lambda tried, for about half the encode speed
(``benchmarks/rate-control/history/rdo-sweep.json``).

lambda = 0 (``--quality max``, the default) is not a chooser at all: the codec then takes the model's nearest
codes, bit-identical to an encoder without rate control.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from msvq_codec.container import QUALITY_PRESETS
from msvq_codec.entropy import LevelCoder
from msvq_codec.entropy.context import N_COUNT, N_STATIC, rows_of
from msvq_codec.entropy.prior import Context, one_thread, pass_map, tokens, upsample_parent
from msvq_codec.entropy.prior_coder import PriorCoder
from msvq_codec.entropy.tables import CAND_BITS, ESCAPE_BITS
from msvq_codec.errors import UsageError

# Pixel squared error (8-bit units, summed over the RGB values of a clip) per unit of squared latent distance
# at the bottom level: the slope fitted by benchmarks/rate-control/rdo_calibrate.py on the dev set, with the
# weights shipped before these (model 4c901847: benchmarks/rate-control/history/rdo-calibrate.json). The top
# level takes the same weight (see the module docstring).
BOTTOM_WEIGHT = 3.561e4
SHORTLIST = 16  # codes per position the second pass weighs against the next frame
_NEIGHBOURS = ((-1, 0), (0, -1), (0, 1), (1, 0))  # the four neighbours of the context (entropy.context)


@dataclass(frozen=True)
class Preset:
    """A ``--quality`` preset: its name, its fixed id in the file header, its lambda (pixel squared error per
    bit) and its passes."""

    name: str
    id: int  # the header's quality field (container.QUALITY_PRESETS)
    rd_lambda: float
    passes: int


# Set on training footage (14 videos, never the dev set) with the prior's chooser, so that the presets spread
# over about 1.0, 0.75, 0.6, 0.4 and 0.3 of max's bits (benchmarks/rate-control/prior-sweep*.json and the
# README there): the lambdas landing on those fractions, to two significant figures. The context coder's
# chooser uses the same lambdas.
_LAMBDAS = {"max": 0.0, "high": 550.0, "medium": 1500.0, "low": 3800.0, "lowest": 5500.0}
_PASSES = {"max": 1, "high": 2, "medium": 2, "low": 2, "lowest": 2}
PRESETS = {name: Preset(name, id_, _LAMBDAS[name], _PASSES[name])
           for id_, name in QUALITY_PRESETS.items() if name in _LAMBDAS}  # fmt: skip
QUALITY_NAMES = tuple(PRESETS)
DEFAULT_QUALITY = "max"
TARGET_ID = next(id_ for id_, name in QUALITY_PRESETS.items() if name == "target")


def lambda_preset(rd_lambda: float) -> Preset:
    """The preset of a lambda that a search for a target rate found (``msvq_codec.target``): max at 0, else
    the header's ``target`` id with the presets' two passes."""
    if rd_lambda == 0:
        return PRESETS["max"]
    return Preset("target", TARGET_ID, float(rd_lambda), 2)


def preset(quality: str | Preset) -> Preset:
    """The preset called ``quality`` (UsageError naming the choices otherwise)."""
    if isinstance(quality, Preset):
        return quality
    if quality not in PRESETS:
        raise UsageError(f"quality must be one of {', '.join(QUALITY_NAMES)}, not {quality!r}", option="quality")
    return PRESETS[quality]


# ---- what each code costs -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LevelCosts:
    """A level's tables as bit costs: a code that is candidate ``i`` of its slot costs ``cand_bits[slot, i]``,
    any other code ``escape_base[slot] + escape_code[code]`` (exactly ``LevelCoder.index_bits``)."""

    k: int
    row_slot: np.ndarray  # int32 [rows]
    cand: np.ndarray  # int64 [S, M]
    cand_bits: np.ndarray  # float64 [S, M]
    escape_base: np.ndarray  # float64 [S]
    escape_code: np.ndarray  # float64 [K]

    @classmethod
    def of(cls, coder: LevelCoder) -> "LevelCosts":
        t = coder.tables
        m = t.n_candidates
        freq = t.freq.astype(np.float64)
        return cls(
            k=t.codebook_size, row_slot=t.row_slot, cand=t.cand.astype(np.int64),
            cand_bits=CAND_BITS - np.log2(freq[:, :m]), escape_base=CAND_BITS - np.log2(freq[:, m]),
            escape_code=ESCAPE_BITS - np.log2(t.escape.astype(np.float64)),
        )  # fmt: skip

    def all_codes(self, slots: np.ndarray) -> np.ndarray:
        """The bits of every code at positions of ``slots [n]``: ``[n, K]``."""
        bits = self.escape_base[slots][:, None] + self.escape_code[None, :]  # [n, K]
        bits[np.arange(len(slots))[:, None], self.cand[slots]] = self.cand_bits[slots]
        return bits

    def of_codes(self, slots: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The bits of ``codes`` at positions of ``slots`` (any equal shapes)."""
        cand = self.cand[slots]  # [..., M]
        match = cand == codes[..., None]
        hit = match.any(-1)
        which = match.argmax(-1)
        listed = np.take_along_axis(self.cand_bits[slots], which[..., None], -1)[..., 0]
        return np.where(hit, listed, self.escape_base[slots] + self.escape_code[codes])


def _neighbour_table(h: int, w: int) -> np.ndarray:
    """``[h * w, 4]``: the flat index of each position's four context neighbours, edge cells replicated (an
    out-of-frame neighbour is the position itself), as ``entropy.context.rows_of`` reads them."""
    y, x = np.divmod(np.arange(h * w), w)
    cols = [np.clip(y + dy, 0, h - 1) * w + np.clip(x + dx, 0, w - 1) for dy, dx in _NEIGHBOURS]
    return np.stack(cols, 1)


def lookahead_bits(costs: LevelCosts, cur: np.ndarray, before: np.ndarray, options: np.ndarray, nxt: np.ndarray,
                   nbr: np.ndarray) -> np.ndarray:  # fmt: skip
    """What each option costs the next frame. ``cur [n]``: the frame being chosen (as chosen so far), ``before
    [n]``: the frame before it (K = none), ``nxt [n]``: the frame after it, ``options [n, S]``: codes to try at
    each position. Returns ``[n, S]``: the bits of ``nxt`` at each position and its in-frame neighbours when
    that position of ``cur`` is the option and the rest of ``cur`` stays."""
    n, s = options.shape
    none = costs.k
    pos = np.arange(n)
    affected = np.concatenate([pos[:, None], nbr], 1)  # [n, 5]: the position and its neighbours
    inside = np.concatenate([np.ones((n, 1), bool), nbr != pos[:, None]], 1)  # [n, 5]: not an edge replica
    a = np.broadcast_to(affected[:, None, :], (n, s, 5))  # [n, S, 5]
    opt = options[:, :, None]  # [n, S, 1]
    centre = np.where(a == pos[:, None, None], opt, cur[a])  # [n, S, 5]: cur at each affected position
    around = nbr[a]  # [n, S, 5, 4]
    n1 = np.where(around == pos[:, None, None, None], opt[..., None], cur[around])  # [n, S, 5, 4]
    n2 = before[around]
    before_centre = before[a]
    static = np.where(before_centre == none, 2, (centre == before_centre).astype(np.int64))
    stat4 = ((n1 == n2) & (n2 != none)).sum(-1)
    same4 = (n1 == centre[..., None]).sum(-1)
    rows = ((centre * N_STATIC + static) * N_COUNT + stat4) * N_COUNT + same4  # [n, S, 5]
    bits = costs.of_codes(costs.row_slot[rows], nxt[a])  # [n, S, 5]
    return (bits * inside[:, None, :]).sum(-1)


# ---- the chooser ------------------------------------------------------------------------------------------


def latent_distortion(z: Tensor, embed: Tensor, weight: float) -> np.ndarray:
    """``weight ||z - e||^2`` of every latent of ``z [b, d, t, h, w]`` against every code ``e`` of ``embed [K, d]``,
    as float64 ``[b * t, h * w, K]``: the latent frames in file order."""
    b, d, t, h, w = z.shape
    flat = z.float().permute(0, 2, 3, 4, 1).reshape(b * t, h * w, d)  # [F, n, d]
    embed = embed.float()
    dist = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1))  # [F, n, K]
    return (weight * dist.clamp_min_(0)).cpu().numpy().astype(np.float64)


class RdChooser:
    """The ``Chooser`` of one file (``MSVQVAE.encode``): called per batch, per level (top first), it chooses
    the batch's codes in file order, carrying each level's last two latent frames over to the next batch."""

    def __init__(self, coders: dict[str, LevelCoder], rd_lambda: float, passes: int,
                 weights: dict[str, float] | None = None):  # fmt: skip
        self.costs = {level: LevelCosts.of(coder) for level, coder in coders.items()}
        self.rd_lambda = float(rd_lambda)
        self.passes = passes
        self.weights = weights or dict.fromkeys(coders, BOTTOM_WEIGHT)
        self.history: dict[str, np.ndarray] = {}  # level -> [2, n]: the two latent frames before the batch
        self.spent: dict[str, float] = dict.fromkeys(coders, 0.0)  # bits of the chosen codes (as the coder will)

    def __call__(self, level: str, z: Tensor, embed: Tensor) -> Tensor:
        b, d, t, h, w = z.shape
        costs = self.costs[level]
        distortion = latent_distortion(z, embed, self.weights[level])  # [F, n, K]
        history = self.history.get(level, np.full((2, h * w), costs.k, np.int64))
        codes = self._greedy(costs, distortion, history, (h, w))
        if self.passes > 1:
            codes = self._second_pass(costs, distortion, history, codes, (h, w))
        frames = np.concatenate([history, codes])  # [2 + F, n]
        self.history[level] = frames[-2:]
        self.spent[level] += float(sum(
            costs.of_codes(self._slots(costs, frames[f + 1], frames[f], (h, w)), frames[f + 2]).sum()
            for f in range(len(codes))
        ))  # fmt: skip
        return torch.from_numpy(codes.reshape(b, t, h, w)).to(z.device)

    @staticmethod
    def _slots(costs: LevelCosts, p1: np.ndarray, p2: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The slot of each position of a frame whose two previous frames are ``p1``, ``p2`` (flat [n])."""
        return costs.row_slot[rows_of(p1.reshape(shape), p2.reshape(shape), costs.k)].reshape(-1)

    def _greedy(self, costs: LevelCosts, distortion: np.ndarray, history: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
        """Each frame's codes minimising J given the frames before it: ``[F, n]`` int64."""
        frames = np.concatenate([history, np.empty(distortion.shape[:2], np.int64)])  # [2 + F, n]
        for f in range(distortion.shape[0]):
            slots = self._slots(costs, frames[f + 1], frames[f], shape)
            frames[f + 2] = (distortion[f] + self.rd_lambda * costs.all_codes(slots)).argmin(1)
        return frames[2:]

    def _second_pass(self, costs: LevelCosts, distortion: np.ndarray, history: np.ndarray, first: np.ndarray,
                     shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
        """Each frame again, in order: the SHORTLIST cheapest codes of each position, each charged also the
        bits it makes the next frame's (first-pass) codes cost."""
        nbr = _neighbour_table(*shape)
        frames = np.concatenate([history, first])  # [2 + F, n]
        n_frames, n = distortion.shape[:2]
        rows = np.arange(n)[:, None]
        for f in range(n_frames):
            slots = self._slots(costs, frames[f + 1], frames[f], shape)
            own = distortion[f] + self.rd_lambda * costs.all_codes(slots)  # [n, K]
            keep = min(SHORTLIST, costs.k)
            short = np.argpartition(own, keep - 1, axis=1)[:, :keep]  # [n, S]
            total = own[rows, short]
            if f + 1 < n_frames:
                total = total + self.rd_lambda * lookahead_bits(costs, frames[f + 2], frames[f + 1], short,
                                                                frames[f + 3], nbr)  # fmt: skip
            frames[f + 2] = short[rows[:, 0], total.argmin(1)]
        return frames[2:]


class PriorChooser:
    """The ``Chooser`` of one file coded with the learned prior: per batch, per level (top first), each latent
    frame in file order, pass by pass (``entropy.prior.pass_map``), every position's code minimising ``J``
    with ``bits(e)`` the prior's exact ``-log2 p`` given the codes chosen before it (earlier frames, earlier
    passes, and for the bottom the chosen top). One greedy pass: the prior already gives every code's bits."""

    def __init__(self, coders: dict[str, PriorCoder], rd_lambda: float, weights: dict[str, float] | None = None):
        self.coders = coders
        self.order = list(coders)  # coarse first: a level's parent is the one before it
        self.rd_lambda = float(rd_lambda)
        self.weights = weights or dict.fromkeys(coders, BOTTOM_WEIGHT)
        self.history: dict[str, np.ndarray] = {}  # level -> [2, h, w]: the two latent frames before the batch
        self.last: dict[str, np.ndarray] = {}  # level -> the batch's chosen grid [b, t, h, w]
        self.spent: dict[str, float] = dict.fromkeys(coders, 0.0)  # bits of the chosen codes (as the coder will)

    def __call__(self, level: str, z: Tensor, embed: Tensor) -> Tensor:
        b, d, t, h, w = z.shape
        coder = self.coders[level]
        cfg = coder.cfg
        distortion = latent_distortion(z, embed, self.weights[level])  # [F, n, K]
        i = self.order.index(level)
        parent = upsample_parent(self.last[self.order[i - 1]], (b, t, h, w)) if cfg.parent_size else None
        none = np.full((h, w), cfg.codebook_size, np.int64)
        frames = np.concatenate([self.history.get(level, np.stack([none, none])), np.empty((b * t, h, w), np.int64)])
        sels = [pass_map(cfg.passes, h, w) == p for p in range(cfg.passes)]
        with one_thread():
            self._choose(coder, distortion, frames, parent, sels, level, t)
        self.history[level] = frames[-2:]
        self.last[level] = frames[2:].reshape(b, t, h, w)
        return torch.from_numpy(frames[2:].reshape(b, t, h, w)).to(z.device)

    def _choose(self, coder: PriorCoder, distortion: np.ndarray, frames: np.ndarray, parent: np.ndarray | None,
                sels: list[np.ndarray], level: str, t: int) -> None:
        """Fill ``frames[2:]`` (``[F, h, w]`` after the two frames of history) with the chosen codes."""
        cfg = coder.cfg
        h, w = frames.shape[1:]
        for f in range(frames.shape[0] - 2):
            cur = np.full((1, h, w), cfg.codebook_size + 1, np.int64)
            ctx = Context(frames[f + 1][None], frames[f][None], cur, np.array([f % t]),
                          parent[f : f + 1] if parent is not None else None)  # fmt: skip
            for p, sel in enumerate(sels):
                freq = coder.prior.frequencies(tokens(cfg, ctx, p)[0][sel]).astype(np.float64)  # [n_p, K]
                bits = np.log2(freq.sum(1, keepdims=True)) - np.log2(freq)
                choice = (distortion[f][sel.reshape(-1)] + self.rd_lambda * bits).argmin(1)
                cur[0][sel] = choice
                self.spent[level] += float(bits[np.arange(len(choice)), choice].sum())
            frames[f + 2] = cur[0]


def chooser(coders: dict[str, LevelCoder] | dict[str, PriorCoder], quality: str | Preset) -> RdChooser | PriorChooser | None:
    """The chooser of one file at ``quality`` for the codec of ``coders`` (the context model's or the prior's);
    None for lambda 0: the model's nearest codes."""
    chosen = preset(quality)
    if chosen.rd_lambda == 0:
        return None
    if all(isinstance(c, PriorCoder) for c in coders.values()):
        return PriorChooser(coders, chosen.rd_lambda)
    return RdChooser(coders, chosen.rd_lambda, chosen.passes)


__all__ = ["BOTTOM_WEIGHT", "DEFAULT_QUALITY", "PRESETS", "QUALITY_NAMES", "TARGET_ID", "LevelCosts", "Preset",
           "PriorChooser", "RdChooser", "chooser", "lambda_preset", "lookahead_bits", "preset"]  # fmt: skip

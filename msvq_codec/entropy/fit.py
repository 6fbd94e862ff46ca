"""Fitting the context model: smoothed counts with backoff, then integer tables.

For each level, the training grids' indices are counted in four nested contexts (``context``):

    stage 0   none                     the unigram, add-1/2
    stage 1   prev                     (K + 1 contexts)
    stage 2   prev, static             (parent_row)
    stage 3   prev, static, stat4, same4   (the row)

and each stage backs off to the one before it (interpolated, as Witten-Bell):

    p_k(x | c) = (n_k(c, x) + b_k(c) p_{k-1}(x | c')) / (N_k(c) + b_k(c)),   b_k(c) = a_k + s_k D_k(c)

(``n`` counts, ``N`` their sum, ``D`` the distinct codes seen in ``c``). ``(a_k, s_k)`` are chosen per stage
from ``SMOOTHING`` by held-out code length: counts from four fifths of the training videos, scored on the last
fifth (every fifth video), two coordinate passes. The final counts use every training video. Then every context
seen in training (at stage 3 only those seen ``min_count`` times or more) gets a slot holding the top
``MAX_CANDIDATES`` codes of its smoothed distribution and the escape mass, in integers (``tables``); a row
without a slot uses its nearest ancestor's. The escape table is the smoothed distribution of the codes that
escaped their rows in training.

Fitting is ordinary floating point and need not be bit-reproducible across machines: the integer tables it
writes are the model, and coding with them is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from msvq_codec.entropy.context import N_COUNT, ROWS_PER_CODE, all_rows, frames_of, n_rows
from msvq_codec.entropy.tables import (
    CAND_BITS, ESCAPE_BITS, MAX_CANDIDATES, EntropyModel, LevelTables,
)  # fmt: skip
from msvq_codec.errors import UsageError

# (a, s) pairs tried for each stage's backoff weight b = a + s * D.
SMOOTHING = ((0.003, 0.0), (0.01, 0.0), (0.03, 0.0), (0.1, 0.0), (0.3, 0.0), (1.0, 0.0), (3.0, 0.0),
             (10.0, 0.0), (30.0, 0.0), (100.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 8.0),
             (0.0, 16.0))  # fmt: skip
DEFAULT_MIN_COUNT = 8
N_STAGES = 3  # context stages above the unigram


def stage_contexts(rows: np.ndarray) -> list[np.ndarray]:
    """The context id of each symbol at stages 1..3 (coarse to fine)."""
    return [rows // ROWS_PER_CODE, rows // (N_COUNT * N_COUNT), rows]


@dataclass
class SparseCounts:
    """Counts of (context, code) pairs, sorted by context then code, with per-context totals."""

    k: int
    keys: np.ndarray  # context * K + code, sorted, unique
    counts: np.ndarray  # int64
    ctx: np.ndarray  # the contexts seen, sorted
    total: np.ndarray  # N(c)
    distinct: np.ndarray  # D(c)

    @classmethod
    def of(cls, context: np.ndarray, x: np.ndarray, k: int) -> "SparseCounts":
        keys, counts = np.unique(context * k + x, return_counts=True)
        ctx_of_key = keys // k
        ctx, first, distinct = np.unique(ctx_of_key, return_index=True, return_counts=True)
        total = np.add.reduceat(counts, first) if len(counts) else np.zeros(0, np.int64)
        return cls(k, keys, counts.astype(np.int64), ctx, total.astype(np.int64), distinct.astype(np.int64))

    def at(self, context: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n(c, x), N(c), D(c)) for each pair, 0 where unseen."""
        key = context * self.k + x
        i = np.minimum(np.searchsorted(self.keys, key), max(len(self.keys) - 1, 0))
        n = np.where(self.keys[i] == key, self.counts[i], 0) if len(self.keys) else np.zeros(len(key), np.int64)
        j = np.minimum(np.searchsorted(self.ctx, context), max(len(self.ctx) - 1, 0))
        seen = self.ctx[j] == context if len(self.ctx) else np.zeros(len(key), bool)
        return n, np.where(seen, self.total[j], 0), np.where(seen, self.distinct[j], 0)

    def dense(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counts [len(contexts), K], N, D) for the given contexts."""
        out = np.zeros((len(contexts), self.k), np.float64)
        lo = np.searchsorted(self.keys, contexts * self.k)
        hi = np.searchsorted(self.keys, (contexts + 1) * self.k)
        lengths = hi - lo
        rows = np.repeat(np.arange(len(contexts)), lengths)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(contexts) else np.zeros(0, np.int64)
        out[rows, self.keys[idx] % self.k] = self.counts[idx]
        j = np.minimum(np.searchsorted(self.ctx, contexts), max(len(self.ctx) - 1, 0))
        seen = self.ctx[j] == contexts
        return out, np.where(seen, self.total[j], 0), np.where(seen, self.distinct[j], 0)


def _weight(smoothing: tuple[float, float], distinct: np.ndarray) -> np.ndarray:
    a, s = smoothing
    return np.maximum(a + s * distinct, 1e-9)


class Counts:
    """Counts of codes ``x`` in nested contexts (one context array per stage, coarse to fine), and the
    smoothed probabilities they give."""

    def __init__(self, contexts: Sequence[np.ndarray], x: np.ndarray, k: int):
        self.k = k
        self.unigram = (np.bincount(x, minlength=k) + 0.5) / (len(x) + 0.5 * k)
        self.stages = [SparseCounts.of(c, x, k) for c in contexts]

    def prob(self, contexts: Sequence[np.ndarray], x: np.ndarray, smoothing: Sequence[tuple[float, float]]) -> np.ndarray:
        """p(x | contexts) for each symbol."""
        p = self.unigram[x]
        for counts, ctx, sm in zip(self.stages, contexts, smoothing):
            n, total, distinct = counts.at(ctx, x)
            b = _weight(sm, distinct)
            p = (n + b * p) / (total + b)
        return p

    def dense(self, contexts: Sequence[np.ndarray], smoothing: Sequence[tuple[float, float]]) -> np.ndarray:
        """The full smoothed distributions ``[n, K]`` given the first ``len(contexts)`` stages' contexts."""
        n_rows_ = len(contexts[0]) if contexts else 1
        p = np.broadcast_to(self.unigram, (n_rows_, self.k)).copy()
        for counts, ctx, sm in zip(self.stages, contexts, smoothing):
            n, total, distinct = counts.dense(ctx)
            b = _weight(sm, distinct)[:, None]
            p = (n + b * p) / (total[:, None] + b)
        return p


def tune_smoothing(
    train: Counts, contexts: Sequence[np.ndarray], x: np.ndarray, passes: int = 2
) -> list[tuple[float, float]]:
    """The ``SMOOTHING`` choice per stage that minimises the code length of (contexts, x) under ``train``."""
    chosen = [(0.0, 1.0)] * len(contexts)
    for _ in range(passes):
        for stage in range(len(contexts)):
            def cost(sm):
                trial = chosen[:stage] + [sm] + chosen[stage + 1 :]
                return float(-np.log2(train.prob(contexts, x, trial)).mean())
            chosen[stage] = min(SMOOTHING, key=cost)
    return chosen


def quantise_row(p: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``m`` codes of each distribution ``p [R, K]`` (most probable first, ties to the lower code) and
    integer frequencies ``[R, m + 1]`` (the escape last), each >= 1, summing to 2**CAND_BITS."""
    r, k = p.shape
    top = np.argpartition(-p, m - 1, axis=1)[:, :m] if m < k else np.broadcast_to(np.arange(k), (r, k)).copy()
    order = np.lexsort((top, -np.take_along_axis(p, top, 1)), axis=1)
    top = np.take_along_axis(top, order, 1)
    probs = np.take_along_axis(p, top, 1)
    esc = np.clip(1.0 - probs.sum(1, keepdims=True), 0.0, 1.0)
    full = np.concatenate([probs, esc], 1)
    freq = np.maximum(np.floor(full / full.sum(1, keepdims=True) * (1 << CAND_BITS)), 1).astype(np.int64)
    excess = freq.sum(1) - (1 << CAND_BITS)
    biggest = freq.argmax(1)
    freq[np.arange(r), biggest] -= excess  # the largest entry absorbs the rounding; it stays >= 1
    return top.astype(np.uint16), freq.astype(np.uint16)


def quantise_escape(counts: np.ndarray) -> np.ndarray:
    """Add-1/2 frequencies of escaped codes, as integers >= 1 summing to 2**ESCAPE_BITS."""
    p = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))
    freq = np.maximum(np.floor(p * (1 << ESCAPE_BITS)), 1).astype(np.int64)
    freq[freq.argmax()] -= freq.sum() - (1 << ESCAPE_BITS)
    return freq.astype(np.uint32)


def fit_level(
    videos: Sequence[np.ndarray], k: int, *, min_count: int = DEFAULT_MIN_COUNT, n_candidates: int = MAX_CANDIDATES, log=None
) -> tuple[LevelTables, dict[str, Any]]:
    """Tables for one level from the training videos' grids (``[n_clips, t, h, w]`` each, clips in order)."""
    say = log or (lambda message: None)
    per_video = []
    for grid in videos:
        frames = frames_of(np.asarray(grid)).astype(np.int64)
        if frames.size:
            per_video.append((all_rows(frames, k).reshape(-1), frames.reshape(-1)))
    if not per_video:
        raise UsageError("no training clips to fit the entropy model on")
    if any(int(x.max()) >= k for _, x in per_video):
        raise UsageError(f"an index is outside the codebook of {k}")
    held = [i % 5 == 4 for i in range(len(per_video))] if len(per_video) >= 5 else [False] * len(per_video)
    cat = lambda keep: tuple(np.concatenate([v[j] for v, h in zip(per_video, held) if h == keep] or [np.zeros(0, np.int64)])
                             for j in (0, 1))  # fmt: skip
    if any(held):
        (ra, xa), (rb, xb) = cat(False), cat(True)
        counts_a = Counts(stage_contexts(ra), xa, k)
        smoothing = tune_smoothing(counts_a, stage_contexts(rb), xb)
        held_out_bits = float(-np.log2(counts_a.prob(stage_contexts(rb), xb, smoothing)).mean())
        say(f"  smoothing {smoothing}: {held_out_bits:.3f} bits/index on the held-out fifth")
    else:
        smoothing, held_out_bits = [(0.0, 1.0)] * N_STAGES, None
    rows = np.concatenate([r for r, _ in per_video])
    x = np.concatenate([v for _, v in per_video])
    counts = Counts(stage_contexts(rows), x, k)

    # Slots: the root (unigram), every context seen at stages 1 and 2, stage-3 contexts seen >= min_count times.
    seen = [counts.stages[0].ctx, counts.stages[1].ctx,
            counts.stages[2].ctx[counts.stages[2].total >= max(min_count, 1)]]  # fmt: skip
    slot_rows: list[np.ndarray] = [np.array([n_rows(k) - 1])]  # any row: stage 0 ignores it
    slot_depth = [0]
    # A representative row for each context (its children all share the distribution at that depth).
    rep = [seen[0] * ROWS_PER_CODE, seen[1] * (N_COUNT * N_COUNT), seen[2]]
    for depth, r in enumerate(rep, start=1):
        slot_rows.append(r)
        slot_depth += [depth] * len(r)
    all_slot_rows = np.concatenate(slot_rows)
    depth_of = np.array(slot_depth)
    m = min(n_candidates, MAX_CANDIDATES, k)
    cand = np.zeros((len(all_slot_rows), m), np.uint16)
    freq = np.zeros((len(all_slot_rows), m + 1), np.uint16)
    chunk = max(1, (1 << 22) // k)
    for depth in range(N_STAGES + 1):
        idx = np.flatnonzero(depth_of == depth)
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            ctx = stage_contexts(all_slot_rows[part])[:depth]
            dist = counts.dense(ctx, smoothing) if depth else np.broadcast_to(counts.unigram, (len(part), k)).copy()
            cand[part], freq[part] = quantise_row(dist, m)

    # Every row -> the slot of its deepest stored ancestor.
    row_slot = np.zeros(n_rows(k), np.int32)
    all_rows_ids = np.arange(n_rows(k))
    for depth, (ctx_fn, ctxs) in enumerate(zip(
        (lambda r: r // ROWS_PER_CODE, lambda r: r // (N_COUNT * N_COUNT), lambda r: r), seen), start=1):  # fmt: skip
        first = 1 + sum(len(s) for s in seen[: depth - 1])
        pos = np.searchsorted(ctxs, ctx_fn(all_rows_ids))
        pos_c = np.minimum(pos, max(len(ctxs) - 1, 0))
        hit = (ctxs[pos_c] == ctx_fn(all_rows_ids)) if len(ctxs) else np.zeros(len(all_rows_ids), bool)
        row_slot = np.where(hit, first + pos_c, row_slot).astype(np.int32)

    tables = LevelTables(k, row_slot, cand, freq, np.ones(k, np.uint32))
    # The escape table: what escaped its row's candidates in training.
    slots = row_slot[rows]
    escaped = ~(cand[slots] == x[:, None]).any(1)
    escape = quantise_escape(np.bincount(x[escaped], minlength=k).astype(np.float64))
    tables = LevelTables(k, row_slot, cand, freq, escape)
    stats = {
        "training_indices": int(len(x)),
        "smoothing": [list(s) for s in smoothing],
        "held_out_bits_per_index": held_out_bits,
        "slots": int(len(all_slot_rows)),
        "escape_rate_train": float(escaped.mean()),
        "min_count": min_count,
    }
    say(f"  {len(x)} indices, {len(all_slot_rows)} slots, {escaped.mean():.1%} escape in training")
    return tables, stats


def fit_model(
    model_id: bytes,
    codebook_sizes: Sequence[int],
    videos: Iterable[Sequence[np.ndarray]],
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    n_candidates: int = MAX_CANDIDATES,
    provenance: dict[str, Any] | None = None,
    log=None,
) -> EntropyModel:
    """An entropy model from training videos, each given as its per-level grids (coarse first)."""
    videos = list(videos)
    levels, stats = [], []
    for i, k in enumerate(codebook_sizes):
        if log:
            log(f"level {i} (K = {k}):")
        tables, st = fit_level([v[i] for v in videos], k, min_count=min_count, n_candidates=n_candidates, log=log)
        levels.append(tables)
        stats.append(st)
    prov = dict(provenance or {})
    prov["levels"] = stats
    prov["training_videos"] = len(videos)
    model = EntropyModel(model_id, tuple(levels), prov)
    model.check()
    return model

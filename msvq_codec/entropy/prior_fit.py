"""Fitting a level's prior: a float network of the integer prior's shape (``prior``), trained by cross-entropy
on the training clips' index grids, then quantised to integers.

The float network mirrors the integer one layer for layer: a sum of per-slot embeddings, activations clamped to
``[0, CLAMP]`` (which quantise to 0..255), int8-able linear layers, copy gains added to the logits of the codes
the copy slots hold. Quantising (``quantise``): tables and biases are scaled to the integer units; each
linear layer's rows get their own int8 scale, carried by a per-unit multiplier over 2**24 in the hidden layer
and by a power of two (a shift) in the logits, which come out in 1/16 nat. Training is float and need not be
bit-reproducible: the integer prior it writes is the model, and coding with it is exact. Measured on the
shipped fit, quantising moved the training bits per index by 0.03 % (``fit_level`` logs both).

A level's training indices are those of every training clip, with a random half of the clip boundaries taken as
the start of a file (so the prior learns the first frame of a clip without a frame before it, as one file per
clip codes it, and with one, as a file per video does).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from msvq_codec.entropy.prior import (
    ACT_MAX, COPY_SLOTS, EXP_MAX, LOGIT_SCALE, N_COPY, REQ_SHIFT, TABLE_SHIFT, W_MAX, IntegerPrior, PriorConfig,
    file_contexts, tokens_all, upsample_parent,
)  # fmt: skip
from msvq_codec.entropy.context import frames_of

CLAMP = 4.0  # activations live in [0, CLAMP] (0..255 in integers)


@dataclass(frozen=True)
class PriorRecipe:
    """How a level's prior is shaped and fitted (saved in the prior's provenance)."""

    passes: int = 2  # parallel passes within a latent frame of a level with a parent (PriorConfig.passes)
    top_passes: int = 1  # the same for the coarsest level (1/64 of the indices: one pass decodes it quickly)
    hidden0: int = 128  # width of the table layer
    hidden1: int = 128  # width of the hidden layer
    epochs: float = 2.0  # passes over the training indices
    batch: int = 2048  # indices per Adam step
    lr: float = 2e-3  # Adam's learning rate, on a cosine schedule to 0
    file_starts: float = 0.5  # the share of clip boundaries fitted as the start of a file (one file per clip)
    seed: int = 0  # the initial weights, the sample order and which boundaries start a file
EXP_RANGE_NATS = 24  # the exp table covers logit gaps of 0..24 nats


class FloatPrior(nn.Module):
    def __init__(self, cfg: PriorConfig, unigram: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg
        vocab = cfg.vocab()
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(vocab)[:-1]]), dtype=torch.long))
        self.register_buffer("copy_slots", torch.tensor(COPY_SLOTS, dtype=torch.long))
        self.table = nn.Embedding(sum(vocab), cfg.hidden0)  # every slot's table, stacked
        nn.init.normal_(self.table.weight, 0.0, 0.5 / math.sqrt(cfg.n_slots))
        self.bias0 = nn.Parameter(torch.full((cfg.hidden0,), 0.5))
        self.l1 = nn.Linear(cfg.hidden0, cfg.hidden1)
        self.out = nn.Linear(cfg.hidden1, cfg.codebook_size)
        self.gain = nn.Linear(cfg.hidden1, N_COPY)
        nn.init.zeros_(self.out.weight)
        if unigram is not None:
            with torch.no_grad():
                self.out.bias.copy_(torch.log(torch.as_tensor(unigram, dtype=torch.float32)))
        nn.init.constant_(self.gain.bias, 2.0)

    def forward(self, tok: torch.Tensor) -> torch.Tensor:
        """``tok [n, 30]`` -> logits ``[n, K]`` in nats."""
        a0 = self.table(tok + self.offsets).sum(1) + self.bias0  # [n, 30, H0] -> [n, H0]
        h0 = a0.clamp(0.0, CLAMP)
        h1 = self.l1(h0).clamp(0.0, CLAMP)
        logit = self.out(h1)
        gain = self.gain(h1)  # [n, N_COPY]
        copy = tok[:, self.copy_slots]  # [n, N_COPY]
        real = copy < self.cfg.codebook_size
        return logit.scatter_add(1, copy.clamp(max=self.cfg.codebook_size - 1), gain * real)


def _round(x: np.ndarray, dtype) -> np.ndarray:
    return np.round(x).astype(dtype)


def quantise(model: FloatPrior) -> IntegerPrior:
    """The integer prior closest to ``model`` (see the module docstring)."""
    cfg = model.cfg
    one = ACT_MAX / CLAMP  # integer units per float unit of activation
    tables = model.table.weight.detach().double().numpy() * one * (1 << TABLE_SHIFT)
    pos_start = int(sum(cfg.vocab()[:27]))
    pos_end = pos_start + cfg.vocab()[27]
    tables[pos_start:pos_end] += model.bias0.detach().double().numpy() * one * (1 << TABLE_SHIFT)  # one pos token a row

    def layer(lin: nn.Linear, out_unit: float):
        """int8 weights [in, out], int32 bias, multiplier: float output = out_unit * ((acc + b) * m >> 24)."""
        w = lin.weight.detach().double().numpy()  # [out, in]
        b = lin.bias.detach().double().numpy()
        alpha = W_MAX / np.maximum(np.abs(w).max(1), 1e-8)  # per output unit
        wq = _round(w * alpha[:, None], np.int8)
        # acc = wq @ h_int  ~  alpha * one * (w @ h_float)
        bq = _round(b * alpha * one, np.int64)
        m = _round((1 << REQ_SHIFT) / (alpha * one * out_unit), np.int64)
        return wq.T.copy(), bq.astype(np.int32), m.astype(np.int32)

    def logit_layer(lin: nn.Linear):
        """int8 weights [in, out], int32 bias, shift: logits in 1/LOGIT_SCALE nat = (acc + b) >> s. A row's
        scale alpha is LOGIT_SCALE * 2**s / one, the largest that keeps its weights within -127..127."""
        w = lin.weight.detach().double().numpy()  # [out, in]
        b = lin.bias.detach().double().numpy()
        unit = LOGIT_SCALE / one
        shift = np.clip(np.floor(np.log2(W_MAX / (np.maximum(np.abs(w).max(1), 1e-8) * unit))), 0, 31)
        alpha = unit * 2.0**shift
        wq = _round(w * alpha[:, None], np.int8)
        bq = np.clip(_round(b * alpha * one, np.int64), -(1 << 22), 1 << 22)
        return wq.T.copy(), bq.astype(np.int32), shift.astype(np.uint8)

    w1, b1, m1 = layer(model.l1, 1.0 / one)
    w2, b2, s2 = logit_layer(model.out)
    wg, bg, sg = logit_layer(model.gain)
    n_exp = EXP_RANGE_NATS * LOGIT_SCALE
    exp_table = np.maximum(np.floor(float(EXP_MAX) * np.exp(-np.arange(n_exp) / LOGIT_SCALE)), 1).astype(np.uint32)
    tables = np.clip(np.round(tables), -(1 << 15) + 1, (1 << 15) - 1).astype(np.int16)
    prior = IntegerPrior(cfg, tables, w1, b1, m1, w2, b2, s2, wg, bg, sg, exp_table)
    problem = prior.problem()
    if problem:
        raise ValueError(f"quantised prior: {problem}")
    return prior


def level_samples(cfg: PriorConfig, runs: Sequence[np.ndarray], parents: Sequence[np.ndarray] | None,
                  starts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens ``[N, 30]`` int32 and codes ``[N]`` of every index of ``runs`` (each ``[n, t, h, w]``, one file's
    level), a file starting at every clip flagged in ``starts[i]`` (bool ``[n]``, the first always)."""
    toks, codes = [], []
    for i, run in enumerate(runs):
        cuts = list(np.flatnonzero(starts[i])) + [run.shape[0]]
        for a, b in zip(cuts, cuts[1:]):
            part = run[a:b]
            frames = frames_of(part)
            parent = upsample_parent(parents[i][a:b], part.shape) if parents is not None else None
            ctx = file_contexts(frames, cfg.clip_t, parent, cfg.codebook_size)
            toks.append(tokens_all(cfg, ctx).reshape(-1, cfg.n_slots).astype(np.int32))
            codes.append(frames.reshape(-1).astype(np.int64))
    return np.concatenate(toks), np.concatenate(codes)


def train_prior(cfg: PriorConfig, tok: np.ndarray, codes: np.ndarray, *, epochs: float = 2.0, batch: int = 2048,
                lr: float = 2e-3, seed: int = 0, log=None, val: tuple[np.ndarray, np.ndarray] | None = None) -> FloatPrior:
    """Train the float prior on ``tok [N, 30]`` -> ``codes [N]`` with Adam and a cosine schedule."""
    say = log or (lambda message: None)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    k = cfg.codebook_size
    unigram = (np.bincount(codes, minlength=k) + 0.5) / (len(codes) + 0.5 * k)
    model = FloatPrior(cfg, unigram)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(codes)
    steps = max(1, int(epochs * n / batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    tok_t = torch.from_numpy(tok.astype(np.int64))
    codes_t = torch.from_numpy(codes)
    started = time.time()
    step, running = 0, 0.0
    while step < steps:
        order = torch.from_numpy(rng.permutation(n))
        for a in range(0, n - batch + 1, batch):
            idx = order[a : a + batch]
            loss = nn.functional.cross_entropy(model(tok_t[idx]), codes_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = loss.item()
            running = 0.98 * running + 0.02 * value if step else value
            step += 1
            if step % 200 == 0 or step == steps:
                msg = f"  step {step}/{steps}: {running / math.log(2):.3f} bits/index ({time.time() - started:.0f} s)"
                if val is not None and (step % 1000 == 0 or step == steps):
                    msg += f", held out {float_bits(model, *val) / len(val[1]):.3f}"
                say(msg)
            if step >= steps:
                break
    return model


@torch.no_grad()
def float_bits(model: FloatPrior, tok: np.ndarray, codes: np.ndarray, chunk: int = 8192) -> float:
    """Total -log2 p of ``codes`` under the float model."""
    total = 0.0
    for a in range(0, len(codes), chunk):
        logit = model(torch.from_numpy(tok[a : a + chunk].astype(np.int64)))
        total += float(nn.functional.cross_entropy(logit, torch.from_numpy(codes[a : a + chunk]), reduction="sum"))
    return total / math.log(2)


def integer_bits(prior: IntegerPrior, tok: np.ndarray, codes: np.ndarray, chunk: int = 4096) -> float:
    """Total -log2 p of ``codes`` under the integer prior (the exact probabilities the coder uses)."""
    total = 0.0
    for a in range(0, len(codes), chunk):
        total += float(prior.index_bits(tok[a : a + chunk].astype(np.int64), codes[a : a + chunk]).sum())
    return total


def fit_level(cfg: PriorConfig, runs: Sequence[np.ndarray], parents: Sequence[np.ndarray] | None,
              recipe: PriorRecipe, log=None) -> tuple[IntegerPrior, dict[str, Any]]:
    """A level's integer prior from training runs of consecutive clips (``[n, t, h, w]`` each, one video's)."""
    say = log or (lambda message: None)
    rng = np.random.default_rng(recipe.seed)
    starts = []
    for run in runs:
        s = rng.random(run.shape[0]) < recipe.file_starts
        s[0] = True
        starts.append(s)
    tok, codes = level_samples(cfg, runs, parents, starts)
    if not len(codes):
        raise ValueError("no training indices")
    say(f"  {len(codes)} training indices")
    model = train_prior(cfg, tok, codes, epochs=recipe.epochs, batch=recipe.batch, lr=recipe.lr, seed=recipe.seed,
                        log=log)  # fmt: skip
    prior = quantise(model)
    sample = rng.choice(len(codes), size=min(len(codes), 200_000), replace=False)
    fb = float_bits(model, tok[sample], codes[sample]) / len(sample)
    ib = integer_bits(prior, tok[sample], codes[sample]) / len(sample)
    say(f"  training bits/index: {fb:.4f} float, {ib:.4f} integer")
    return prior, {"training_indices": int(len(codes)), "train_bits_float": fb, "train_bits_integer": ib}


def fit_model(model_id: bytes, codebook_sizes: Sequence[int], grids: Sequence[tuple[int, int, int]],
              runs: Sequence[Sequence[np.ndarray]], recipe: PriorRecipe = PriorRecipe(),
              provenance: dict[str, Any] | None = None, log=None):
    """The prior of every level (coarse first, each of ``codebook_sizes[i]`` entries on latent ``grids[i] = (t, h,
    w)``) from training runs, each given as its per-level grids; the bottom levels read the level above."""
    from msvq_codec.entropy.prior_file import PriorModel

    levels, stats = [], []
    for i, (t, h, w) in enumerate(grids):
        if log:
            log(f"level {i} (K = {codebook_sizes[i]}):")
        cfg = PriorConfig(codebook_size=codebook_sizes[i], parent_size=codebook_sizes[i - 1] if i else 0, clip_t=t,
                          height=h, width=w, passes=recipe.passes if i else recipe.top_passes, hidden0=recipe.hidden0,
                          hidden1=recipe.hidden1)  # fmt: skip
        parents = [r[i - 1] for r in runs] if i else None
        prior, st = fit_level(cfg, [r[i] for r in runs], parents, recipe, log)
        levels.append(prior)
        stats.append(st)
    prov = dict(provenance or {})
    prov.update(levels=stats, recipe=asdict(recipe), training_runs=len(runs))
    model = PriorModel(model_id, tuple(levels), prov)
    model.check()
    return model

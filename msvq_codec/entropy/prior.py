"""The learned prior of a level: an integer network that gives every index a distribution over all K codes from
what the decoder already has (the ``prior`` stream codec of .msvq version 3).

**Order.** A level's indices are coded latent frame by latent frame in file order, as the context coder codes
them (``context.frames_of``: ``[n_clips, t, h, w]`` read as ``n_clips * t`` frames of ``h x w``, so a clip's
first frame follows the last frame of the clip before it). Within a frame the positions are coded in
``passes`` parallel passes over a 2 x 2 pattern (``pass_map``): with 4 passes, first every (even y, even x),
then (odd, odd), then (even, odd), then (odd, even); with 2, a checkerboard; with 1, all at once. A pass sees
the codes of the passes before it.

**Inputs** (the *tokens* of a position (f, y, x), integers; ``tokens``): NONE (= K) stands for a frame that
does not exist or a place outside the frame, UNKNOWN (= K + 1) for a place of frame f not decoded yet.

    p1      9   the codes of frame f - 1 at the 3 x 3 around (y, x), C order        (vocabulary K + 2)
    p2      9   the same of frame f - 2                                              (K + 2)
    cur     8   frame f at the 8 neighbours (the 3 x 3 but its centre): the code, or UNKNOWN
    parent  1   the co-located code of the coarser level (levels that have one)      (its K)
    pos     1   (t * h + y) * w + x, the place in the clip (t: the frame within its clip)
    static  1   bit i set where p1[i] == p2[i] and both are codes (i in C order)     (512)
    passeq  1   pass * 256 + bit j set where cur[j] is decoded and equals p1 there   (passes * 256)

**The network** (every value an integer; ``IntegerPrior``):

    a0 = sum over slots of table[slot][token]                                  int16 tables, [H0] each
    h0 = clamp((a0 + 2**(S0 - 1)) >> S0, 0, 255)                                S0 = TABLE_SHIFT
    h1 = clamp(((h0 @ w1 + b1) * m1 + 2**23) >> 24, 0, 255)                     w1 int8 [H0, H1]
    L  = (h1 @ w2 + b2) >> s2                                                    w2 int8 [H1, K]: logits
    g  = (h1 @ wg + bg) >> sg                                                    wg int8 [H1, 10]: copy gains
    L[code of copy slot j] += g[j] for the 10 copy slots p1 centre, p1's 4 direct neighbours, p2 centre and
    cur's 4 direct neighbours, where that slot holds a code (several may add to one code)

(``>>`` is an arithmetic shift: floor division by a power of two.) ``L`` is in units of 1/LOGIT_SCALE nat.
The products ``h @ w`` are integer products (int8 x int8 summed in int32, the activations taken as ``h - 128``),
or, on a torch without them, float64 products of integers; ``problem`` bounds every sum below ``2**24``. Both are
exact, so every BLAS, summation order and thread count gives the same integers (``IntegerPrior._logits``).

**Probabilities.** ``freq[k] = exp_table[min(max(L) - L[k], len(exp_table) - 1)]``: integers from 1 to 2**24,
from a non-increasing table the prior stores (``exp_table[d] ~ 2**24 exp(-d / LOGIT_SCALE)``). The range
coder (``constriction``'s categorical model, exactly as the context coder uses it) receives these integers
and rescales them to its 24-bit fixed point itself: a deterministic function of the integers.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

TABLE_SHIFT = 6  # S0: the first layer's tables hold h0 * 2**6
REQ_SHIFT = 24  # the shift of every requantising multiply
LOGIT_SCALE = 16  # logits are in 1/16 nat
EXP_MAX = 1 << 24  # exp_table[0] at most: frequencies are integers 1..2**24 (exact in float32)
N_COPY = 10
ACT_MAX = 255
W_MAX = 127

_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # the 3 x 3, C order
_CUR = tuple(o for o in _OFFSETS if o != (0, 0))
_P1_AT_CUR = [i for i, o in enumerate(_OFFSETS) if o != (0, 0)]  # the p1 slots at the places of cur's
# Copy slots, as indices into the token vector: p1 centre, p1 up/left/right/down, p2 centre, cur up/left/right/down.
COPY_SLOTS = (4, 1, 3, 5, 7, 9 + 4, 18 + 1, 18 + 3, 18 + 4, 18 + 6)


@dataclass(frozen=True)
class PriorConfig:
    """The shape of one level's prior (saved with it)."""

    codebook_size: int  # K of this level
    parent_size: int  # K of the coarser level whose co-located code is an input; 0: no parent
    clip_t: int  # latent frames per clip at this level
    height: int  # latent frame height
    width: int  # latent frame width
    passes: int = 4  # parallel passes within a frame: 1, 2 (checkerboard) or 4 (2 x 2)
    hidden0: int = 128  # H0: width of the table layer
    hidden1: int = 128  # H1: width of the hidden layer

    def vocab(self) -> list[int]:
        """Vocabulary size of every token slot, in order."""
        k = self.codebook_size
        return ([k + 2] * 26 + [max(self.parent_size, 1), self.clip_t * self.height * self.width, 512,
                                self.passes * 256])  # fmt: skip

    @property
    def n_slots(self) -> int:
        return 30

    def problem(self) -> str | None:
        if self.passes not in (1, 2, 4):
            return f"passes must be 1, 2 or 4, not {self.passes}"
        if not 2 <= self.codebook_size <= 65536 or not 0 <= self.parent_size <= 65536:
            return "codebook sizes out of range"
        if min(self.clip_t, self.height, self.width) < 1 or self.clip_t * self.height * self.width > 1 << 20:
            return "latent sizes out of range"
        for name, h in (("hidden0", self.hidden0), ("hidden1", self.hidden1)):
            if not 1 <= h or h * ACT_MAX * W_MAX >= 1 << 24:
                return f"{name} {h} is too wide for exact float32 products"
        return None

    def to_dict(self) -> dict:
        return asdict(self)


def pass_map(passes: int, h: int, w: int) -> np.ndarray:
    """``[h, w]`` int: the pass of each position."""
    y, x = np.mgrid[0:h, 0:w]
    if passes == 1:
        return np.zeros((h, w), np.int64)
    if passes == 2:
        return (y + x) % 2
    return np.array([[0, 2], [3, 1]])[y % 2, x % 2]


class Context(NamedTuple):
    """What the decoder has for a stack of frames ``[n, h, w]`` (int64 each)."""

    p1: np.ndarray  # frame f - 1 (NONE where it does not exist)
    p2: np.ndarray  # frame f - 2
    cur: np.ndarray  # frame f, UNKNOWN where not decoded yet
    tpos: np.ndarray  # [n] the frame's index within its clip
    parent: np.ndarray | None  # the coarser level's codes, upsampled to [n, h, w]; None without a parent


def tokens(cfg: PriorConfig, ctx: Context, pass_index: int) -> np.ndarray:
    """``[n, h, w, 30]`` int64 tokens of every position, as seen in pass ``pass_index`` (see the docstring)."""
    k = cfg.codebook_size
    n, h, w = ctx.p1.shape
    out = np.empty((n, h, w, cfg.n_slots), np.int64)
    q1, q2, qc = (np.full((n, h + 2, w + 2), k, np.int64) for _ in range(3))  # NONE outside the frame
    for q, a in ((q1, ctx.p1), (q2, ctx.p2), (qc, ctx.cur)):
        q[:, 1:-1, 1:-1] = a
    for i, (dy, dx) in enumerate(_OFFSETS):
        out[..., i] = q1[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        out[..., 9 + i] = q2[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    out[..., 26] = ctx.parent if ctx.parent is not None else 0
    out[..., 27] = ctx.tpos[:, None, None] * (h * w) + np.arange(h * w).reshape(h, w)
    p1n, p2n = out[..., 0:9], out[..., 9:18]
    static = (p1n == p2n) & (p1n < k)  # [n, h, w, 9]
    out[..., 28] = static @ (1 << np.arange(9))
    around = np.stack([qc[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _CUR], axis=-1)  # [n, h, w, 8]
    set_current(cfg, out, around, pass_index)
    return out


def neighbour_index(h: int, w: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``[n, 8]``: where the 8 neighbours (``cur``'s slots, in order) of the positions ``(ys, xs)`` of an
    ``h x w`` frame are in the frame padded by one on each side, ``[h + 2, w + 2]`` read flat."""
    return np.stack([(1 + ys + dy) * (w + 2) + (1 + xs + dx) for dy, dx in _CUR], axis=-1)


def set_current(cfg: PriorConfig, out: np.ndarray, neighbours: np.ndarray, pass_index: int) -> None:
    """Fill the slots of the tokens ``out [..., 30]`` that depend on the current frame, where the others are
    filled already: ``cur`` from ``neighbours [..., 8]`` (the codes at the 8 neighbours, or UNKNOWN, or NONE
    outside the frame) and ``passeq``."""
    out[..., 18:26] = neighbours
    cur_n = out[..., 18:26]
    eq = (cur_n < cfg.codebook_size) & (cur_n == out[..., _P1_AT_CUR])
    out[..., 29] = pass_index * 256 + eq @ (1 << np.arange(8))


def file_contexts(frames: np.ndarray, clip_t: int, parent: np.ndarray | None, k: int) -> Context:
    """The context of every frame of one file's level ``frames [F, h, w]`` (coding order) with the whole
    current frame known (``cur`` is the frame itself; ``tokens_all`` hides what a pass cannot see).
    ``parent``: the coarser level's frames upsampled to ``[F, h, w]``, or None."""
    frames = frames.astype(np.int64, copy=False)
    p1 = np.full(frames.shape, k, np.int64)
    p2 = np.full(frames.shape, k, np.int64)
    p1[1:] = frames[:-1]
    p2[2:] = frames[:-2]
    tpos = np.arange(frames.shape[0]) % clip_t
    return Context(p1, p2, frames, tpos, parent)


def tokens_all(cfg: PriorConfig, ctx: Context) -> np.ndarray:
    """``[n, h, w, 30]`` tokens of every position of frames whose codes are all known (``ctx.cur``), each
    position as its own pass sees it (what the encoder computes in one go, and what fitting trains on)."""
    n, h, w = ctx.cur.shape
    passes = pass_map(cfg.passes, h, w)
    out = np.empty((n, h, w, cfg.n_slots), np.int64)
    for p in range(cfg.passes):
        seen = np.where(passes < p, ctx.cur, cfg.codebook_size + 1)
        sel = passes == p
        out[:, sel] = tokens(cfg, ctx._replace(cur=seen), p)[:, sel]
    return out


def upsample_parent(parent_frames: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The coarser level's grid ``[n, tt, ht, wt]`` repeated to this level's ``shape [n, t, h, w]`` and read
    as ``[n * t, h, w]`` frames."""
    up = parent_frames.astype(np.int64)
    for axis in (1, 2, 3):
        up = np.repeat(up, shape[axis] // parent_frames.shape[axis], axis=axis)
    n, t, h, w = shape
    return up.reshape(n * t, h, w)


@contextmanager
def one_thread():
    """Run the prior's torch ops on one thread (restoring the caller's count after): its matrices are small, and
    waking a second thread for each op costs more than it saves (measured: decoding 1.3-2x faster)."""
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


@dataclass(frozen=True, eq=False)
class IntegerPrior:
    """One level's prior in integers (see the module docstring)."""

    config: PriorConfig
    tables: np.ndarray  # int16 [sum(vocab), H0]: every slot's table, stacked in slot order
    w1: np.ndarray  # int8 [H0, H1]
    b1: np.ndarray  # int32 [H1]
    m1: np.ndarray  # int32 [H1]
    w2: np.ndarray  # int8 [H1, K]
    b2: np.ndarray  # int32 [K]
    s2: np.ndarray  # uint8 [K]: shifts, 0..31
    wg: np.ndarray  # int8 [H1, N_COPY]
    bg: np.ndarray  # int32 [N_COPY]
    sg: np.ndarray  # uint8 [N_COPY]
    exp_table: np.ndarray  # uint32 [R]: exp_table[d] ~ 2**24 exp(-d / LOGIT_SCALE), non-increasing, 1..2**24

    FIELDS = ("tables", "w1", "b1", "m1", "w2", "b2", "s2", "wg", "bg", "sg", "exp_table")

    def problem(self) -> str | None:
        """What is wrong with these arrays (the first thing found), or None."""
        c = self.config
        bad = c.problem()
        if bad:
            return bad
        k, h0, h1 = c.codebook_size, c.hidden0, c.hidden1
        want = {"tables": (np.int16, (sum(c.vocab()), h0)), "w1": (np.int8, (h0, h1)), "b1": (np.int32, (h1,)),
                "m1": (np.int32, (h1,)), "w2": (np.int8, (h1, k)), "b2": (np.int32, (k,)), "s2": (np.uint8, (k,)),
                "wg": (np.int8, (h1, N_COPY)), "bg": (np.int32, (N_COPY,)), "sg": (np.uint8, (N_COPY,))}  # fmt: skip
        for name, (dtype, shape) in want.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
                return f"{name} must be {np.dtype(dtype).name} {list(shape)}"
        for name in ("w1", "w2", "wg"):
            if int(np.abs(getattr(self, name).astype(np.int64)).max(initial=0)) > W_MAX:
                return f"{name} holds a weight outside -{W_MAX}..{W_MAX}"
        if int(self.m1.min()) < 0 or int(self.m1.max()) >= 1 << 28:
            return "m1 holds a multiplier outside 0..2**28 - 1"
        for name in ("s2", "sg"):
            if int(getattr(self, name).max(initial=0)) > 31:
                return f"{name} holds a shift over 31"
        if int(np.abs(self.b1.astype(np.int64)).max(initial=0)) >= 1 << 23:
            return "b1 holds a bias of 2**23 or more"
        reach = h1 * ACT_MAX * W_MAX  # the largest |h1 @ w|
        for name in ("b2", "bg"):
            if reach + int(np.abs(getattr(self, name).astype(np.int64)).max(initial=0)) >= 1 << 24:
                return f"{name} holds a bias too large for exact float32 sums"
        e = self.exp_table
        if not isinstance(e, np.ndarray) or e.dtype != np.uint32 or e.ndim != 1 or not 2 <= len(e) <= 1 << 16:
            return "exp_table must be uint32 [2..65536]"
        if int(e.min()) < 1 or int(e[0]) > EXP_MAX or (np.diff(e.astype(np.int64)) > 0).any():
            return "exp_table must be non-increasing, from 2**24 at most down to 1 at least"
        return None

    # ---- inference -----------------------------------------------------------------------------------
    # Two computations of the integer formulas of the module docstring, each exact, so they agree bit for bit:
    # integer matrix products (``torch._int_mm``: int8 x int8 summed in int32), where this torch has them for
    # the CPU, else float products on integer values that their float type holds exactly (``problem`` checks
    # the arrays' ranges for both).

    @cached_property
    def _arrays(self) -> dict:
        """The arrays as inference uses them, as torch tensors."""
        import torch

        w1, wo = self.w1.astype(np.int64), np.concatenate([self.w2, self.wg], axis=1).astype(np.int64)  # [H1, K + 10]
        bo = np.concatenate([self.b2, self.bg]).astype(np.int64)  # [K + 10]: biases
        so = np.concatenate([self.s2, self.sg]).astype(np.int64)  # [K + 10]: shifts
        # The int8 products take activations 0..255 as a - 128 in -128..127: a @ w = (a - 128) @ w + 128 colsum(w).
        half, scale = float(1 << (REQ_SHIFT - 1)), 2.0**-REQ_SHIFT
        arrays = {
            "tables": self.tables.astype(np.float32),
            "offsets": np.concatenate([[0], np.cumsum(self.config.vocab())[:-1]]).astype(np.int64),
            "exp": self.exp_table.astype(np.float32),
            # integer path
            "w1_i8": self.w1, "c1_i32": (128 * w1.sum(0) + self.b1).astype(np.int32),
            "m1_i64": self.m1.astype(np.int64),
            "wo_i8": wo.astype(np.int8), "co_i32": (128 * wo.sum(0) + bo).astype(np.int32),
            "so_i32": so.astype(np.int32),
            # float path: ((a + b) m + 2**23) >> 24 = floor(a m' + c'); (a + b) >> s = floor(a 2**-s + b 2**-s), the
            # shifts folded into the output layer's columns and bias (powers of two: exact)
            "w1_f64": w1.astype(np.float64), "m1_f64": self.m1 * scale,
            "c1_f64": (self.b1.astype(np.float64) * self.m1 + half) * scale,
            "wo_f64": wo * np.ldexp(1.0, -so)[None, :], "co_f64": bo * np.ldexp(1.0, -so),
        }  # fmt: skip
        out = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
        out["copy_slots"] = torch.tensor(COPY_SLOTS)
        return out

    def _logits(self, tok: np.ndarray):
        """``tok [n, 30]`` -> logits ``[n, K]`` (copy gains added), an int32 torch tensor.

        Exact, whatever the BLAS, thread count or batch: the tables sum below 2**20 in float32 (integers, exact);
        the integer path's int32 sums of int8 products stay below 2**31 (``H * 128 * 127``); the float path's
        products are float64 sums of integers below 2**53 (``problem`` bounds them below 2**24), and its shifts
        are multiplies by powers of two, then a floor."""
        import torch

        ar = self._arrays
        t = torch.from_numpy(np.ascontiguousarray(tok, dtype=np.int64))
        with torch.autocast("cpu", enabled=False):  # (the prior's tensors are on the CPU)
            a0 = torch.nn.functional.embedding_bag(t + ar["offsets"], ar["tables"], mode="sum")  # [n, H0]
            h0 = a0.int().add_(1 << (TABLE_SHIFT - 1)).bitwise_right_shift_(TABLE_SHIFT).clamp_(0, ACT_MAX)  # int32
            out = _int_layers(ar, h0) if _int_mm_works() else _float_layers(ar, h0)  # [n, K + N_COPY] int32
        k = self.config.codebook_size
        logit, gain = out[:, :k], out[:, k:]  # [n, K], [n, N_COPY] (views)
        copy = torch.index_select(t, 1, ar["copy_slots"])  # [n, N_COPY]
        logit.scatter_add_(1, copy.clamp(max=k - 1), gain.mul_(copy < k))
        return logit

    def logits(self, tok: np.ndarray) -> np.ndarray:
        """``tok [n, 30]`` -> logits ``[n, K]`` (copy gains added), int32."""
        return self._logits(tok).numpy()

    def frequencies(self, tok: np.ndarray) -> np.ndarray:
        """``tok [n, 30]`` -> ``[n, K]`` float32: integer frequencies 1..2**24 (what the range coder receives)."""
        import torch

        logit = self._logits(tok)
        gap = logit.amax(1, keepdim=True).sub(logit).clamp_(max=len(self.exp_table) - 1)  # [n, K] int32 >= 0
        return torch.index_select(self._arrays["exp"], 0, gap.view(-1)).view(gap.shape).numpy()

    def index_bits(self, tok: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """-log2 of the probability of ``codes [n]`` given ``tok [n, 30]`` (the ideal code length, float64)."""
        f = self.frequencies(tok)
        return np.log2(f.sum(1, dtype=np.float64)) - np.log2(f[np.arange(len(f)), codes].astype(np.float64))


def _int_layers(ar: dict, h0):
    """The two matrix layers in integers: ``h0 [n, H0]`` int32 0..255 -> ``[n, K + N_COPY]`` int32 (logits, then
    copy gains, before the copy gains are added)."""
    import torch

    a1 = torch._int_mm(h0.sub_(128).to(torch.int8), ar["w1_i8"]).add_(ar["c1_i32"])  # [n, H1] = h0 @ w1 + b1
    h1 = (a1 * ar["m1_i64"]).add_(1 << (REQ_SHIFT - 1)).bitwise_right_shift_(REQ_SHIFT).clamp_(0, ACT_MAX)  # int64
    out = torch._int_mm(h1.sub_(128).to(torch.int8), ar["wo_i8"]).add_(ar["co_i32"])  # [n, K + N_COPY]
    return out.bitwise_right_shift_(ar["so_i32"])


def _float_layers(ar: dict, h0):
    """``_int_layers`` in float64 arithmetic on integers (exact: see ``IntegerPrior._logits``), for a torch
    without CPU integer matrix products."""
    import torch

    a1 = torch.mm(h0.double(), ar["w1_f64"])  # [n, H1]
    h1 = torch.floor(a1 * ar["m1_f64"] + ar["c1_f64"]).clamp_(0, ACT_MAX)
    return torch.floor(torch.addmm(ar["co_f64"], h1, ar["wo_f64"])).int()


@functools.cache
def _int_mm_works() -> bool:
    """Whether this torch multiplies int8 matrices into int32 on the CPU (``torch._int_mm``), checked once
    against int64 arithmetic; else the prior uses its float path, which gives the same integers."""
    import torch

    if not hasattr(torch, "_int_mm"):
        return False
    a = torch.arange(-128, 127, 7, dtype=torch.int8).view(37, 1).repeat(1, 5)  # [37, 5]
    b = torch.arange(-127, 128, 11, dtype=torch.int8)[:20].view(5, 4)  # [5, 4]
    try:
        return bool(torch.equal(torch._int_mm(a, b).long(), a.long() @ b.long()))
    except RuntimeError:
        return False

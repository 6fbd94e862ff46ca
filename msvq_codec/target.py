"""A target rate (``msvq encode --target-bpp B`` / ``--target-kbps K``): the rate-control lambda that lands a
file within ``TOLERANCE`` of a target, found by search over the encoder's exact bits.

Rate control (``msvq_codec.rdo``) chooses codes by distortion + lambda x bits, so a file's size falls as
lambda grows, from the nearest codes' at lambda 0 (``--quality max``) down to where every position takes its
cheapest code. The search encodes the whole file at a lambda, counts the bytes the container really holds
(header and streams), and moves lambda until the file's bits per pixel are within 5 % of the target:

1. lambda 0 (max). A target at or above what max spends gives max (with a note when it is well above).
2. Upwards from ``LAMBDA_FIRST``, by steps that a first-guess slope of bits against lambda suggests (log-log,
   ``SLOPE``), until a file lands at or below the target. If even ``LAMBDA_MAX`` stays above, the target is
   out of reach: ``TargetUnreachable`` names the range that is (``LAMBDA_MAX``'s rate up to max's).
3. Between the last lambda above the target and the first below, interpolating log bits against log lambda
   (each guess kept inside the middle 80 % of the bracket), at most ``MAX_PROBES`` encodes in all.

A rate is not exactly monotone in lambda, and a very short file moves in steps; where no encode lands within
the tolerance the closest one is kept and a note says so. Each probe encodes the whole file again (the
model's encoder and the chooser), from clips read once and kept in a temporary file (``ClipSpool``): a
target costs a few encodes' time. The search itself knows nothing of models or files: ``search`` is given a
function from lambda to (bits per pixel, whatever the caller keeps).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from msvq_codec.errors import MsvqError, UsageError

TOLERANCE = 0.05  # a file within this share of the target is on target
LAMBDA_FIRST = 1500.0  # the first lambda tried after max (the medium preset's)
LAMBDA_MAX = 1e7  # far beyond every preset: in effect, every position its cheapest code
MAX_PROBES = 12  # encodes at most, max's included
SLOPE = -0.35  # d log(bits) / d log(lambda): the presets' rates on the dev set, as a first guess
MAX_STEP = 64.0  # lambda grows at most this much from one probe to the next while bracketing


class TargetUnreachable(MsvqError):
    """A target below the smallest file the codes of this input can make."""


@dataclass(frozen=True)
class Target:
    """A rate to aim for, in the unit the user gave it."""

    value: float  # the target, in ``unit``
    unit: str  # "bpp" (file bits over frames x clip pixels) | "kbps" (the same bits per second, at ``fps``)
    pixels_per_second: float  # frames per second x pixels per frame of the clips (16 x 64 x 64)

    @classmethod
    def of(cls, bpp: float | None, kbps: float | None, fps: float, pixels: int) -> "Target | None":
        """The target of ``--target-bpp`` or ``--target-kbps`` (None when neither is given); UsageError for
        both, or for a value that is not a positive finite number."""
        if bpp is not None and kbps is not None:
            raise UsageError("target_bpp and target_kbps are two ways to say one thing: give one", option="target_bpp")
        for name, value in (("target_bpp", bpp), ("target_kbps", kbps)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise UsageError(f"{name} must be a positive number, not {value!r}", option=name)
            return cls(float(value), name[len("target_"):], fps * pixels)
        return None

    @property
    def option(self) -> str:
        return f"target_{self.unit}"

    @property
    def bpp(self) -> float:
        return self.value if self.unit == "bpp" else self.value * 1000 / self.pixels_per_second

    def show(self, bpp: float) -> str:
        """A rate of ``bpp`` bits per pixel in this target's unit, e.g. ``0.0812 bpp`` or ``5.32 kbps``."""
        if self.unit == "bpp":
            return f"{bpp:.4f} bpp"
        kbps = bpp * self.pixels_per_second / 1000
        return f"{kbps:.2f} kbps" if kbps >= 0.1 else f"{kbps:.2g} kbps"


@dataclass
class Outcome:
    """What the search settled on."""

    rd_lambda: float  # 0.0: max (no rate control)
    bpp: float  # the file's bits per pixel at that lambda
    kept: Any  # what the probe function returned beside the rate, for that lambda
    probes: list[tuple[float, float]] = field(default_factory=list)  # every (lambda, bpp) tried, in order
    note: str | None = None  # for stderr: the target was above max, or could not be met within TOLERANCE


def search(rate_at: Callable[[float], tuple[float, Any]], target: Target) -> Outcome:
    """The lambda whose file lands within ``TOLERANCE`` of ``target``. ``rate_at(lambda)`` encodes the file and
    returns (its bits per pixel, anything to keep); ``TargetUnreachable`` if the target is below reach."""
    goal = target.bpp
    tried: dict[float, tuple[float, Any]] = {}

    def probe(lam: float) -> float:
        if lam not in tried:
            tried[lam] = rate_at(lam)
        return tried[lam][0]

    def done(lam: float, note: str | None = None) -> Outcome:
        return Outcome(lam, tried[lam][0], tried[lam][1], [(k, v[0]) for k, v in tried.items()], note)

    def on_target(bpp: float) -> bool:
        return abs(bpp - goal) <= TOLERANCE * goal

    top = probe(0.0)
    if top <= goal * (1 + TOLERANCE):
        above = not on_target(top)
        return done(0.0, f"note: the target {target.show(goal)} is above what quality max spends ({target.show(top)}): "
                         "wrote quality max" if above else None)  # fmt: skip
    lo, lam = 0.0, LAMBDA_FIRST  # lo: the largest lambda known to land above the target
    while probe(lam) > goal:
        if on_target(tried[lam][0]):
            return done(lam)
        lo = lam
        if lam >= LAMBDA_MAX:
            raise TargetUnreachable(
                f"{target.option} {target.show(goal)} is below what these codes can reach: {target.show(tried[lam][0])}"
                f" to {target.show(top)} (quality max)", option=target.option)  # fmt: skip
        step = math.exp(math.log(goal / tried[lam][0]) / SLOPE)
        lam = min(LAMBDA_MAX, lam * min(MAX_STEP, max(2.0, step)))
    hi = lam  # the smallest lambda known to land at or below the target
    while not on_target(tried[hi][0]) and len(tried) < MAX_PROBES:
        b_hi = tried[hi][0]
        if lo == 0.0:  # no lambda above the target but max: extrapolate down from hi
            guess = hi * min(1 / 1.5, max(1 / MAX_STEP, math.exp(math.log(goal / b_hi) / SLOPE)))
        else:
            x_lo, x_hi, y_lo, y_hi = math.log(lo), math.log(hi), math.log(tried[lo][0]), math.log(b_hi)
            share = (math.log(goal) - y_lo) / (y_hi - y_lo) if y_hi != y_lo else 0.5
            guess = math.exp(x_lo + min(0.9, max(0.1, share)) * (x_hi - x_lo))
        if probe(guess) > goal:
            if on_target(tried[guess][0]):
                return done(guess)
            lo = guess
        else:
            hi = guess
    if on_target(tried[hi][0]):
        return done(hi)
    best = min(tried, key=lambda k: abs(tried[k][0] - goal))
    return done(best, f"note: no rate within {TOLERANCE:.0%} of the target {target.show(goal)} was found in "
                      f"{len(tried)} encodes; wrote the closest, {target.show(tried[best][0])}")  # fmt: skip


class ClipSpool:
    """Clips read once from their source and kept in a temporary file, to be read again for every probe of a
    search (a pipe can be read only once; a video need not be decoded again). Iterate for the clips."""

    def __init__(self, clips: Iterable[np.ndarray]):
        self._file = tempfile.TemporaryFile(prefix="msvq-clips-")
        self.shape: tuple[int, ...] | None = None
        self.count = 0
        for clip in clips:
            clip = np.ascontiguousarray(clip, np.uint8)
            if self.shape is None:
                self.shape = clip.shape
            self._file.write(clip.tobytes())
            self.count += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shape is None:
            return
        size = int(np.prod(self.shape))
        self._file.seek(0)
        for _ in range(self.count):
            yield np.frombuffer(self._file.read(size), np.uint8).reshape(self.shape)  # [T, H, W, 3]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ClipSpool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LAMBDA_MAX", "TOLERANCE", "ClipSpool", "Outcome", "Target", "TargetUnreachable", "search"]

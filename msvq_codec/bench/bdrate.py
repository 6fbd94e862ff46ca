"""Bjontegaard delta rate (BD-rate): how many more (or fewer) bits a test codec spends than an anchor codec
for the same quality, averaged over the quality range both cover.

The standard method (G. Bjontegaard, VCEG-M33, 2001): fit log10(rate) as a cubic polynomial of quality for
each codec (``numpy.polyfit``), integrate both over the overlapping quality interval, and turn the mean
difference of log-rates back into a ratio::

    BD-rate = 10 ** ((integral(test) - integral(anchor)) / (q_hi - q_lo)) - 1

A value of +1.0 means the test codec needs twice the anchor's bits (+100 %), -0.5 half of them (-50 %).
Quality may be higher-is-better (PSNR) or lower-is-better (LPIPS): the fit does not care which.

A single learned model is one rate-distortion *point*, not a curve. With one test point the interval
shrinks to that point's quality and BD-rate becomes the rate difference at equal quality:
``rate_test / rate_anchor(q_test) - 1``, with the anchor's rate read off its cubic fit. That needs the point's
quality to lie inside the anchor's measured range (no extrapolation); outside it the answer is NaN with a note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MAX_DEGREE = 3  # cubic, as VCEG-M33


@dataclass(frozen=True)
class BDRate:
    value: float  # fraction: 1.0 = +100 % bits, -0.5 = -50 %; NaN when undefined
    method: str  # "cubic" (curve vs curve) or "single-point" (a point vs a curve)
    note: str | None = None  # why the value is NaN, or a caveat

    @property
    def percent(self) -> float:
        return 100.0 * self.value


def _points(rates: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with a positive rate, sorted by quality: (quality, log10 rate)."""
    r = np.asarray(rates, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    order = np.argsort(q[keep])
    return q[keep][order], np.log10(r[keep][order])


def _fit(q: np.ndarray, log_r: np.ndarray) -> np.poly1d:
    degree = min(MAX_DEGREE, len(np.unique(q)) - 1)
    return np.poly1d(np.polyfit(q, log_r, degree))


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
) -> BDRate:
    """BD-rate of the test codec against the anchor. Each needs at least 2 points of distinct quality (4 for
    a true cubic), except that the test may be a single point (see the module docstring)."""
    qa, ra = _points(anchor_rates, anchor_quality)
    qt, rt = _points(test_rates, test_quality)
    if len(np.unique(qa)) < 2:
        return BDRate(math.nan, "cubic", "the anchor has fewer than 2 usable rate-quality points")
    if len(qt) == 0:
        return BDRate(math.nan, "cubic", "the test has no usable rate-quality point")
    anchor = _fit(qa, ra)
    caveat = None if len(np.unique(qa)) > MAX_DEGREE else f"anchor fit of degree {len(np.unique(qa)) - 1} (< 4 points)"

    if len(np.unique(qt)) == 1:
        q = float(qt[0])
        if not qa[0] <= q <= qa[-1]:
            return BDRate(
                math.nan, "single-point",
                f"quality {q:.4g} lies outside the anchor's range [{qa[0]:.4g}, {qa[-1]:.4g}]: widen its CRF sweep",
            )  # fmt: skip
        return BDRate(float(10 ** (float(np.mean(rt)) - anchor(q)) - 1), "single-point", caveat)

    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not lo < hi:
        return BDRate(
            math.nan, "cubic",
            f"the quality ranges [{qa[0]:.4g}, {qa[-1]:.4g}] and [{qt[0]:.4g}, {qt[-1]:.4g}] do not overlap",
        )  # fmt: skip
    test = _fit(qt, rt)
    ia, it = anchor.integ(), test.integ()
    mean_diff = ((it(hi) - it(lo)) - (ia(hi) - ia(lo))) / (hi - lo)
    if (lo, hi) != (qt[0], qt[-1]) or (lo, hi) != (qa[0], qa[-1]):  # say over what the curves were compared
        span = (f"over the overlap [{lo:.4g}, {hi:.4g}] of the test's [{qt[0]:.4g}, {qt[-1]:.4g}] and the anchor's "
                f"[{qa[0]:.4g}, {qa[-1]:.4g}]")
        caveat = span if caveat is None else f"{span}; {caveat}"
    return BDRate(float(10**mean_diff - 1), "cubic", caveat)

"""Calibration of stated confidences: reliability bins, Brier score, expected calibration error.

Contract (pure functions; ``mast evaluate`` and the learned trainers use them, nothing
else computes calibration):

- Input: pairs (``p``, ``y``): a stated probability that an event happens (a mode is
  present; the root cause's step, or agent, is the gold one) and whether it did (0/1).
- Bins: :data:`BINS` equal-width bins over [0, 1] (the last one closed); each bin gives
  its ``n``, mean stated probability and observed frequency.  Empty bins are kept with
  ``n = 0`` and ``None`` figures, so a reader sees where there is no evidence at all, and
  ``n`` per bin says how much each point can be trusted (on tiny data, not much).
- ``brier``: mean of (p - y)²; ``ece``: Σ_bins (n_b / n) · |mean p_b − observed_b|
  (the usual equal-width ECE).  Both ``None`` when ``n == 0``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

BINS = 10


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    n: int
    mean_confidence: float | None
    observed: float | None


@dataclass
class Reliability:
    """Stated probability against observed frequency, over ``n`` (p, y) pairs."""

    n: int
    brier: float | None
    ece: float | None
    bins: list[Bin] = field(default_factory=list)
    #: what the probability is of, for a reader ("mode present", "root-cause step is gold")
    event: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bin_index(p: float, bins: int = BINS) -> int:
    return min(bins - 1, max(0, int(p * bins)))


def from_bins(counts: Sequence[tuple[int, float, float, float]], *, bins: int = BINS, event: str = "") -> Reliability:
    """From per-bin sums ``(n, sum p, sum y, sum (p - y)²)`` indexed by :func:`bin_index`
    (what a SQL GROUP BY returns; absent bins may be given as ``(0, 0, 0, 0)``)."""
    counts = list(counts) + [(0, 0.0, 0.0, 0.0)] * (bins - len(counts))
    n = sum(c[0] for c in counts)
    out, ece, sq = [], 0.0, 0.0
    for i, (k, sp, sy, se) in enumerate(counts[:bins]):
        lo, hi = i / bins, (i + 1) / bins
        if k:
            mp, my = sp / k, sy / k
            ece += k * abs(mp - my)
            sq += se
            out.append(Bin(round(lo, 4), round(hi, 4), int(k), _r(mp), _r(my)))
        else:
            out.append(Bin(round(lo, 4), round(hi, 4), 0, None, None))
    return Reliability(n, _r(sq / n) if n else None, _r(ece / n) if n else None, out, event)


def reliability(pairs: Iterable[tuple[float, float]], *, bins: int = BINS, event: str = "") -> Reliability:
    """:class:`Reliability` of (stated probability, outcome 0/1) pairs."""
    acc = [[0, 0.0, 0.0, 0.0] for _ in range(bins)]
    for p, y in pairs:
        p, y = float(p), float(y)
        a = acc[bin_index(p, bins)]
        a[0] += 1
        a[1] += p
        a[2] += y
        a[3] += (p - y) ** 2
    return from_bins([tuple(a) for a in acc], bins=bins, event=event)  # type: ignore[misc]


def _r(x: float) -> float:
    return round(float(x), 4)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """95% Wilson score interval for k successes out of n; None when n == 0.

    The one implementation: exposure cells, rule precision, the cascade's agreement and
    `mast compare` all quote this interval, so they must agree to the last digit."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)

"""Reliability bins, Brier score and ECE against hand-computed values."""

from __future__ import annotations

import pytest

from mast.calibration import bin_index, from_bins, reliability


def test_reliability_by_hand():
    r = reliability([(0.05, 0), (0.15, 0), (0.15, 1), (1.0, 1)], event="x")
    assert r.n == 4 and r.event == "x"
    assert r.brier == pytest.approx((0.05 ** 2 + 0.15 ** 2 + 0.85 ** 2 + 0) / 4, abs=1e-4)
    assert r.ece == pytest.approx((0.05 + 2 * abs(0.15 - 0.5) + 0) / 4, abs=1e-4)
    assert [b.n for b in r.bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]  # 1.0 falls in the last (closed) bin
    assert r.bins[2].mean_confidence is None and r.bins[2].observed is None


def test_empty_and_from_bins_agree():
    assert reliability([]).brier is None and reliability([]).ece is None and reliability([]).n == 0
    pairs = [(0.33, 1), (0.37, 0), (0.9, 1)]
    acc = [[0, 0.0, 0.0, 0.0] for _ in range(10)]
    for p, y in pairs:
        a = acc[bin_index(p)]
        a[0] += 1
        a[1] += p
        a[2] += y
        a[3] += (p - y) ** 2
    assert from_bins([tuple(a) for a in acc]) == reliability(pairs)

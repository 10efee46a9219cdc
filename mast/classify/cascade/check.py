"""The cascade's check sample, and the agreement between its tiers measured on it.

Contract:
- :func:`seeded_order` orders traces by a hash of (seed, trace id): the same traces come
  first whatever the selection's order, so a rerun with the same seed draws the same
  check sample (and hits the judge's cache).
- :func:`agreement` compares the learned tier's labels with the judge's on the check
  sample: per mode Cohen's kappa (the convention of :func:`mast.classify.learned.modes_train.kappa`:
  undefined, ``None``, when both sides are one same constant), raw agreement, and a 95%
  percentile interval from a bootstrap over the sample's traces (:data:`BOOTSTRAP`
  resamples, seeded; ``None`` when kappa is undefined in most resamples); the macro
  kappa is the mean over the modes whose kappa is defined, with its interval from the
  same resamples.
- A percentile bootstrap cannot see an error the sample does not hold: a mode with no
  disagreement on the sample gets kappa 1 with the interval [1, 1].  So each mode also
  carries its disagreements and a 95% Wilson interval for the raw agreement rate, which
  stays honest there (0 disagreements in 200 still allows up to 1.9%).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Sequence

import numpy as np

from mast.calibration import wilson as wilson_interval
from mast.classify.learned.modes_train import kappa, kappa_rows

BOOTSTRAP = 1000


def seeded_order(trace_ids: Sequence[str], seed: int) -> list[str]:
    return sorted(trace_ids, key=lambda t: (hashlib.sha256(f"{seed}:{t}".encode()).hexdigest(), t))


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4) + 0.0


def wilson(k: int, n: int) -> list[float | None]:
    """95% Wilson score interval of the proportion ``k / n``, rounded, as a JSON pair."""
    ci = wilson_interval(k, n)
    return [None, None] if ci is None else [_r(ci[0]), _r(ci[1])]


def _ci(values: np.ndarray) -> list[float | None]:
    v = values[np.isfinite(values)]
    if not len(v) or len(v) < 0.5 * len(values):
        return [None, None]
    return [_r(float(np.percentile(v, 2.5))), _r(float(np.percentile(v, 97.5)))]


def agreement(Y: np.ndarray, P: np.ndarray, modes: Sequence[str], *, seed: int = 0,
              bootstrap: int = BOOTSTRAP) -> dict[str, Any]:
    """Judge labels ``Y`` vs learned labels ``P`` (traces x modes, 0/1) on one sample."""
    n = len(Y)
    out: dict[str, Any] = {"n": n, "modes": {}, "macro": {"kappa": None, "kappa_ci": [None, None], "modes": []}}
    if not n:
        return out
    draws = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
    boots = []
    for j, mode in enumerate(modes):
        y, p = Y[:, j].astype(int), P[:, j].astype(int)
        k = kappa(y, p)
        kb = kappa_rows(y[draws], p[draws])
        out["modes"][mode] = {"judge_present": int(y.sum()), "learned_present": int(p.sum()),
                              "disagree": int((y != p).sum()), "agreement": _r(float((y == p).mean())),
                              "agreement_ci": wilson(int((y == p).sum()), n), "kappa": _r(k),
                              "kappa_ci": _ci(kb) if k is not None else [None, None]}
        if k is not None:
            out["macro"]["modes"].append(mode)
            boots.append(kb)
    if boots:
        ks = [out["modes"][m]["kappa"] for m in out["macro"]["modes"]]
        out["macro"]["kappa"] = _r(sum(ks) / len(ks))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["macro"]["kappa_ci"] = _ci(np.nanmean(np.vstack(boots), axis=0))
    return out

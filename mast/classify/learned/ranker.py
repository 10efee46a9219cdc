"""A linear step ranker trained with a listwise (softmax-per-trace) objective.

Every failed trace has exactly one decisive step, so the model is a conditional logit:
the probability that step *i* of trace *g* is the decisive one is
``softmax_g(x_i · w)``, and training minimises the negative log-likelihood of the gold
steps plus ``l2 / 2 · |w|²``.  Features are standardised with the training set's mean
and deviation (kept with the model).  A trace-level feature on its own cannot change a
ranking inside a trace, which is why the features include crosses with trace length.

The loss is convex and small (up to a few hundred thousand rows, a few dozen columns), so
Newton's method with the exact Hessian converges in a handful of steps; numpy is all it
needs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
from threadpoolctl import ThreadpoolController  # installed with scikit-learn, which requires it


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS once (a scan of the loaded libraries)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread inside the block.

    The products here are small (at most a few hundred thousand rows by a few dozen
    columns): splitting them across threads gains little on an idle machine and, on a
    busy one, every product waits for a thread to be scheduled (measured: one Newton fit
    over 4,092 steps took 5.9 s with two BLAS threads at load 16, 0.33 s with one).
    """
    with _controller().limit(limits=1, user_api="blas"):
        yield


@dataclass
class Ranker:
    weights: np.ndarray  # over standardised columns
    mean: np.ndarray
    scale: np.ndarray

    def scores(self, X: np.ndarray) -> np.ndarray:
        # the standardisation folded into the weights: one product, no copies of X (a
        # score's constant part is the same for every step of a trace, so rankings and
        # per-trace probabilities are those of the standardised columns)
        w = self.weights / self.scale
        with one_blas_thread():
            return X @ w - self.mean @ w


def group_offsets(spans: list[tuple[int, int]]) -> np.ndarray:
    return np.asarray([a for a, _ in spans] + [spans[-1][1]] if spans else [0], dtype=np.int64)


def softmax_groups(s: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Softmax of ``s`` inside each group [offsets[k], offsets[k+1])."""
    starts = offsets[:-1]
    mx = np.maximum.reduceat(s, starts)
    sizes = np.diff(offsets)
    e = np.exp(s - np.repeat(mx, sizes))
    z = np.add.reduceat(e, starts)
    return e / np.repeat(z, sizes)


def fit(X: np.ndarray, offsets: np.ndarray, gold_rows: np.ndarray, *, l2: float,
        start: Ranker | None = None, max_iter: int = 50) -> Ranker:
    """Fit on rows grouped by ``offsets`` (rows of one trace contiguous); ``gold_rows`` are
    the row index of each group's decisive step.  ``start``: a ranker fitted on the same
    rows (same standardisation) with another ``l2``, to start from (a warm start)."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    Z = (X - mean) / scale
    n_groups = len(offsets) - 1
    y = np.zeros(len(X))
    y[gold_rows] = 1.0
    starts = offsets[:-1]
    sizes = np.diff(offsets)

    def forward(w):
        s = Z @ w
        mx = np.maximum.reduceat(s, starts)
        e = np.exp(s - np.repeat(mx, sizes))
        z = np.add.reduceat(e, starts)
        loss = ((mx + np.log(z)).sum() - s[gold_rows].sum()) / n_groups + 0.5 * l2 * w @ w
        return loss, e / np.repeat(z, sizes)

    # Newton's method with a backtracking line search: the loss is smooth and strictly
    # convex (l2 > 0) in a few dozen weights, so the exact Hessian is cheap to form and
    # solve, and a handful of steps reach the optimum to machine precision (plain
    # gradient descent needed hundreds of passes over the rows and stopped short of it).
    w = start.weights.copy() if start is not None else np.zeros(X.shape[1])
    eye = np.eye(X.shape[1])
    pz = np.empty_like(Z)  # reused: a fresh rows x columns temporary per step costs page faults
    hess = None
    with one_blas_thread():
        loss, p = forward(w)
        for _ in range(max_iter):
            grad = Z.T @ (p - y) / n_groups + l2 * w
            if hess is None or grad @ grad > 1e-8:
                # the exact Hessian while far from the optimum; near it the last one is
                # kept (it barely changes there, and forming it is most of a step's cost)
                np.multiply(Z, p[:, None], out=pz)
                m = np.add.reduceat(pz, starts)  # per trace: the expected feature vector under p
                hess = (Z.T @ pz - m.T @ m) / n_groups + l2 * eye
            d = -np.linalg.solve(hess, grad)
            slope = grad @ d  # minus the squared Newton decrement
            if -slope < 1e-24:  # at the optimum to machine precision: the same weights everywhere
                break
            t = 1.0
            while True:
                new_loss, new_p = forward(w + t * d)
                # near the optimum the full step is right and the loss change is below its
                # rounding, so it is not tested there
                if -slope < 1e-10 or new_loss <= loss + 0.25 * t * slope or t < 1e-8:
                    break
                t *= 0.5
            w, loss, p = w + t * d, new_loss, new_p
    return Ranker(w, mean, scale)

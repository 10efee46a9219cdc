"""A linear step ranker trained with a listwise (softmax-per-trace) objective.

Every failed trace has exactly one decisive step, so the model is a conditional logit:
the probability that step *i* of trace *g* is the decisive one is
``softmax_g(x_i · w)``, and training minimises the negative log-likelihood of the gold
steps plus ``l2 / 2 · |w|²``.  Features are standardised with the training set's mean
and deviation (kept with the model).  A trace-level feature on its own cannot change a
ranking inside a trace, which is why the features include crosses with trace length.

The loss is convex and small (thousands of rows, a few hundred columns), so plain
accelerated gradient descent with backtracking converges in well under a second; numpy
is all it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def fit(X: np.ndarray, offsets: np.ndarray, gold_rows: np.ndarray, *, l2: float, iters: int = 400) -> Ranker:
    """Fit on rows grouped by ``offsets`` (rows of one trace contiguous); ``gold_rows`` are
    the row index of each group's decisive step."""
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
        # the same operations as softmax_groups, shared by the loss and the gradient
        s = Z @ w
        mx = np.maximum.reduceat(s, starts)
        e = np.exp(s - np.repeat(mx, sizes))
        z = np.add.reduceat(e, starts)
        loss = ((mx + np.log(z)).sum() - s[gold_rows].sum()) / n_groups + 0.5 * l2 * w @ w
        return loss, e, z

    def loss_grad(w):
        loss, e, z = forward(w)
        p = e / np.repeat(z, sizes)
        grad = Z.T @ (p - y) / n_groups + l2 * w
        return loss, grad

    w = np.zeros(X.shape[1])
    v = w.copy()
    step = 1.0
    t = 1.0
    prev_loss = np.inf
    for _ in range(iters):
        loss_v, g = loss_grad(v)
        while True:  # backtracking on the look-ahead point
            w_new = v - step * g
            loss_new = forward(w_new)[0]  # the line search needs no gradient
            if loss_new <= loss_v - 0.5 * step * (g @ g) or step < 1e-8:
                break
            step *= 0.5
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        v = w_new + ((t - 1) / t_new) * (w_new - w)
        w, t = w_new, t_new
        if abs(prev_loss - loss_new) < 1e-7:
            break
        prev_loss = loss_new
        step *= 1.5  # let the step grow back
    return Ranker(w, mean, scale)

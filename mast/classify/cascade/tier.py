"""The cascade's learned tier: one logistic model per mode, distilled from the judge's labels.

Contract:
- :class:`Tier` holds the features of every trace of a run
  (:mod:`mast.classify.learned.trace_features`, hashed text included) and a standardiser
  fitted on all of them (no labels are involved, so using every trace leaks nothing).
- :meth:`Tier.fit` trains a model from judged rows: per mode an L2 logistic regression
  (scikit-learn, fixed ``C``) when the labels hold both classes, else a constant whose
  probability is the smoothed base rate.  The result is a :class:`~mast.classify.learned.modes_model.ModesModel`
  (kind ``modes``, every mode of the taxonomy), so it is stored, validated and applied
  exactly like a model of ``mast learn modes``; probabilities are computed from the
  model as stored (rounded weights), so what is labelled is what can be reproduced.
- :func:`uncertainty` is how close a trace's least certain mode is to 0.5:
  ``max over modes of 1 - |2p - 1|`` (1 = a coin flip on some mode, 0 = sure of all).

Fixed hyperparameters, not tuned per run: the judge's labels arrive a few hundred at a
time and a nested search at every retrain would cost more than it could show; the check
sample says how well the choice did.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Sequence

import numpy as np

from mast.classify.learned import trace_features as TF
from mast.classify.learned.modes_model import ModeModel, ModesModel
from mast.classify.learned.model import libraries

C = 1.0
FEATURE_SET = "base+text"


def uncertainty(P: np.ndarray) -> np.ndarray:
    """Per row of (traces, modes) probabilities: 1 - |2p - 1| of its least certain mode."""
    if not P.size:
        return np.zeros(len(P))
    return (1.0 - np.abs(2.0 * P - 1.0)).max(axis=1)


class Tier:
    def __init__(self, trace_ids: Sequence[str], X: np.ndarray, modes: Sequence[str], taxonomy: str):
        self.trace_ids = list(trace_ids)
        self.row = {t: i for i, t in enumerate(self.trace_ids)}
        self.X = X
        self.modes = list(modes)
        self.taxonomy = taxonomy
        self.mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        self.scale = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        self.scale[self.scale < 1e-9] = 1.0
        self.model: ModesModel | None = None

    def fit(self, trace_ids: Sequence[str], Y: np.ndarray, training: dict[str, Any]) -> ModesModel:
        """A model from the labels ``Y`` (traces x modes, 0/1) of ``trace_ids``; it becomes the tier's model."""
        # heavy: only a cascade run needs scikit-learn
        import sklearn
        from sklearn.linear_model import LogisticRegression

        rows = np.asarray([self.row[t] for t in trace_ids], dtype=np.int64)
        Z = (self.X[rows] - self.mean) / self.scale
        fitted: dict[str, ModeModel] = {}
        for j, mode in enumerate(self.modes):
            y = Y[:, j].astype(int)
            hp = {"C": C, "class_weight": None, "distilled": True}
            if y.min() == y.max():
                rate = (y.sum() + 0.5) / (len(y) + 1.0)
                w, b = np.zeros(Z.shape[1]), float(np.log(rate / (1.0 - rate)))
                hp = {**hp, "constant": True}
            else:
                clf = LogisticRegression(C=C, max_iter=2000)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf.fit(Z, y)
                w, b = clf.coef_[0].copy(), float(clf.intercept_[0])
            fitted[mode] = ModeModel(FEATURE_SET, w, b, hp, {"support": int(y.sum()), "n": int(len(y))})
        h = hashlib.sha256()
        for t, yrow in sorted(zip(trace_ids, Y.astype(int).tolist())):
            h.update(f"{t}\t{''.join(map(str, yrow))}\n".encode())
        training = {**training, "traces": len(rows), "digest": "sha256:" + h.hexdigest()}
        model = ModesModel(self.mean.copy(), self.scale.copy(), fitted, training,
                           {"note": "distilled by a cascade run; its agreement is measured on the run's check sample"},
                           taxonomy=self.taxonomy,
                           libraries={**libraries(), "scikit-learn": sklearn.__version__}).with_id()
        self.model = model
        return model

    def proba(self, trace_ids: Sequence[str]) -> np.ndarray:
        """P(present) per trace and mode (columns in :attr:`modes` order) under the current model."""
        m = self.model
        if m is None:
            raise RuntimeError("the learned tier has no model yet")
        rows = np.asarray([self.row[t] for t in trace_ids], dtype=np.int64)
        Z = m.standardise(self.X[rows])
        return np.column_stack([m.modes[mode].probability(Z) for mode in self.modes]) if len(rows) else \
            np.zeros((0, len(self.modes)))


def features(store, trace_ids: Sequence[str], batch: int = 2000) -> tuple[list[str], np.ndarray, list[str]]:
    """(traces with steps, their feature rows, traces without steps) of ``trace_ids``."""
    ids: list[str] = []
    parts: list[np.ndarray] = []
    no_steps: list[str] = []
    for k in range(0, len(trace_ids), batch):
        t = TF.load(store, trace_ids[k:k + batch])
        ids += t.trace_ids
        parts.append(t.X)
        no_steps += t.no_steps
    X = np.vstack(parts) if parts else np.zeros((0, len(TF.BASE) + len(TF.TEXT)))
    return ids, X, no_steps

"""Training and honest scoring of the learned failure-mode models (one per mode).

Contract of :func:`learn_modes`:

- Gold: per (trace, mode) the latest ``present`` / ``absent`` label by annotator
  ``gold`` in ``taxonomy``, over the traces matching ``where``.  Fewer than
  :data:`MIN_TRACES` labelled traces, or fewer groups than folds, is refused with the
  counts.
- Groups: CV folds never split a group.  ``group="labels"`` (the default) puts traces
  whose whole gold label vector is identical in one group: data sets that copy one
  label block onto several traces (the MAST human file: 19 traces, 8 label blocks) then
  cannot leak a block from training into the scored fold.  ``group="trace"`` treats
  every trace alone (right when each trace was labelled on its own), ``meta:FIELD``
  groups by a metadata field (e.g. ``meta:round``).  Groups, ordered by a seeded hash,
  are dealt round-robin to ``k`` folds; the same folds serve every mode.
- Per mode: an L2 logistic regression (scikit-learn) over standardised trace features
  (:mod:`mast.classify.learned.trace_features`).  Its feature set (with or without
  hashed text), L2 strength and class weighting are chosen *inside* each outer training
  part by an inner grouped CV (pooled out-of-fold kappa): nothing is selected on the
  fold it is scored on.  A training part without both labels predicts its majority.
- Figures per mode, on the out-of-fold predictions: precision, recall, F1, Cohen's
  kappa (the conventions of :mod:`mast.evaluate`: undefined is ``None``), a 95% interval
  for kappa from a bootstrap over groups (:data:`BOOTSTRAP` resamples, fixed seed), and
  the Brier score of the probabilities and their reliability (:mod:`mast.calibration`:
  binned out-of-fold P(present) against the observed frequency, n per bin); beside them the constant baseline (the training
  part's majority label, its base rate as probability) and each stored annotator in
  ``compare`` (e.g. ``rules``) on the same traces.  Macro figures average the modes
  cross-validated; the macro kappa difference to each compared annotator is bootstrapped
  on the modes both assess.
- Saved: a mode whose CV kappa is above the constant baseline's (0: a constant agrees
  only by chance; its CV figure when higher) gets a model fitted on every labelled trace (hyperparameters by CV over
  all of them); any other mode is not saved, with the reason.  No mode saved: no model.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mast.classify.learned import trace_features as TF
from mast.classify.learned.modes_model import ModeModel, ModesModel
from mast.classify.learned.model import libraries
from mast.calibration import reliability
from mast.errors import UsageError
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

MIN_TRACES = 10
MIN_POSITIVES = 2
SEED = 0
BOOTSTRAP = 1000
INNER_FOLDS = 3
C_GRID = (0.01, 0.1, 1.0)
WEIGHTS = ("balanced", None)


@dataclass
class Gold:
    trace_ids: list[str]
    #: mode -> trace_id -> 1 (present) / 0 (absent)
    labels: dict[str, dict[str, int]]
    groups: list[str]


@dataclass
class ModesResult:
    model: ModesModel | None
    modes: dict[str, Any]
    macro: dict[str, Any]
    training: dict[str, Any]
    no_steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model.model_id if self.model else None, "modes": self.modes, "macro": self.macro,
                "training": self.training, "traces_without_steps": len(self.no_steps)}


def load_gold(store, gold: str, where: str | None, taxonomy: str, group: str) -> Gold:
    cond = f"(\n{store.where_sql(where)}\n)" if where else "true"
    rows = store.fetchall(
        f"""
        SELECT l.trace_id, l.mode, l.label = 'present', t.metadata FROM (
            SELECT *, row_number() OVER (PARTITION BY trace_id, mode
                                         ORDER BY created_at DESC, run_id DESC NULLS LAST) AS rn
            FROM annotations WHERE annotator = ? AND taxonomy = ? AND label IN ('present', 'absent')) l
        JOIN traces t USING (trace_id)
        WHERE l.rn = 1 AND {cond}
        ORDER BY l.trace_id, l.mode""", [gold, taxonomy])
    labels: dict[str, dict[str, int]] = {}
    meta: dict[str, Any] = {}
    for tid, mode, present, md in rows:
        labels.setdefault(mode, {})[tid] = int(present)
        meta[tid] = md
    ids = sorted(meta)
    return Gold(ids, labels, _groups(ids, labels, meta, group))


def _groups(ids: list[str], labels: dict[str, dict[str, int]], meta: dict[str, Any], group: str) -> list[str]:
    if group == "trace":
        return list(ids)
    if group == "labels":
        return [";".join(f"{m}={labels[m].get(t, '-')}" for m in sorted(labels)) for t in ids]
    if group.startswith("meta:") and len(group) > 5:
        key = group[5:]
        out = []
        for t in ids:
            md = meta[t]
            md = json.loads(md) if isinstance(md, str) else (md or {})
            out.append(f"{key}={json.dumps(md.get(key), sort_keys=True)}")
        return out
    raise UsageError(f"--group {group!r}: expected labels, trace or meta:FIELD")


def folds(groups: Sequence[str], k: int, seed: int = SEED) -> np.ndarray:
    """Fold of each item: distinct groups in seeded-hash order, dealt round-robin."""
    order = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    fold_of = {g: j % k for j, g in enumerate(order)}
    return np.asarray([fold_of[g] for g in groups], dtype=np.int64)


# -- metrics (the conventions of mast.evaluate) -------------------------------------

def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    tp = int(((y == 1) & (p == 1)).sum())
    fp = int(((y == 0) & (p == 1)).sum())
    fn = int(((y == 1) & (p == 0)).sum())
    return {"precision": _r(tp / (tp + fp)) if tp + fp else None,
            "recall": _r(tp / (tp + fn)) if tp + fn else None,
            "f1": _r(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None,
            "kappa": _r(kappa(y, p))}


def kappa(y: np.ndarray, p: np.ndarray) -> float | None:
    n = len(y)
    if not n:
        return None
    po = float((y == p).mean())
    py, pp = float(y.mean()), float(p.mean())
    pe = py * pp + (1 - py) * (1 - pp)
    if pe >= 1 - 1e-12:
        return None  # both constant and equal: 0/0
    return (po - pe) / (1 - pe)


def kappa_rows(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Kappa of each row pair of (resamples, n) 0/1 matrices; NaN where undefined."""
    po = (Y == P).mean(axis=1)
    py, pp = Y.mean(axis=1), P.mean(axis=1)
    pe = py * pp + (1 - py) * (1 - pp)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = (po - pe) / (1 - pe)
    k[pe >= 1 - 1e-12] = np.nan
    return k


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4) + 0.0  # no -0.0


# -- fitting --------------------------------------------------------------------------

def _configs() -> list[dict[str, Any]]:
    # order = preference on ties: the simplest model first
    return [{"feature_set": fs, "C": c, "class_weight": w}
            for fs in TF.FEATURE_SETS for c in C_GRID for w in WEIGHTS]


def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def _fit(X: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardiser (over all columns) and weights over the config's feature set."""
    # scikit-learn takes ~1 s to import: only training pays it, never applying a model.
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardiser(X)
    n = len(TF.FEATURE_SETS[cfg["feature_set"]])
    Z = ((X - mean) / scale)[:, :n]
    clf = LogisticRegression(C=cfg["C"], class_weight=cfg["class_weight"], max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Z, y)
    return mean, scale, clf.coef_[0].copy(), float(clf.intercept_[0])


def _prob(X: np.ndarray, fitted) -> np.ndarray:
    mean, scale, w, b = fitted
    s = ((X - mean) / scale)[:, :len(w)] @ w + b
    return 1.0 / (1.0 + np.exp(-np.clip(s, -30, 30)))


def _fit_predict(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                 cfg: dict[str, Any]) -> np.ndarray:
    """P(present) on ``test`` from a model fitted on ``train`` (a one-label part: its label)."""
    yt = y[train]
    if yt.min() == yt.max():
        return np.full(len(test), float(yt[0]))
    return _prob(X[test], _fit(X[train], yt, cfg))


def select(X: np.ndarray, y: np.ndarray, groups: Sequence[str], idx: np.ndarray, k: int) -> dict[str, Any]:
    """The config with the best pooled out-of-fold kappa over ``idx`` alone (inner CV)."""
    inner = folds([groups[i] for i in idx], k, seed=SEED + 1)
    best, best_k = _configs()[0], -np.inf
    for cfg in _configs():
        pred = np.zeros(len(idx))
        for f in range(k):
            te, tr = idx[inner == f], idx[inner != f]
            if len(te) and len(tr):
                pred[inner == f] = _fit_predict(X, y, tr, te, cfg)
        kp = kappa(y[idx], (pred >= 0.5).astype(int))
        kp = -1.0 if kp is None else kp
        if kp > best_k + 1e-9:
            best, best_k = cfg, kp
    return dict(best)


# -- the whole procedure ----------------------------------------------------------------

def _stored(store, annotator: str, taxonomy: str, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    rows = store.fetchall(
        """SELECT trace_id, mode, label = 'present' FROM (
               SELECT *, row_number() OVER (PARTITION BY trace_id, mode
                                            ORDER BY created_at DESC, run_id DESC NULLS LAST) AS rn
               FROM annotations WHERE annotator = ? AND taxonomy = ? AND label IN ('present', 'absent')
                 AND trace_id IN (SELECT unnest(?))) WHERE rn = 1""", [annotator, taxonomy, list(ids)])
    out: dict[str, dict[str, int]] = {}
    for tid, mode, present in rows:
        out.setdefault(mode, {})[tid] = int(present)
    return out


def _digest(gold: Gold) -> str:
    h = hashlib.sha256()
    for m in sorted(gold.labels):
        for t, v in sorted(gold.labels[m].items()):
            h.update(f"{t}\t{m}\t{v}\n".encode())
    return "sha256:" + h.hexdigest()


def _check_counts(gold: Gold, k: int, name: str, no_steps: int) -> None:
    n_groups = len(set(gold.groups))
    need = max(MIN_TRACES, k)
    if len(gold.trace_ids) < need or n_groups < k:
        pos = ", ".join(f"{m}: {sum(v.values())}" for m, v in sorted(gold.labels.items())) or "none"
        raise UsageError(
            f"{len(gold.trace_ids)} labelled trace(s) with steps in {n_groups} group(s), too few mode labels by "
            f"{name!r} to train and cross-validate (present per mode: {pos}"
            f"{f'; {no_steps} without steps' if no_steps else ''}); need at least {need} traces and {k} groups "
            f"with --cv {k}",
            "Label more traces, widen --where, lower --cv, or try --group trace if each trace was labelled alone.")


def learn_modes(store, gold: str = "human", *, where: str | None = None, k: int = 5, group: str = "labels",
                compare: Sequence[str] = ("rules",), taxonomy: str = DEFAULT_TAXONOMY,
                bootstrap: int = BOOTSTRAP) -> ModesResult:
    """Per-mode nested-CV figures beside the baselines, and the model of the modes that beat the constant."""
    if k < 2:
        raise UsageError("--cv must be 2 or more")
    tax = load_taxonomy(taxonomy)
    g = load_gold(store, gold, where, taxonomy, group)
    table = TF.load(store, g.trace_ids)
    keep = set(table.trace_ids)
    pos_of = {t: i for i, t in enumerate(table.trace_ids)}
    groups = [grp for t, grp in zip(g.trace_ids, g.groups) if t in keep]
    g = Gold(table.trace_ids, {m: {t: v for t, v in d.items() if t in keep} for m, d in g.labels.items()}, groups)
    _check_counts(g, k, gold, len(table.no_steps))
    X = table.X
    fold_all = folds(groups, k)
    compare = [c for c in compare if c != gold]
    others = {c: _stored(store, c, taxonomy, table.trace_ids) for c in compare}
    others = {c: v for c, v in others.items() if v}
    rng = np.random.default_rng(SEED)
    group_ids = np.asarray(_index(groups))
    n_groups = int(group_ids.max()) + 1
    # one set of resamples (over groups) shared by every mode and annotator: paired intervals
    draws = rng.integers(0, n_groups, size=(bootstrap, n_groups))
    members = [np.flatnonzero(group_ids == j) for j in range(n_groups)]

    modes_out: dict[str, Any] = {}
    saved: dict[str, ModeModel] = {}
    oof: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}  # mode -> rows, y, preds by method
    for m in tax.mode_ids:
        lab = g.labels.get(m, {})
        rows = np.asarray(sorted(pos_of[t] for t in lab), dtype=np.int64)
        y_all = np.full(len(table.trace_ids), -1)
        for t, v in lab.items():
            y_all[pos_of[t]] = v
        y = y_all[rows]
        n, support = len(rows), int(y.sum()) if len(rows) else 0
        entry: dict[str, Any] = {"n": n, "support": support, "saved": False}
        pos_groups = len({groups[i] for i in rows if y_all[i] == 1})
        if n == 0:
            entry["why"] = f"no labels by {gold} for this mode"
            modes_out[m] = entry
            continue
        if support < MIN_POSITIVES or n - support < MIN_POSITIVES or pos_groups < 2:
            entry["why"] = (f"too few labels to learn from: {support} present / {n - support} absent "
                            f"(present in {pos_groups} group(s)); need {MIN_POSITIVES} of each, present in 2+ groups")
            entry["baseline"] = {"constant": scores(y, np.full(n, int(support * 2 > n)))}
            modes_out[m] = entry
            continue
        fo = fold_all[rows]
        prob = np.zeros(n)
        const = np.zeros(n)
        const_p = np.zeros(n)
        chosen = []
        for f in range(k):
            te, tr = rows[fo == f], rows[fo != f]
            if not len(te):
                continue
            cfg = select(X, y_all, groups, tr, INNER_FOLDS) if y_all[tr].min() != y_all[tr].max() else _configs()[0]
            chosen.append(cfg)
            prob[fo == f] = _fit_predict(X, y_all, tr, te, cfg)
            rate = float(y_all[tr].mean())
            const[fo == f] = int(rate > 0.5)
            const_p[fo == f] = rate
        pred = (prob >= 0.5).astype(int)
        cv = scores(y, pred)
        cv["brier"] = _r(float(((prob - y) ** 2).mean()))
        cv["calibration"] = reliability(zip(prob.tolist(), y.tolist()), event="mode present").to_dict()
        base = {"constant": {**scores(y, const.astype(int)), "brier": _r(float(((const_p - y) ** 2).mean()))}}
        preds = {"learned": pred, "constant": const.astype(int)}
        for c, labs in others.items():
            if m in labs and all(tt in labs[m] for tt in (table.trace_ids[i] for i in rows)):
                pc = np.asarray([labs[m][table.trace_ids[i]] for i in rows])
                base[c] = scores(y, pc)
                preds[c] = pc
            else:
                base[c] = {"assessed": False}
        ci = _boot(draws, members, {m: (rows, y, preds)})
        cv["kappa_ci"] = ci[m]["learned"]
        for c in base:
            if c in ci[m]:
                base[c]["kappa_ci"] = ci[m][c]
        oof[m] = (rows, y, preds)
        entry.update(cv=cv, baseline=base, chosen_per_outer_fold=chosen)
        kp = cv["kappa"]
        # a constant agrees only by chance (kappa 0); its CV kappa can even be below 0 when
        # the majority flips between training parts: the bar is whichever is higher
        bar = max(0.0, base["constant"]["kappa"] or 0.0)
        if kp is not None and kp > bar:
            cfg = select(X, y_all, groups, rows, k)
            fitted = _fit(X[rows], y, cfg)
            saved[m] = ModeModel(cfg["feature_set"], fitted[2], fitted[3], {**cfg, "c_grid": list(C_GRID),
                                                                          "inner_folds": INNER_FOLDS}, cv)
            entry["saved"] = True
            entry["why"] = f"CV kappa {kp:.3f} > {bar:.3f} (constant baseline)" + (
                "; its interval includes 0" if cv["kappa_ci"][0] is not None and cv["kappa_ci"][0] <= 0 else "")
            entry["hyperparameters"] = cfg
        else:
            entry["why"] = f"CV kappa {'undefined' if kp is None else f'{kp:.3f}'} does not beat the constant baseline ({bar:.3f})"
        modes_out[m] = entry

    macro = _macro(modes_out, oof, draws, members, list(others))
    by_fold = {str(f): int((fold_all == f).sum()) for f in range(k)}
    training = {"gold": gold, "where": where, "group": group, "traces": len(table.trace_ids), "groups": n_groups,
                "digest": _digest(g), "cv_folds": k, "traces_per_fold": by_fold, "seed": SEED,
                "bootstrap": bootstrap}
    model = None
    if saved:
        ids = [i for m in saved for i in np.asarray(sorted(pos_of[t] for t in g.labels[m]))]
        rows_all = np.asarray(sorted(set(ids)), dtype=np.int64)
        mean, scale = _standardiser(X[rows_all])
        # each mode was fitted with the standardiser of its own rows; refit on the shared
        # one so that one scaler serves every mode (identical when every mode has all rows)
        for m, mm in saved.items():
            rows = np.asarray(sorted(pos_of[t] for t in g.labels[m]), dtype=np.int64)
            y = np.asarray([g.labels[m][table.trace_ids[i]] for i in rows])
            mm.weights, mm.intercept = _refit_shared(X[rows], y, mean, scale, mm.hyperparameters)
        model = ModesModel(mean, scale, saved, training,
                           {"macro": macro, "not_saved": {m: e["why"] for m, e in modes_out.items() if not e["saved"]}},
                           taxonomy=taxonomy, libraries=_libraries()).with_id()
    return ModesResult(model, modes_out, macro, training, table.no_steps)


def _refit_shared(X: np.ndarray, y: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                  cfg: dict[str, Any]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    n = len(TF.FEATURE_SETS[cfg["feature_set"]])
    clf = LogisticRegression(C=cfg["C"], class_weight=cfg["class_weight"], max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(((X - mean) / scale)[:, :n], y)
    return clf.coef_[0].copy(), float(clf.intercept_[0])


def _libraries() -> dict[str, str]:
    import sklearn
    return {**libraries(), "scikit-learn": sklearn.__version__}


def _index(groups: Sequence[str]) -> list[int]:
    ids: dict[str, int] = {}
    return [ids.setdefault(gr, len(ids)) for gr in groups]


def _resample_rows(draw: np.ndarray, members: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    pos = {int(r): j for j, r in enumerate(rows)}
    out = [pos[int(r)] for gi in draw for r in members[gi] if int(r) in pos]
    return np.asarray(out, dtype=np.int64)


def _boot_kappas(draws: np.ndarray, members: list[np.ndarray], rows: np.ndarray, y: np.ndarray,
                 preds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {name: np.full(len(draws), np.nan) for name in preds}
    for b, draw in enumerate(draws):
        sel = _resample_rows(draw, members, rows)
        if not len(sel):
            continue
        for name, p in preds.items():
            k = kappa(y[sel], p[sel])
            out[name][b] = np.nan if k is None else k
    return out


def _ci(values: np.ndarray) -> list[float | None]:
    v = values[np.isfinite(values)]
    if len(v) < 0.5 * len(values) or not len(v):
        return [None, None]  # undefined in most resamples: no interval worth printing
    return [_r(float(np.percentile(v, 2.5))), _r(float(np.percentile(v, 97.5)))]


def _boot(draws, members, by_mode) -> dict[str, dict[str, list[float | None]]]:
    return {m: {name: _ci(v) for name, v in _boot_kappas(draws, members, rows, y, preds).items()}
            for m, (rows, y, preds) in by_mode.items()}


def _macro(modes_out: dict[str, Any], oof, draws, members, others: list[str]) -> dict[str, Any]:
    """Unweighted means over the cross-validated modes; bootstrapped macro kappa and differences."""
    def mean(vals):
        vals = [v for v in vals if v is not None]
        return _r(sum(vals) / len(vals)) if vals else None

    cvd = [m for m in modes_out if "cv" in modes_out[m]]
    out: dict[str, Any] = {"modes": cvd, "learned": {k: mean(modes_out[m]["cv"][k] for m in cvd)
                                                     for k in ("precision", "recall", "f1", "kappa")}}
    boots = {m: _boot_kappas(draws, members, *oof[m]) for m in cvd}

    def macro_ci(name: str, modes: list[str]) -> list[float | None]:
        if not modes:
            return [None, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _ci(np.nanmean(np.vstack([boots[m][name] for m in modes]), axis=0))

    out["learned"]["kappa_ci"] = macro_ci("learned", cvd)
    out["learned"]["saved_modes"] = [m for m in cvd if modes_out[m]["saved"]]
    for name in others:
        both = [m for m in cvd if name in boots[m]]
        entry: dict[str, Any] = {"modes": both}
        entry.update({k: mean(modes_out[m]["baseline"][name][k] for m in both)
                      for k in ("precision", "recall", "f1", "kappa")})
        entry["kappa_ci"] = macro_ci(name, both)
        entry["learned_kappa_same_modes"] = mean(modes_out[m]["cv"]["kappa"] for m in both)
        if both:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                diff = (np.nanmean(np.vstack([boots[m]["learned"] for m in both]), axis=0)
                        - np.nanmean(np.vstack([boots[m][name] for m in both]), axis=0))
            entry["learned_minus_this_kappa_ci"] = _ci(diff)
        out[name] = entry
    return out

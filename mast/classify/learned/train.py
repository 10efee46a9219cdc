"""Training and honest scoring of the learned root-cause model.

Contract of :func:`learn_attribution`:

- Gold: the latest attribution per trace by annotator ``gold`` with a step inside the
  trace, over the traces matching ``where``.  Fewer than :data:`MIN_TRACES` (or fewer
  than two per fold) is refused with the counts.
- Cross-validation: ``k`` folds grouped by trace and stratified by system (each system's
  traces, ordered by a seeded hash of their id, dealt round-robin), so the figures per
  system are on held-out traces only.  Hyperparameters (the L2 strength and how the agent
  is chosen) are chosen *inside* each outer training part by an inner 3-fold CV (nested
  CV): nothing is selected on the folds it is scored on.
- Every gold trace counts: a trace with no prediction is wrong.  Beside the model, on
  the same folds: the baselines of :mod:`mast.classify.learned.baselines` (uniform
  random, the majority agent of the system in the training part, the last step, the
  first error step), and any stored annotator named in ``compare`` (e.g. ``rules``).
- The final model is fitted on all gold traces with hyperparameters chosen by CV over
  all of them, and returned with its CV figures; :func:`holdout` instead trains on one
  selection and scores another (a system the model never saw).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mast.classify.learned import baselines as B
from mast.classify.learned import features as F
from mast.classify.learned.baselines import Gold, Prediction, norm_agent  # noqa: F401 - named here too
from mast.classify.learned.model import AttributionModel, libraries
from mast.classify.learned.ranker import Ranker, fit, group_offsets, softmax_groups
from mast.calibration import reliability
from mast.errors import UsageError
from mast.taxonomy import DEFAULT_TAXONOMY

MIN_TRACES = 10
SEED = 0
L2_GRID = (0.003, 0.03, 0.3)
INNER_FOLDS = 3


@dataclass
class Data:
    """Gold traces with their step features (rows of one trace contiguous)."""

    gold: list[Gold]
    table: F.StepTable
    X: np.ndarray


@dataclass
class LearnResult:
    model: AttributionModel
    #: system -> {"n", "agent_accuracy", "step_accuracy", "baselines": {name: {...}}}
    cv: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model.model_id, "cv": self.cv, "hyperparameters": self.model.hyperparameters,
                "agent_rule": self.model.agent_rule, "training": self.model.training, "skipped": self.skipped}


def load_gold(store, gold: str, where: str | None) -> tuple[list[Gold], dict[str, int]]:
    cond = f"(\n{store.where_sql(where)}\n)" if where else "true"
    rows = store.fetchall(
        f"""
        WITH latest AS (
            SELECT * FROM (
                SELECT *, row_number() OVER (PARTITION BY trace_id ORDER BY created_at DESC, run_id DESC NULLS LAST) AS rn
                FROM attributions WHERE annotator = ?) WHERE rn = 1)
        SELECT l.trace_id, coalesce(t.system, '(unknown)'), l.agent, l.step, t.n_steps
        FROM latest l JOIN traces t USING (trace_id)
        WHERE {cond}
        ORDER BY l.trace_id""", [gold])
    out, skipped = [], {"no_step": 0, "step_outside_trace": 0}
    for tid, system, agent, step, n in rows:
        if step is None:
            skipped["no_step"] += 1
        elif not 0 <= step < (n or 0):
            skipped["step_outside_trace"] += 1
        else:
            out.append(Gold(tid, system, agent, int(step)))
    return out, {k: v for k, v in skipped.items() if v}


def load_data(store, gold: list[Gold]) -> Data:
    table = F.load_steps(store, [g.trace_id for g in gold])
    return Data(gold, table, F.dense(table))


def folds(gold: Sequence[Gold], k: int, seed: int = SEED) -> list[int]:
    """Fold of each gold trace: per system, seeded-hash order dealt round-robin."""
    by_sys: dict[str, list[int]] = {}
    for i, g in enumerate(gold):
        by_sys.setdefault(g.system, []).append(i)
    out = [0] * len(gold)
    start = 0
    for system in sorted(by_sys):
        idx = sorted(by_sys[system], key=lambda i: hashlib.sha256(f"{seed}:{gold[i].trace_id}".encode()).hexdigest())
        for j, i in enumerate(idx):
            out[i] = (start + j) % k  # rotate so small systems do not all land in fold 0
        start += len(idx)
    return out


def _rows(data: Data, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows of gold traces ``idx``, their group offsets, and their gold rows."""
    rows, spans, gold_rows = [], [], []
    for i in idx:
        g = data.gold[i]
        a, b = data.table.spans[g.trace_id]
        spans.append((len(rows), len(rows) + b - a))
        gold_rows.append(len(rows) + g.step)
        rows.extend(range(a, b))
    return np.asarray(rows, dtype=np.int64), group_offsets(spans), np.asarray(gold_rows, dtype=np.int64)


def agent_codes(agents: Sequence[str | None]) -> np.ndarray:
    """One integer per distinct agent value (``None`` is a value of its own)."""
    seen: dict[str | None, int] = {}
    return np.fromiter((seen.setdefault(a, len(seen)) for a in agents), dtype=np.int64, count=len(agents))


def _first_max(v: np.ndarray, g: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first row of each group holding the group's maximum of ``v`` (as ``np.argmax``)."""
    hit = np.flatnonzero(v == np.maximum.reduceat(v, starts)[g])
    first = np.ones(len(hit), dtype=bool)
    first[1:] = g[hit[1:]] != g[hit[:-1]]
    return hit[first]


def choose(s: np.ndarray, offsets: np.ndarray, codes: np.ndarray, agent_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Per group of rows [offsets[k], offsets[k+1]): the chosen row and its confidence.

    ``step``: the highest-scoring step (the first on ties) and its probability.  ``mass``:
    the agent with the largest summed step probability (ties: the agent seen first),
    its mass as the confidence, and that agent's highest-scoring step.  Vectorised: a
    million traces are one call.
    """
    starts, sizes = offsets[:-1], np.diff(offsets)
    g = np.repeat(np.arange(len(sizes)), sizes)
    p = softmax_groups(s, offsets)
    if agent_rule != "mass":
        rows = _first_max(s, g, starts)
        return rows, p[rows]
    key = g * (int(codes.max()) + 1) + codes
    uniq, first_row, inv = np.unique(key, return_index=True, return_inverse=True)
    mass = np.bincount(inv, weights=p)
    key_group = g[first_row]
    # per group: the most mass, then the agent seen first
    order = np.lexsort((first_row, -mass, key_group))
    lead = np.ones(len(order), dtype=bool)
    lead[1:] = key_group[order[1:]] != key_group[order[:-1]]
    chosen = order[lead]  # one key per group, in group order
    mine = inv == chosen[g]
    rows = _first_max(np.where(mine, s, -np.inf), g, starts)
    return rows, mass[chosen]


def predict(ranker: Ranker, agent_rule: str, X: np.ndarray, agents: Sequence[str | None],
            offsets: np.ndarray) -> list[Prediction]:
    """One prediction per group: the highest-scoring step; its agent (``step``) or the
    agent with the largest summed step probability (``mass``); see :func:`choose`."""
    rows, conf = choose(ranker.scores(X), offsets, agent_codes(agents), agent_rule)
    return [Prediction(agents[r], int(r - a), float(c)) for r, a, c in zip(rows, offsets[:-1], conf)]


def _fit_path(data: Data, train: Sequence[int], test: Sequence[int], l2s: Sequence[float],
              rules: Sequence[str]) -> dict[float, dict[str, list[Prediction]]]:
    """Fit on ``train`` for each L2 strength (strongest first, each fit starting from the
    one before: a warm start on the same rows) and predict ``test`` with each agent rule."""
    rows, off, gold_rows = _rows(data, train)
    X = data.X[rows]
    trows, toff, _ = _rows(data, test)
    Xt, agents = data.X[trows], [data.table.agent[r] for r in trows]
    out, ranker = {}, None
    for l2 in sorted(l2s, reverse=True):
        ranker = fit(X, off, gold_rows, l2=l2, start=ranker)
        out[l2] = {rule: predict(ranker, rule, Xt, agents, toff) for rule in rules}
    return out


def _fit_predict(data: Data, train: Sequence[int], test: Sequence[int], l2: float,
                 rules: Sequence[str]) -> dict[str, list[Prediction]]:
    return _fit_path(data, train, test, (l2,), rules)[l2]


def _hits(data: Data, idx: Sequence[int], preds: Sequence[Prediction | None]) -> tuple[np.ndarray, np.ndarray]:
    return B.hits(data.gold, idx, preds)


def select(data: Data, idx: Sequence[int], k: int = INNER_FOLDS) -> dict[str, Any]:
    """Hyperparameters by CV over ``idx`` only: the (l2, agent rule) with the most agent +
    step hits on the held-out parts (ties: the stronger L2, then ``step``)."""
    inner = folds([data.gold[i] for i in idx], k, seed=SEED + 1)
    score: dict[tuple[float, str], float] = {}
    for f in range(k):
        tr = [i for i, fo in zip(idx, inner) if fo != f]
        te = [i for i, fo in zip(idx, inner) if fo == f]
        if not tr or not te:
            continue
        for l2, by_rule in _fit_path(data, tr, te, L2_GRID, ("step", "mass")).items():
            for rule, preds in by_rule.items():
                ag, st = _hits(data, te, preds)
                score[(l2, rule)] = score.get((l2, rule), 0.0) + ag.sum() + st.sum()
    best = max(sorted(score), key=lambda key: (score[key], key[0], key[1] == "step"))
    return {"l2": best[0], "agent_rule": best[1]}


def _stored(store, annotator: str, data: Data, test: Sequence[int]) -> list[Prediction | None]:
    rows = store.fetchall(
        """SELECT trace_id, agent, step FROM (
               SELECT *, row_number() OVER (PARTITION BY trace_id ORDER BY created_at DESC, run_id DESC NULLS LAST) AS rn
               FROM attributions WHERE annotator = ? AND trace_id IN (SELECT unnest(?))) WHERE rn = 1""",
        [annotator, [data.gold[i].trace_id for i in test]])
    by = {r[0]: Prediction(r[1], r[2] if r[2] is not None else -1, 1.0) for r in rows}
    return [by.get(data.gold[i].trace_id) for i in test]


class _Tally:
    """Hits per system and method, over every gold trace scored, and the model's stated
    confidence beside its hits (its reliability on the held-out folds)."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
        self.conf: dict[str, list[tuple[float, float, float]]] = {}

    def add(self, data: Data, method: str, idx: Sequence[int], ag: np.ndarray, st: np.ndarray,
            confidence: Sequence[float] | None = None) -> None:
        for j, i in enumerate(idx):
            system = data.gold[i].system
            d = self.hits.setdefault(system, {}).setdefault(method, ([], []))
            d[0].append(float(ag[j]))
            d[1].append(float(st[j]))
            if confidence is not None:
                self.conf.setdefault(system, []).append((float(confidence[j]), float(ag[j]), float(st[j])))

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for system in sorted(self.hits):
            h = dict(self.hits[system])
            model = h.pop("model")
            c = self.conf.get(system, [])
            out[system] = {"n": len(model[0]), "agent_accuracy": _r(np.mean(model[0])),
                           "step_accuracy": _r(np.mean(model[1])),
                           "baselines": {m: {"agent_accuracy": _r(np.mean(v[0])), "step_accuracy": _r(np.mean(v[1]))}
                                         for m, v in sorted(h.items())},
                           # the confidence is the step's probability (agent rule "step") or the
                           # agent's summed probability ("mass"): both events are shown
                           "calibration": {
                               "step": reliability([(p, s) for p, _, s in c], event="root-cause step is gold").to_dict(),
                               "agent": reliability([(p, a) for p, a, _ in c],
                                                    event="root-cause agent is gold").to_dict()}}
        return out


def _r(x: float) -> float:
    return round(float(x), 4)


def _score(store, data: Data, tally: _Tally, train: Sequence[int], test: Sequence[int],
           preds: Sequence[Prediction], compare: Sequence[str]) -> None:
    tally.add(data, "model", test, *_hits(data, test, preds), confidence=[p.confidence for p in preds])
    for name, (ag, st) in B.score(data.table, data.gold, train, test).items():
        tally.add(data, name, test, ag, st)
    for ann in compare:
        tally.add(data, ann, test, *_hits(data, test, _stored(store, ann, data, test)))


def _check_counts(gold: Sequence[Gold], k: int, gold_name: str, skipped: dict[str, int]) -> None:
    need = max(MIN_TRACES, 2 * k)
    if len(gold) < need:
        by: dict[str, int] = {}
        for g in gold:
            by[g.system] = by.get(g.system, 0) + 1
        detail = ", ".join(f"{s}: {n}" for s, n in sorted(by.items())) or "none"
        skip = "".join(f", {n} {why.replace('_', ' ')}" for why, n in skipped.items())
        raise UsageError(f"too few root-cause labels by {gold_name!r} to train and cross-validate: "
                         f"{len(gold)} usable ({detail}{skip}); need at least {need} with --cv {k}",
                         "Label more failed traces, widen --where, or lower --cv.")


def training_digest(gold: Sequence[Gold]) -> str:
    h = hashlib.sha256()
    for g in sorted(gold, key=lambda g: g.trace_id):
        h.update(f"{g.trace_id}\t{g.agent or ''}\t{g.step}\n".encode())
    return "sha256:" + h.hexdigest()


def _compare_present(store, compare: Sequence[str]) -> list[str]:
    have = {r[0] for r in store.fetchall("SELECT DISTINCT annotator FROM attributions")}
    return [c for c in compare if c in have]


def learn_attribution(store, gold: str = "human", *, where: str | None = None, k: int = 5,
                      compare: Sequence[str] = ("rules",), taxonomy: str = DEFAULT_TAXONOMY) -> LearnResult:
    """Nested-CV figures beside the baselines, and the model fitted on every gold trace."""
    if k < 2:
        raise UsageError("--cv must be 2 or more")
    golds, skipped = load_gold(store, gold, where)
    _check_counts(golds, k, gold, skipped)
    data = load_data(store, golds)
    compare = _compare_present(store, [c for c in compare if c != gold])
    fold = folds(golds, k)
    tally = _Tally()
    chosen = []
    for f in range(k):
        train = [i for i, fo in enumerate(fold) if fo != f]
        test = [i for i, fo in enumerate(fold) if fo == f]
        if not test:
            continue
        hp = select(data, train)
        chosen.append(hp)
        preds = _fit_predict(data, train, test, hp["l2"], (hp["agent_rule"],))[hp["agent_rule"]]
        _score(store, data, tally, train, test, preds, compare)
    cv = tally.report()
    everything = list(range(len(golds)))
    hp = select(data, everything)  # as inside each outer part (an inner 3-fold CV)
    rows, off, gold_rows = _rows(data, everything)
    ranker = fit(data.X[rows], off, gold_rows, l2=hp["l2"])
    by_sys: dict[str, int] = {}
    for g in golds:
        by_sys[g.system] = by_sys.get(g.system, 0) + 1
    model = AttributionModel(
        ranker, hp["agent_rule"], {"l2": hp["l2"], "l2_grid": list(L2_GRID), "inner_folds": INNER_FOLDS,
                                   "chosen_per_outer_fold": chosen},
        {"gold": gold, "where": where, "traces": len(golds), "by_system": by_sys, "digest": training_digest(golds),
         "cv_folds": k, "seed": SEED},
        cv, taxonomy=taxonomy, libraries=libraries()).with_id()
    return LearnResult(model, cv, skipped)


def holdout(store, gold: str = "human", *, train_where: str | None, test_where: str,
            compare: Sequence[str] = ("rules",)) -> dict[str, Any]:
    """Train on ``train_where`` (hyperparameters by CV there), score on ``test_where``."""
    tr_gold, skipped = load_gold(store, gold, train_where)
    te_gold, _ = load_gold(store, gold, test_where)
    tr_ids = {g.trace_id for g in tr_gold}
    te_gold = [g for g in te_gold if g.trace_id not in tr_ids]
    _check_counts(tr_gold, INNER_FOLDS, gold, skipped)
    if not te_gold:
        raise UsageError(f"no gold root causes by {gold!r} match --test-where outside the training selection")
    golds = tr_gold + te_gold
    data = load_data(store, golds)
    train = list(range(len(tr_gold)))
    test = list(range(len(tr_gold), len(golds)))
    hp = select(data, train)
    preds = _fit_predict(data, train, test, hp["l2"], (hp["agent_rule"],))[hp["agent_rule"]]
    tally = _Tally()
    _score(store, data, tally, train, test, preds, _compare_present(store, [c for c in compare if c != gold]))
    return {"train": {"where": train_where, "traces": len(tr_gold)}, "hyperparameters": hp,
            "test": tally.report()}

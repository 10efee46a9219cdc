"""Agreement between annotators: which label counts, and how far two annotators agree.

Contract (``mast evaluate`` and the report both use this module; nothing else computes
agreement or picks the label that counts):

- **The label that counts** (:func:`latest_labels`): for each (trace, mode, annotator) of a
  taxonomy, the newest stored row (by ``created_at``, then ``run_id``): ``--action
  append`` runs keep history, and only the latest row counts.  ``unknown`` labels are
  not assessments and are left out, as are labels of traces that are not in the store.
- **Signals are not labels** (:func:`latest_signals`): rows of an annotator
  ``<name>:signal`` (label ``unknown``, see :data:`mast.model.SIGNAL_SUFFIX`) are hints
  with evidence; being ``unknown`` they never count, and readers that show hints (the
  report's explorer) get them from :func:`latest_signals`, the newest row per (trace,
  mode, annotator).
- **Authority** (:func:`authority_rank`): ``human`` > ``human:*`` > ``community:*`` >
  ``judge*`` > ``learned*`` > ``rules*`` > any other: people first, then the judge, then
  the learned models (which beat the rules' figures on the labelled sets), then the rules.  When every pair of annotators is compared, the
  more authoritative one (at equal rank, the alphabetically first) is the reference
  (``gold``).
- **Per mode** (:class:`ModeAgreement`): the 2×2 table of ``pred`` against ``gold`` over
  the traces on which both labelled the mode, and from it precision, recall, F1 and
  Cohen's κ with "present" as the positive class: the values scikit-learn's
  ``precision_recall_fscore_support`` and ``cohen_kappa_score`` give (the tests check the
  equality), computed from counts so that 100,000 traces cost one GROUP BY.  An
  undefined metric is ``None``: precision with no predicted positive, recall with no gold
  positive, F1 when neither said present, κ when both gave one and the same label on
  every trace.
- **Per pair** (:class:`Agreement`): ``traces`` counts the traces both annotators
  labelled (any mode); the macro average of a metric is the unweighted mean over the
  modes where it is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mast.model import SIGNAL_SUFFIX
from mast.scope import UNKNOWN_SYSTEM

#: Who is believed first: people, then the judge, then the cascade (the judge where it
#: looked, its distilled models elsewhere), then learned models, then the rules.
_AUTHORITY = ("human:", "community:", "judge", "cascade", "learned", "rules")


def authority_rank(annotator: str) -> int:
    """0 for ``human``, then 1, 2, … for the prefixes of :data:`_AUTHORITY`, last any other."""
    if annotator == "human":
        return 0
    for i, prefix in enumerate(_AUTHORITY, start=1):
        if annotator.startswith(prefix):
            return i
    return len(_AUTHORITY) + 1


def authority_rank_sql(col: str = "annotator") -> str:
    """:func:`authority_rank` as a SQL expression over the column ``col``."""
    whens = " ".join(f"WHEN {col} LIKE '{p}%' THEN {i}" for i, p in enumerate(_AUTHORITY, start=1))
    return f"CASE WHEN {col} = 'human' THEN 0 {whens} ELSE {len(_AUTHORITY) + 1} END"


def latest_labels(store, taxonomy: str, *, systems: Sequence[str] | None = None,
                  annotators: Sequence[str] | None = None) -> tuple[str, list]:
    """The query (and its parameters) of the labels that count, one row per (trace, mode,
    annotator): ``trace_id, system, mode, annotator, present, confidence, evidence_steps,
    rationale, rank`` (``system`` never NULL, ``rank`` the annotator's authority)."""
    where, params = ["a.taxonomy = ?", "a.label IN ('present', 'absent')"], [UNKNOWN_SYSTEM, taxonomy]
    if systems:
        where.append("coalesce(t.system, ?) IN (SELECT unnest(?))")
        params += [UNKNOWN_SYSTEM, list(systems)]
    if annotators:
        where.append("a.annotator IN (SELECT unnest(?))")
        params.append(list(annotators))
    # Several rows per (trace, mode, annotator) exist only after `--action append` runs;
    # checking first spares the window (the costliest step at 100k traces) when none do.
    dup = store.fetchall("""SELECT count(*) FROM (SELECT 1 FROM annotations
                            WHERE taxonomy = ? AND label IN ('present', 'absent')
                            GROUP BY trace_id, mode, annotator HAVING count(*) > 1 LIMIT 1)""", [taxonomy])[0][0]
    latest = ("QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.mode, a.annotator "
              "ORDER BY a.created_at DESC, a.run_id DESC NULLS LAST) = 1") if dup else ""
    return f"""
        SELECT a.trace_id, coalesce(t.system, ?) AS system, a.mode, a.annotator, a.label = 'present' AS present,
               a.confidence, a.evidence_steps, a.rationale, {authority_rank_sql('a.annotator')} AS rank
        FROM annotations a JOIN traces t USING (trace_id)
        WHERE {' AND '.join(where)}
        {latest}""", params


def latest_signals(taxonomy: str) -> tuple[str, list]:
    """The query (and its parameters) of the signals, one row per (trace, mode, annotator):
    ``trace_id, mode, annotator, confidence, evidence_steps, rationale``."""
    return """
        SELECT trace_id, mode, annotator, confidence, evidence_steps, rationale FROM annotations
        WHERE taxonomy = ? AND label = 'unknown' AND ends_with(annotator, ?)
        QUALIFY row_number() OVER (PARTITION BY trace_id, mode, annotator
                                   ORDER BY created_at DESC, run_id DESC NULLS LAST) = 1""", [taxonomy, SIGNAL_SUFFIX]


@dataclass(frozen=True, slots=True)
class ModeAgreement:
    """``pred`` against ``gold`` on one mode, over the ``n`` traces both labelled it."""

    gold: str
    pred: str
    mode: str
    n: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def assessed(self) -> bool:
        return self.n > 0

    @property
    def support(self) -> int:
        return self.tp + self.fn  # gold positives

    @property
    def predicted(self) -> int:
        return self.tp + self.fp  # pred positives

    @property
    def precision(self) -> float | None:
        return self.tp / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.support if self.support else None

    @property
    def f1(self) -> float | None:
        den = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / den if den else None

    @property
    def kappa(self) -> float | None:
        """Cohen's κ from the 2×2 table."""
        n = self.n
        if not n:
            return None
        po = (self.tp + self.tn) / n
        pe = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / (n * n)
        if pe >= 1.0:
            return None  # both annotators constant and identical: κ is 0/0
        return (po - pe) / (1 - pe)


@dataclass(frozen=True)
class Agreement:
    """One (gold, pred) pair: the modes both labelled on some trace, in mode order."""

    gold: str
    pred: str
    traces: int
    modes: list[ModeAgreement]

    def macro(self, metric: str) -> float | None:
        """Unweighted mean of ``metric`` (precision, recall, f1, kappa) where it is defined."""
        vals = [v for v in (getattr(m, metric) for m in self.modes) if v is not None]
        return sum(vals) / len(vals) if vals else None

    @property
    def macro_kappa(self) -> float | None:
        return self.macro("kappa")

    @property
    def macro_f1(self) -> float | None:
        return self.macro("f1")


def compare_pair(store, labels: str, params: Sequence, gold: str, pred: str) -> Agreement:
    """``pred`` against ``gold`` over ``labels``: a query with the columns of :func:`latest_labels`
    (at least ``trace_id, mode, annotator, present, rank``).  ``gold`` may equal ``pred``."""
    by_pair, shared = _compare(store, labels, params, "g.annotator = ? AND p.annotator = ?", [gold, pred])
    return Agreement(gold, pred, shared.get((gold, pred), 0), by_pair.get((gold, pred), []))


def compare_all(store, labels: str, params: Sequence = ()) -> list[Agreement]:
    """Every pair of annotators in ``labels`` (as for :func:`compare_pair`) that labelled a
    mode on the same trace, the more authoritative as gold, in authority order."""
    by_pair, shared = _compare(store, labels, params,
                               "(g.rank < p.rank OR (g.rank = p.rank AND g.annotator < p.annotator))", [])
    return [Agreement(g, p, shared.get((g, p), 0), modes) for (g, p), modes in by_pair.items()]


def _compare(store, labels: str, params: Sequence, cond: str, cond_params: list):
    rows = store.fetchall(f"""
        WITH l AS ({labels})
        SELECT g.annotator, p.annotator, g.mode, count(*),
               count(*) FILTER (WHERE g.present AND p.present),
               count(*) FILTER (WHERE NOT g.present AND p.present),
               count(*) FILTER (WHERE g.present AND NOT p.present),
               count(*) FILTER (WHERE NOT g.present AND NOT p.present)
        FROM l g JOIN l p ON g.trace_id = p.trace_id AND g.mode = p.mode AND {cond}
        GROUP BY 1, 2, 3 ORDER BY min(g.rank), 1, 2, 3""", [*params, *cond_params])
    shared = {(g, p): int(n) for g, p, n in store.fetchall(f"""
        WITH l AS ({labels}), t AS (SELECT DISTINCT trace_id, annotator, rank FROM l)
        SELECT g.annotator, p.annotator, count(*) FROM t g JOIN t p ON g.trace_id = p.trace_id AND {cond}
        GROUP BY 1, 2""", [*params, *cond_params])}
    by_pair: dict[tuple[str, str], list[ModeAgreement]] = {}
    for r in rows:
        by_pair.setdefault((r[0], r[1]), []).append(ModeAgreement(r[0], r[1], r[2], *map(int, r[3:8])))
    return by_pair, shared

"""Failure exposure and annotator agreement, aggregated in DuckDB.

Contract:
- A mode is *assessed* for a trace by an annotator iff that annotator stored a
  ``present`` or ``absent`` label for it (``unknown`` does not count).  Where several
  rows exist for the same (trace, mode, annotator) — ``--action append`` runs — the
  newest one counts.
- ``rate = count / n`` where ``n`` is the number of traces of the system on which the
  mode was assessed and ``count`` those labelled present.  ``n == 0`` means "not
  assessed": callers must show it as such, never as a zero rate.
- The **best available** view (annotator name :data:`BEST`) takes, for each
  (trace, mode), the label of the most authoritative annotator that assessed it:
  ``human`` > ``human:*`` > ``community:*`` > ``judge:*`` > ``rules*`` > any other,
  ties broken by annotator name.  It lets one heatmap cover a store where humans
  labelled some traces and classifiers the rest, while every per-annotator view
  stays available.
- Intervals are 95% Wilson score intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

BEST = "best available"
UNKNOWN_SYSTEM = "(unknown)"
LAB = "_mast_rpt_lab"  # temp table: one deduplicated assessment per (trace, mode, annotator)


def authority_rank_sql(col: str = "annotator") -> str:
    return (f"CASE WHEN {col} = 'human' THEN 0 WHEN {col} LIKE 'human:%' THEN 1 "
            f"WHEN {col} LIKE 'community:%' THEN 2 WHEN {col} LIKE 'judge%' THEN 3 "
            f"WHEN {col} LIKE 'rules%' THEN 4 ELSE 5 END")


def authority_rank(annotator: str) -> int:
    if annotator == "human":
        return 0
    for i, prefix in enumerate(("human:", "community:", "judge", "rules"), start=1):
        if annotator.startswith(prefix):
            return i
    return 5


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """95% Wilson score interval for k successes out of n; None when n == 0."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Cell:
    system: str
    annotator: str
    mode: str
    count: int
    n: int

    @property
    def assessed(self) -> bool:
        return self.n > 0

    @property
    def rate(self) -> float | None:
        return self.count / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.count, self.n)


@dataclass(frozen=True, slots=True)
class Agreement:
    """Per-mode agreement of ``pred`` against ``gold`` over traces both assessed."""

    gold: str
    pred: str
    mode: str
    n: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def f1(self) -> float | None:
        den = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / den if den else None  # undefined when neither saw the mode

    @property
    def kappa(self) -> float | None:
        """Cohen's κ from the 2×2 table (same value as sklearn's cohen_kappa_score)."""
        n = self.n
        if not n:
            return None
        po = (self.tp + self.tn) / n
        pe = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / (n * n)
        if pe >= 1.0:
            return None  # both annotators constant and identical: κ is undefined
        return (po - pe) / (1 - pe)


def prepare_labels(store, taxonomy: str, systems: Sequence[str] | None,
                   annotators: Sequence[str] | None) -> None:
    """Materialise the deduplicated assessments of the selection as a temp table."""
    where, params = ["a.taxonomy = ?", "a.label IN ('present', 'absent')"], [taxonomy]
    if systems:
        where.append("coalesce(t.system, ?) IN (SELECT unnest(?))")
        params += [UNKNOWN_SYSTEM, list(systems)]
    if annotators:
        where.append("a.annotator IN (SELECT unnest(?))")
        params.append(list(annotators))
    # Several rows per (trace, mode, annotator) exist only after `--action append` runs;
    # checking first spares the window (the costliest step at 100k traces) when none do.
    dup = store.fetchall("""SELECT count(*) FROM (SELECT 1 FROM annotations WHERE label IN ('present', 'absent')
                            GROUP BY trace_id, taxonomy, mode, annotator HAVING count(*) > 1 LIMIT 1)""")[0][0]
    latest = ("QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.mode, a.annotator "
              "ORDER BY a.created_at DESC) = 1") if dup else ""
    # ``ord``: each annotator's place in the authority order (rank, then name) as one
    # integer, so the best-available view is a min() window instead of a sort.
    names = sorted((r[0] for r in store.fetchall("SELECT DISTINCT annotator FROM annotations")),
                   key=lambda a: (authority_rank(a), a))
    store.execute(f"CREATE OR REPLACE TEMP TABLE {LAB}_ord AS SELECT unnest(?) AS annotator, "
                  "unnest(range(len(?))) AS ord", [names, names])
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE {LAB} AS
        SELECT a.trace_id, coalesce(t.system, '{UNKNOWN_SYSTEM}') AS system, a.mode, a.annotator,
               a.label = 'present' AS present, a.confidence, a.evidence_steps, a.rationale,
               {authority_rank_sql('a.annotator')} AS rank, o.ord
        FROM annotations a JOIN traces t USING (trace_id) JOIN {LAB}_ord o USING (annotator)
        WHERE {' AND '.join(where)}
        {latest}""", params)
    # The best-available view, stored once: every later question reads it.  One row per
    # (trace, mode, annotator) makes the minimum ord unique.
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE {LAB}_best AS
        SELECT * FROM {LAB} QUALIFY ord = min(ord) OVER (PARTITION BY trace_id, mode)""")


def drop_labels(store) -> None:
    store.execute(f"DROP TABLE IF EXISTS {LAB}")
    store.execute(f"DROP TABLE IF EXISTS {LAB}_best")
    store.execute(f"DROP TABLE IF EXISTS {LAB}_ord")


def exposure_cells(store) -> list[Cell]:
    """Counts per (system, annotator, mode), plus the best-available view as :data:`BEST`."""
    rows = store.fetchall(f"""
        SELECT system, annotator, mode, count(*) FILTER (WHERE present), count(*) FROM {LAB} GROUP BY ALL
        UNION ALL
        SELECT system, ?, mode, count(*) FILTER (WHERE present), count(*) FROM {LAB}_best GROUP BY ALL""",
                          [BEST])
    return [Cell(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


def category_cells(store, mode_category: dict[str, str]) -> list[Cell]:
    """Per (system, annotator, category): traces with ≥1 mode of the category present,
    over traces with ≥1 mode of the category assessed.  ``Cell.mode`` holds the category."""
    modes, cats = list(mode_category), [mode_category[m] for m in mode_category]
    rows = store.fetchall(f"""
        WITH cat AS (SELECT unnest(?) AS mode, unnest(?) AS category),
        l AS (SELECT trace_id, system, annotator, mode, present FROM {LAB}
              UNION ALL SELECT trace_id, system, ? AS annotator, mode, present FROM {LAB}_best),
        per AS (SELECT system, annotator, category, trace_id, bool_or(present) AS any_present
                FROM l JOIN cat USING (mode) GROUP BY ALL)
        SELECT system, annotator, category, count(*) FILTER (WHERE any_present), count(*) FROM per GROUP BY ALL""",
                          [modes, cats, BEST])
    return [Cell(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


def flagged_traces(store) -> dict[str, tuple[int, int]]:
    """system -> (traces with ≥1 mode present, traces with ≥1 mode assessed), best view."""
    rows = store.fetchall(f"""
        SELECT system, count(*) FILTER (WHERE p), count(*) FROM
          (SELECT system, trace_id, bool_or(present) AS p FROM {LAB}_best GROUP BY ALL) GROUP BY 1""")
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def agreement(store, min_overlap: int = 1) -> tuple[list[Agreement], dict[tuple[str, str], int]]:
    """Every ordered pair (gold, pred) with gold more authoritative (or alphabetically first
    at equal authority), per mode, over the traces both assessed for that mode; and per
    pair the number of traces both assessed (one join, two grouping sets)."""
    rows = store.fetchall(f"""
        SELECT g.annotator, p.annotator, g.mode, count(*),
               count(*) FILTER (WHERE g.present AND p.present),
               count(*) FILTER (WHERE NOT g.present AND p.present),
               count(*) FILTER (WHERE g.present AND NOT p.present),
               count(*) FILTER (WHERE NOT g.present AND NOT p.present),
               count(DISTINCT g.trace_id)
        FROM {LAB} g JOIN {LAB} p ON g.trace_id = p.trace_id AND g.mode = p.mode
             AND (g.rank < p.rank OR (g.rank = p.rank AND g.annotator < p.annotator))
        GROUP BY GROUPING SETS ((g.annotator, p.annotator, g.mode), (g.annotator, p.annotator))
        HAVING count(*) >= ?
        ORDER BY min(g.rank), 1, 2, 3 NULLS FIRST""", [min_overlap])
    per_mode = [Agreement(*r[:3], *map(int, r[3:8])) for r in rows if r[2] is not None]
    overlap = {(r[0], r[1]): int(r[8]) for r in rows if r[2] is None}
    return per_mode, overlap

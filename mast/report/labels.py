"""The report's labels: one temporary table of the labels that count, and what they add up to.

Contract:
- :class:`Labels` is the only owner of the report's label tables: entering it creates
  them (TEMP tables on the store's connection, which never touch the file), leaving it
  drops them.  Everything else reads them through its methods or the queries
  :attr:`Labels.all` and :attr:`Labels.best`, never by table name.
- The labels are those of :func:`mast.agreement.latest_labels` for the selection (one
  row per trace, mode and annotator), plus ``ord``: the annotator's place in the
  authority order as one integer.
- A mode is *assessed* for a trace by an annotator iff that annotator has a label for it.
  ``rate = count / n`` where ``n`` is the number of traces of the system on which the
  mode was assessed and ``count`` those labelled present.  ``n == 0`` means "not
  assessed": callers must show it as such, never as a zero rate.
- The **best available** view (annotator name :data:`BEST`) takes, for each (trace,
  mode), the label of the most authoritative annotator that assessed it (see
  :func:`mast.agreement.authority_rank`; ties broken by annotator name).  It lets one
  heatmap cover a store where humans labelled some traces and classifiers the rest,
  while every per-annotator view stays available.  Each best-available cell carries its
  ``sources``: how many of its ``n`` traces each annotator's label came from, so every
  figure can say whose it is.
- Intervals are 95% Wilson score intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Sequence

from mast.agreement import Agreement, authority_rank, compare_all, latest_labels
from mast.calibration import wilson  # noqa: F401 - re-exported: cells and benches quote it from here

BEST = "best available"
_SERIAL = count()


@dataclass(frozen=True, slots=True)
class Cell:
    system: str
    annotator: str
    mode: str
    count: int
    n: int
    #: best-available cells: (annotator, traces) whose label counts here, most authoritative first
    sources: tuple[tuple[str, int], ...] = ()

    @property
    def assessed(self) -> bool:
        return self.n > 0

    @property
    def rate(self) -> float | None:
        return self.count / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.count, self.n)


class Labels:
    """The labels that count for a selection, as temp tables; use as a context manager."""

    def __init__(self, store, taxonomy: str, systems: Sequence[str] | None = None,
                 annotators: Sequence[str] | None = None) -> None:
        self.store, self.taxonomy = store, taxonomy
        self.systems, self.annotators = list(systems or []), list(annotators or [])
        # A name of its own per instance: two reports on one connection never share a table.
        self._table = f"_mast_rpt_lab{next(_SERIAL)}"

    @property
    def all(self) -> str:
        """Query: every label that counts (columns of ``latest_labels`` plus ``ord``)."""
        return f"SELECT * FROM {self._table}"

    @property
    def best(self) -> str:
        """Query: the best-available label of each (trace, mode), same columns."""
        return f"SELECT * FROM {self._table}_best"

    def __enter__(self) -> Labels:
        st = self.store
        sql, params = latest_labels(st, self.taxonomy, systems=self.systems, annotators=self.annotators)
        # ``ord``: each annotator's place in the authority order (rank, then name) as one
        # integer, so the best-available view is a min() window instead of a sort.
        names = sorted((r[0] for r in st.fetchall("SELECT DISTINCT annotator FROM annotations")),
                       key=lambda a: (authority_rank(a), a))
        try:
            st.execute(f"CREATE OR REPLACE TEMP TABLE {self._table}_ord AS SELECT unnest(?) AS annotator, "
                       "unnest(range(len(?))) AS ord", [names, names])
            st.execute(f"""CREATE OR REPLACE TEMP TABLE {self._table} AS
                           SELECT l.*, o.ord FROM ({sql}) l JOIN {self._table}_ord o USING (annotator)""", params)
            # The best-available view, stored once: every later question reads it.  One row
            # per (trace, mode, annotator) makes the minimum ord unique.
            st.execute(f"""CREATE OR REPLACE TEMP TABLE {self._table}_best AS
                           SELECT * FROM {self._table} QUALIFY ord = min(ord) OVER (PARTITION BY trace_id, mode)""")
        except BaseException:
            self._drop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._drop()

    def _drop(self) -> None:
        for suffix in ("_best", "", "_ord"):
            self.store.execute(f"DROP TABLE IF EXISTS {self._table}{suffix}")

    # -- what the labels add up to -----------------------------------------------------
    def cells(self) -> list[Cell]:
        """Counts per (system, annotator, mode), plus the best-available view as :data:`BEST`."""
        rows = self.store.fetchall(f"""
            SELECT system, annotator, mode, count(*) FILTER (WHERE present), count(*) FROM ({self.all}) GROUP BY ALL
            UNION ALL
            SELECT system, ?, mode, count(*) FILTER (WHERE present), count(*) FROM ({self.best}) GROUP BY ALL""",
                                   [BEST])
        src = self._sources(f"""SELECT system, mode, annotator, count(*), min(ord) FROM ({self.best}) GROUP BY ALL""")
        return [Cell(r[0], r[1], r[2], int(r[3]), int(r[4]), src.get((r[0], r[2]), ()) if r[1] == BEST else ())
                for r in rows]

    def _sources(self, sql: str, params: Sequence = ()) -> dict[tuple[str, str], tuple[tuple[str, int], ...]]:
        """(system, mode or category) -> ((annotator, traces), ...) in authority order, from
        rows ``system, key, annotator, traces, ord``."""
        acc: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
        for system, key, annotator, n, o in self.store.fetchall(sql, list(params)):
            acc.setdefault((system, key), []).append((int(o), annotator, int(n)))
        return {k: tuple((a, n) for _, a, n in sorted(v)) for k, v in acc.items()}

    def category_cells(self, mode_category: dict[str, str]) -> list[Cell]:
        """Per (system, annotator, category): traces with ≥1 mode of the category present,
        over traces with ≥1 mode of the category assessed.  ``Cell.mode`` holds the category."""
        modes, cats = list(mode_category), [mode_category[m] for m in mode_category]
        rows = self.store.fetchall(f"""
            WITH cat AS (SELECT unnest(?) AS mode, unnest(?) AS category),
            l AS (SELECT trace_id, system, annotator, mode, present FROM ({self.all})
                  UNION ALL SELECT trace_id, system, ? AS annotator, mode, present FROM ({self.best})),
            per AS (SELECT system, annotator, category, trace_id, bool_or(present) AS any_present
                    FROM l JOIN cat USING (mode) GROUP BY ALL)
            SELECT system, annotator, category, count(*) FILTER (WHERE any_present), count(*) FROM per GROUP BY ALL""",
                                   [modes, cats, BEST])
        src = self._sources(f"""
            WITH cat AS (SELECT unnest(?) AS mode, unnest(?) AS category)
            SELECT system, category, annotator, count(DISTINCT trace_id), min(ord)
            FROM ({self.best}) JOIN cat USING (mode) GROUP BY ALL""", [modes, cats])
        return [Cell(r[0], r[1], r[2], int(r[3]), int(r[4]), src.get((r[0], r[2]), ()) if r[1] == BEST else ())
                for r in rows]

    def flagged(self) -> dict[str, tuple[int, int]]:
        """system -> (traces with ≥1 mode present, traces with ≥1 mode assessed), best view."""
        rows = self.store.fetchall(f"""
            SELECT system, count(*) FILTER (WHERE p), count(*) FROM
              (SELECT system, trace_id, bool_or(present) AS p FROM ({self.best}) GROUP BY ALL) GROUP BY 1""")
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def agreement(self) -> list[Agreement]:
        """Every pair of annotators that labelled a mode on the same trace (see :mod:`mast.agreement`)."""
        return compare_all(self.store, self.all)

"""What every report section is given: the selection, its labels, and the page-wide facts.

Contract:
- :class:`Page` is built once per report, before any section, by
  :func:`mast.report.context.build_context`.  A section's builder reads the store
  through it (read-only: TEMP tables only, created and dropped by their owner) and adds
  notes for the reader with :meth:`Page.note`.
- The page-wide facts — the taxonomy's modes and categories, one
  :class:`SystemOverview` per selected system and one :class:`AnnotatorInfo` per
  annotator — cover **every** selected trace; they are what the header, the filters
  and several sections share.  Per-trace detail is bounded by :class:`Limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mast.agreement import authority_rank
from mast.report.labels import BEST, Cell, Labels
from mast.scope import traces_sql
from mast.taxonomy import Mode, Taxonomy


@dataclass(frozen=True)
class Limits:
    """Bounds on per-trace detail (the summaries are never bounded)."""

    max_traces: int = 2000          # traces listed in the explorer
    per_cell: int = 5               # examples per system × mode (best-available view)
    per_annotator_cell: int = 3     # examples per system × mode × annotator
    per_system_root_cause: int = 20  # traces with a root-cause attribution, per system
    step_chars: int = 1500          # characters of each step's content kept
    max_steps: int = 300            # longer traces keep head, tail and steps near evidence
    head_steps: int = 150
    tail_steps: int = 50
    detail_bytes: int = 14_000_000  # the explorer's steps, as escaped JSON in the page
    list_bytes: int = 6_000_000     # the explorer's list rows (task, tags, rationales), likewise
    rationale_chars: int = 600
    task_chars: int = 300


@dataclass(frozen=True)
class TopMode:
    mode: str
    name: str
    count: int
    n: int
    rate: float
    #: (annotator, traces) whose best-available label this figure counts, most authoritative first
    sources: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SystemOverview:
    system: str
    frameworks: str
    traces: int
    steps: int
    agents: int
    success: int
    failure: int
    unknown_outcome: int
    flagged: int          # traces with ≥1 mode present (best available view)
    assessed: int         # traces with ≥1 mode assessed
    tokens: int | None
    cost_usd: float | None
    top_modes: list[TopMode]

    @property
    def outcome_failure_rate(self) -> float | None:
        known = self.success + self.failure
        return self.failure / known if known else None

    @property
    def flagged_rate(self) -> float | None:
        return self.flagged / self.assessed if self.assessed else None


@dataclass(frozen=True)
class AnnotatorInfo:
    name: str
    kind: str             # human / community / judge / rules / other
    traces: int           # traces with ≥1 assessed mode
    modes: int            # distinct modes assessed
    present: int          # present labels
    attributions: int     # root-cause rows


def annotator_kind(name: str) -> str:
    for kind in ("human", "community", "judge", "learned", "rules"):
        if name == kind or name.startswith(kind + ":") or name.startswith(kind):
            return kind
    return "other"


@dataclass
class Page:
    """The input of every section's builder (see :mod:`mast.report.section`)."""

    store: Any
    taxonomy: Taxonomy
    labels: Labels
    limits: Limits
    selected_systems: list[str]
    selected_annotators: list[str]
    notes: list[str] = field(default_factory=list)
    #: (baseline, candidate) selection texts of a comparison view (mast.compare), if asked for
    comparison: tuple[str, str] | None = None
    modes: list[Mode] = field(init=False)
    categories: list[tuple[str, str]] = field(init=False)  # (id, name), taxonomy order
    cells: list[Cell] = field(init=False)               # exposure of every (system, annotator or BEST, mode)
    annotators: list[AnnotatorInfo] = field(init=False)  # everyone in the selection, most authoritative first
    systems: list[SystemOverview] = field(init=False)    # each selected system that has traces, by name

    def __post_init__(self) -> None:
        self.modes = list(self.taxonomy.modes)
        self.categories = list(dict.fromkeys((m.category, m.category_name) for m in self.modes))
        self.cells = self.labels.cells()
        # In this order: the notes about annotators come before the one about systems.
        self.annotators = _annotators(self)
        self.systems = _systems(self)

    def note(self, text: str) -> None:
        """Say something the reader should know (shown at the top of the page)."""
        self.notes.append(text)

    def traces_sql(self) -> tuple[str, list]:
        """The selected traces (every column of ``traces``, plus ``sys``) and the parameters."""
        return traces_sql(self.selected_systems)

    def attributions_where(self, alias: str = "a") -> tuple[str, list]:
        """``WHERE`` clause (or "") restricting attributions to the selected annotators."""
        if not self.selected_annotators:
            return "", []
        return f"WHERE {alias}.annotator IN (SELECT unnest(?))", [self.selected_annotators]


def _annotators(page: Page) -> list[AnnotatorInfo]:
    st = page.store
    sel, sel_params = page.traces_sql()
    att_where, att_params = page.attributions_where()
    att_counts = dict(st.fetchall(f"""
        WITH sel AS ({sel}) SELECT a.annotator, count(*) FROM attributions a JOIN sel USING (trace_id)
        {att_where} GROUP BY 1""", [*sel_params, *att_params]))
    rows = st.fetchall(f"""SELECT annotator, count(DISTINCT trace_id), count(DISTINCT mode),
        count(*) FILTER (WHERE present) FROM ({page.labels.all}) GROUP BY 1""")
    info = {r[0]: AnnotatorInfo(r[0], annotator_kind(r[0]), int(r[1]), int(r[2]), int(r[3]),
                                int(att_counts.get(r[0], 0))) for r in rows}
    for name, n in att_counts.items():
        info.setdefault(name, AnnotatorInfo(name, annotator_kind(name), 0, 0, 0, int(n)))
    for a in page.selected_annotators:
        if a not in info:
            page.note(f"Annotator {a!r} has no labels for the selected traces.")
    if not any(a.traces for a in info.values()):
        page.note("No failure-mode labels in the store for this selection: run `mast classify` "
                  "(or `mast analyze`) or import labelled data. Every mode is shown as not assessed.")
    return sorted(info.values(), key=lambda a: (authority_rank(a.name), a.name))


def _systems(page: Page) -> list[SystemOverview]:
    st = page.store
    sel, sel_params = page.traces_sql()
    rows = st.fetchall(f"""
        WITH sel AS ({sel})
        SELECT sys, string_agg(DISTINCT coalesce(framework, '?'), ', ' ORDER BY coalesce(framework, '?')),
               count(*), sum(n_steps),
               count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE outcome = 'failure'),
               count(*) FILTER (WHERE outcome NOT IN ('success', 'failure')),
               CASE WHEN count(tokens_in) + count(tokens_out) > 0
                    THEN sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)) END,
               sum(cost_usd)
        FROM sel GROUP BY 1 ORDER BY 1""", sel_params)
    agents = dict(st.fetchall(f"""
        WITH sel AS ({sel}) SELECT sel.sys, count(DISTINCT s.agent) FROM steps s JOIN sel USING (trace_id)
        GROUP BY 1""", sel_params))
    best: dict[str, list[Cell]] = {}
    for c in page.cells:
        if c.annotator == BEST and c.count > 0:
            best.setdefault(c.system, []).append(c)
    flagged = page.labels.flagged()
    mode_name = {m.id: m.name for m in page.modes}
    out = []
    for r in rows:
        system = r[0]
        cells = sorted(best.get(system, []), key=lambda c: (-(c.rate or 0), -c.count, c.mode))
        k, n = flagged.get(system, (0, 0))
        out.append(SystemOverview(
            system=system, frameworks=r[1] or "", traces=int(r[2]), steps=int(r[3] or 0),
            agents=int(agents.get(system, 0)), success=int(r[4]), failure=int(r[5]),
            unknown_outcome=int(r[6]), flagged=k, assessed=n,
            tokens=None if r[7] is None else int(r[7]), cost_usd=r[8],
            top_modes=[TopMode(c.mode, mode_name.get(c.mode, c.mode), c.count, c.n, c.rate or 0.0, c.sources)
                       for c in cells[:3]]))
    missing = sorted(set(page.selected_systems) - {o.system for o in out})
    if missing:
        page.note("No traces for system(s): " + ", ".join(missing) + ".")
    return out

"""Build the report's context: a pure function from a store to one dataclass.

Contract:
- :func:`build_context` only reads the store (it creates and drops TEMP tables on the
  connection, which never touches the file); the same store gives the same context
  apart from ``generated_at``.
- Summaries (overview, exposure, categories, agents, agreement, coordination) cover
  **every** selected trace.  Per-trace detail for the explorer is bounded by
  :class:`Limits` so a store of 100,000 traces still gives a file of a few MB; the
  context says what was included and why (:class:`Explorer`), and the page shows it.
- Every string in the context is untrusted data from traces; the renderer escapes it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from mast import __version__
from mast.coordination import Coordination, coordination
from mast.report import exposure as ex
from mast.report.exposure import BEST, UNKNOWN_SYSTEM, Agreement, Cell
from mast.report.jsonblock import script_json
from mast.taxonomy import DEFAULT_TAXONOMY
from mast.taxonomy import load as load_taxonomy

PICK = "_mast_rpt_pick"


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
class ModeInfo:
    id: str
    name: str
    category: str
    category_name: str
    definition: str
    evidence: str
    covered_by: tuple[str, ...] | None  # registered classifiers able to assess it (None: unknown)


@dataclass(frozen=True)
class TopMode:
    mode: str
    name: str
    count: int
    n: int
    rate: float


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


@dataclass(frozen=True)
class AgentRow:
    agent: str
    evidence: int           # evidence steps (present labels, best view) that are this agent's
    evidence_traces: int
    top_modes: list[tuple[str, int]]
    root_causes: dict[str, int]  # annotator -> traces naming this agent as root cause

    @property
    def root_total(self) -> int:
        return sum(self.root_causes.values())


@dataclass(frozen=True)
class AgreementPair:
    gold: str
    pred: str
    traces: int
    modes: list[Agreement]

    @property
    def macro_kappa(self) -> float | None:
        v = [m.kappa for m in self.modes if m.kappa is not None]
        return sum(v) / len(v) if v else None

    @property
    def macro_f1(self) -> float | None:
        v = [m.f1 for m in self.modes if m.f1 is not None]
        return sum(v) / len(v) if v else None


@dataclass
class Explorer:
    total_traces: int
    listed: int
    detailed: int
    limits: Limits
    traces: list[dict[str, Any]]            # compact rows, see _explorer()
    details: dict[str, dict[str, Any]]      # trace_id -> agents + steps
    truncated_steps: int = 0                # steps whose text was cut to limits.step_chars
    elided_traces: int = 0                  # traces whose middle steps were left out

    @property
    def complete(self) -> bool:
        return self.listed == self.total_traces and self.detailed == self.listed


@dataclass
class ReportContext:
    title: str
    generated_at: str
    mast_version: str
    store_path: str
    taxonomy_id: str
    taxonomy_name: str
    selected_systems: list[str]
    selected_annotators: list[str]
    modes: list[ModeInfo]
    categories: list[tuple[str, str]]             # (id, name)
    systems: list[SystemOverview]
    annotators: list[AnnotatorInfo]
    views: list[str]                               # BEST first, then annotators
    exposure: dict[str, dict[str, dict[str, Cell]]]      # view -> system -> mode -> cell
    category_exposure: dict[str, dict[str, dict[str, Cell]]]  # view -> system -> category -> cell
    agents: dict[str, list[AgentRow]]              # system -> rows
    agreement: list[AgreementPair]
    coordination: Coordination
    explorer: Explorer
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, Any]:
        tok = [s.tokens for s in self.systems if s.tokens is not None]
        cost = [s.cost_usd for s in self.systems if s.cost_usd is not None]
        return {"traces": sum(s.traces for s in self.systems), "steps": sum(s.steps for s in self.systems),
                "systems": len(self.systems), "tokens": sum(tok) if tok else None,
                "cost_usd": sum(cost) if cost else None}


def annotator_kind(name: str) -> str:
    for kind in ("human", "community", "judge", "rules"):
        if name == kind or name.startswith(kind + ":") or name.startswith(kind):
            return kind
    return "other"


def _coverage(taxonomy) -> tuple[dict[str, list[str]] | None, str | None]:
    # Registered classifiers that could assess each mode; a classifier module that fails
    # to import must not take the report down with it, but the page says so.
    try:
        from mast.classify import coverage
        return coverage(taxonomy), None
    except Exception as e:  # noqa: BLE001 — the report still renders, without coverage
        return None, f"Could not list which classifiers cover each mode ({type(e).__name__}: {e})."


def _sel_sql(systems: Sequence[str] | None) -> tuple[str, list]:
    if systems:
        return ("SELECT *, coalesce(system, ?) AS sys FROM traces WHERE coalesce(system, ?) IN (SELECT unnest(?))",
                [UNKNOWN_SYSTEM, UNKNOWN_SYSTEM, list(systems)])
    return "SELECT *, coalesce(system, ?) AS sys FROM traces", [UNKNOWN_SYSTEM]


def build_context(store, *, systems: Sequence[str] | None = None, annotators: Sequence[str] | None = None,
                  taxonomy: str = DEFAULT_TAXONOMY, limits: Limits | None = None,
                  title: str = "Multi-agent failure report") -> ReportContext:
    limits = limits or Limits()
    tax = load_taxonomy(taxonomy)
    cov, cov_error = _coverage(tax)
    modes = [ModeInfo(m.id, m.name, m.category, m.category_name, m.definition, m.evidence,
                      None if cov is None else tuple(cov.get(m.id, ()))) for m in tax.modes]
    categories: list[tuple[str, str]] = []
    for m in modes:
        if (m.category, m.category_name) not in categories:
            categories.append((m.category, m.category_name))
    mode_category = {m.id: m.category for m in modes}
    mode_name = {m.id: m.name for m in modes}
    systems = list(systems or [])
    annotators = list(annotators or [])
    notes: list[str] = [cov_error] if cov_error else []

    ex.prepare_labels(store, tax.id, systems, annotators)
    try:
        sel, sel_params = _sel_sql(systems)
        # -- annotators ----------------------------------------------------------------
        att_where = "WHERE a.annotator IN (SELECT unnest(?))" if annotators else ""
        att_params = [annotators] if annotators else []
        att_counts = dict(store.fetchall(f"""
            WITH sel AS ({sel}) SELECT a.annotator, count(*) FROM attributions a JOIN sel USING (trace_id)
            {att_where} GROUP BY 1""", [*sel_params, *att_params]))
        ann_rows = store.fetchall(f"""SELECT annotator, count(DISTINCT trace_id), count(DISTINCT mode),
            count(*) FILTER (WHERE present) FROM {ex.LAB} GROUP BY 1""")
        ann_info = {r[0]: AnnotatorInfo(r[0], annotator_kind(r[0]), int(r[1]), int(r[2]), int(r[3]),
                                        int(att_counts.get(r[0], 0))) for r in ann_rows}
        for name, n in att_counts.items():
            ann_info.setdefault(name, AnnotatorInfo(name, annotator_kind(name), 0, 0, 0, int(n)))
        ann_list = sorted(ann_info.values(), key=lambda a: (ex.authority_rank(a.name), a.name))
        for a in annotators:
            if a not in ann_info:
                notes.append(f"Annotator {a!r} has no labels for the selected traces.")

        # -- exposure --------------------------------------------------------------------
        exposure: dict[str, dict[str, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
        for c in ex.exposure_cells(store):
            exposure[c.annotator][c.system][c.mode] = c
        cat_exp: dict[str, dict[str, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
        for c in ex.category_cells(store, mode_category):
            cat_exp[c.annotator][c.system][c.mode] = c
        flagged = ex.flagged_traces(store)
        views = [BEST] + [a.name for a in ann_list if a.traces]
        if not any(a.traces for a in ann_list):
            notes.append("No failure-mode labels in the store for this selection: run `mast classify` "
                         "(or `mast analyze`) or import labelled data. Every mode is shown as not assessed.")

        # -- overview ----------------------------------------------------------------------
        ov_rows = store.fetchall(f"""
            WITH sel AS ({sel})
            SELECT sys, string_agg(DISTINCT coalesce(framework, '?'), ', ' ORDER BY coalesce(framework, '?')),
                   count(*), sum(n_steps),
                   count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE outcome = 'failure'),
                   count(*) FILTER (WHERE outcome NOT IN ('success', 'failure')),
                   CASE WHEN count(tokens_in) + count(tokens_out) > 0
                        THEN sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)) END,
                   sum(cost_usd)
            FROM sel GROUP BY 1 ORDER BY 1""", sel_params)
        agents_per_sys = dict(store.fetchall(f"""
            WITH sel AS ({sel}) SELECT sel.sys, count(DISTINCT s.agent) FROM steps s JOIN sel USING (trace_id)
            GROUP BY 1""", sel_params))
        overview = []
        for r in ov_rows:
            system = r[0]
            cells = [c for c in exposure[BEST][system].values() if c.count > 0]
            cells.sort(key=lambda c: (-(c.rate or 0), -c.count, c.mode))
            k, n = flagged.get(system, (0, 0))
            overview.append(SystemOverview(
                system=system, frameworks=r[1] or "", traces=int(r[2]), steps=int(r[3] or 0),
                agents=int(agents_per_sys.get(system, 0)), success=int(r[4]), failure=int(r[5]),
                unknown_outcome=int(r[6]), flagged=k, assessed=n,
                tokens=None if r[7] is None else int(r[7]), cost_usd=r[8],
                top_modes=[TopMode(c.mode, mode_name.get(c.mode, c.mode), c.count, c.n, c.rate or 0.0)
                           for c in cells[:3]]))
        if systems:
            missing = sorted(set(systems) - {o.system for o in overview})
            if missing:
                notes.append("No traces for system(s): " + ", ".join(missing) + ".")

        agents = _agents(store, sel, sel_params, att_where, att_params)
        pairs = _agreement(store)
        coord = coordination(store, systems or None)
        explorer = _explorer(store, sel, sel_params, att_where, att_params, limits,
                             total=sum(o.traces for o in overview))
    finally:
        store.execute(f"DROP TABLE IF EXISTS {PICK}")
        ex.drop_labels(store)

    return ReportContext(
        title=title, generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        mast_version=__version__, store_path=str(getattr(store, "path", "")), taxonomy_id=tax.id,
        taxonomy_name=tax.name, selected_systems=systems, selected_annotators=annotators, modes=modes,
        categories=categories, systems=overview, annotators=ann_list, views=views,
        exposure={k: dict(v) for k, v in exposure.items()}, category_exposure={k: dict(v) for k, v in cat_exp.items()},
        agents=agents, agreement=pairs, coordination=coord, explorer=explorer, notes=notes)


def _agents(store, sel, sel_params, att_where, att_params) -> dict[str, list[AgentRow]]:
    """Which agents the evidence steps (best view) and the root causes point to."""
    ev = store.fetchall(f"""
        WITH e AS (SELECT system, trace_id, mode, unnest(evidence_steps) AS step
                   FROM {ex.LAB}_best WHERE present AND len(evidence_steps) > 0)
        SELECT e.system, coalesce(s.agent, '(no agent)'), e.mode, count(*), count(DISTINCT e.trace_id)
        FROM e JOIN steps s ON s.trace_id = e.trace_id AND s.step = e.step GROUP BY ALL""")
    roots = store.fetchall(f"""
        WITH sel AS ({sel}),
        a AS (SELECT a.* FROM attributions a JOIN sel USING (trace_id) {att_where}
              QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.annotator ORDER BY a.created_at DESC) = 1)
        SELECT sel.sys, coalesce(a.agent, '(unspecified)'), a.annotator, count(*)
        FROM a JOIN sel USING (trace_id) GROUP BY ALL""", [*sel_params, *att_params])
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"evidence": 0, "traces": 0, "modes": defaultdict(int), "roots": {}})
    for system, agent, mode, n, nt in ev:
        d = acc[(system, agent)]
        d["evidence"] += int(n)
        d["traces"] += int(nt)  # summed over modes: a trace counts once per mode it shows
        d["modes"][mode] += int(n)
    for system, agent, annotator, n in roots:
        acc[(system, agent)]["roots"][annotator] = int(n)
    out: dict[str, list[AgentRow]] = defaultdict(list)
    for (system, agent), d in acc.items():
        top = sorted(d["modes"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        out[system].append(AgentRow(agent, d["evidence"], d["traces"], top, dict(sorted(d["roots"].items()))))
    for rows in out.values():
        rows.sort(key=lambda r: (-r.root_total, -r.evidence, r.agent))
    return dict(sorted(out.items()))


def _agreement(store) -> list[AgreementPair]:
    # Computed from 2×2 counts aggregated in DuckDB (κ and F1 as scikit-learn defines them;
    # tests check the equality) so that 100k traces cost one GROUP BY, not a Python loop.
    by_pair: dict[tuple[str, str], list[Agreement]] = defaultdict(list)
    per_mode, overlap = ex.agreement(store)
    for a in per_mode:
        by_pair[(a.gold, a.pred)].append(a)
    return [AgreementPair(g, p, overlap.get((g, p), 0), sorted(rows, key=lambda a: a.mode))
            for (g, p), rows in by_pair.items()]


def _explorer(store, sel, sel_params, att_where, att_params, lim: Limits, total: int) -> Explorer:
    """Choose the traces the page carries in full, most informative first.

    Priority (each tier round-robin across its cells, so every cell gets its first
    example before any gets a second): 0) the best-labelled examples of each
    system × mode, by confidence and evidence; 1) examples per system × mode × annotator;
    2) traces with a root-cause attribution; 3) the rest, in a stable pseudo-random order.
    """
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PICK} AS
        WITH sel AS ({sel}),
        cand AS (
            SELECT trace_id, 0 AS tier, row_number() OVER (PARTITION BY system, mode
                   ORDER BY confidence DESC NULLS LAST, len(evidence_steps) DESC, hash(trace_id)) AS rn
            FROM {ex.LAB}_best WHERE present
            UNION ALL
            SELECT trace_id, 1, row_number() OVER (PARTITION BY system, mode, annotator
                   ORDER BY confidence DESC NULLS LAST, len(evidence_steps) DESC, hash(trace_id))
            FROM {ex.LAB} WHERE present
            UNION ALL
            SELECT trace_id, 2, row_number() OVER (PARTITION BY sel.sys ORDER BY hash(trace_id))
            FROM (SELECT DISTINCT trace_id FROM attributions a {att_where}) JOIN sel USING (trace_id)
            UNION ALL
            SELECT trace_id, 3, row_number() OVER (PARTITION BY sys ORDER BY hash(trace_id)) FROM sel),
        kept AS (
            SELECT * FROM cand
            WHERE (tier = 0 AND rn <= ?) OR (tier = 1 AND rn <= ?) OR (tier = 2 AND rn <= ?) OR tier = 3)
        SELECT trace_id, min(tier * 1e9 + rn) AS prio FROM kept GROUP BY 1
        ORDER BY prio, trace_id LIMIT ?""",
                  [*sel_params, *att_params, lim.per_cell, lim.per_annotator_cell, lim.per_system_root_cause,
                   lim.max_traces])
    trows = store.fetchall(f"""
        SELECT t.trace_id, coalesce(t.system, ?), t.outcome, left(t.task, ?), length(t.task), t.n_steps, t.n_agents,
               CASE WHEN t.tokens_in IS NOT NULL OR t.tokens_out IS NOT NULL
                    THEN coalesce(t.tokens_in, 0) + coalesce(t.tokens_out, 0) END, t.cost_usd, t.framework, p.prio
        FROM {PICK} p JOIN traces t USING (trace_id) ORDER BY p.prio, t.trace_id""",
                           [UNKNOWN_SYSTEM, lim.task_chars])
    tags: dict[str, list] = defaultdict(list)
    assessed: dict[str, list[str]] = defaultdict(list)
    for tid, annotator, _rank in store.fetchall(f"""
            SELECT DISTINCT l.trace_id, l.annotator, l.rank FROM {ex.LAB} l JOIN {PICK} USING (trace_id)
            ORDER BY 1, 3, 2"""):
        assessed[tid].append(annotator)
    for tid, annotator, mode, conf, evs, rat in store.fetchall(f"""
            SELECT l.trace_id, l.annotator, l.mode, l.confidence, l.evidence_steps, left(l.rationale, ?)
            FROM {ex.LAB} l JOIN {PICK} USING (trace_id) WHERE l.present
            ORDER BY l.trace_id, l.mode, l.rank, l.annotator""", [lim.rationale_chars]):
        tags[tid].append([mode, annotator, conf, list(evs or []), rat])
    atts: dict[str, list] = defaultdict(list)
    for tid, annotator, agent, step, rat in store.fetchall(f"""
            SELECT a.trace_id, a.annotator, a.agent, a.step, left(a.rationale, ?)
            FROM attributions a JOIN {PICK} USING (trace_id) {att_where}
            QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.annotator ORDER BY a.created_at DESC) = 1
            ORDER BY 1, 2""", [lim.rationale_chars, *att_params]):
        atts[tid].append([annotator, agent, step, rat])

    # Budgets are in bytes of escaped JSON, the form the page carries: "<" costs six bytes
    # there, so a trace of HTML weighs more than its length.  First an estimate in SQL
    # picks the candidates (in priority order); the exact size is enforced further down.
    sizes = store.fetchall(f"""
        WITH k AS (
            SELECT p.trace_id, left(s.content, ?) AS c, left(s.tool_args, 500) AS a
            FROM {PICK} p JOIN traces t USING (trace_id) JOIN steps s USING (trace_id)
            WHERE t.n_steps <= ? OR s.step < ? OR s.step >= t.n_steps - ?)
        SELECT trace_id, sum(60 + coalesce(strlen(c), 0) + coalesce(strlen(a), 0)
                             + 5 * coalesce(strlen(c) - strlen(replace(replace(replace(c, '<', ''), '>', ''), '&', '')), 0))
        FROM k GROUP BY 1""", [lim.step_chars, lim.max_steps, lim.head_steps, lim.tail_steps])
    size = {r[0]: int(r[1] or 0) for r in sizes}
    spent, detailed = 0, []
    for r in trows:
        cost = size.get(r[0], 0)
        if spent + cost > lim.detail_bytes:
            continue  # a later, smaller trace may still fit
        spent += cost
        detailed.append(r[0])
    detailed_set = set(detailed)

    # Evidence and root-cause steps (± 2) of long traces are kept even when elided.
    important: dict[str, set[int]] = defaultdict(set)
    for tid, t in tags.items():
        for tag in t:
            for s in tag[3]:
                important[tid].update(range(s - 2, s + 3))
    for tid, a in atts.items():
        for row in a:
            if row[2] is not None:
                important[tid].update(range(row[2] - 2, row[2] + 3))
    imp_ids = [tid for tid in important if tid in detailed_set]
    imp_steps = [sorted(important[tid]) for tid in imp_ids]

    store.execute(f"CREATE OR REPLACE TEMP TABLE {PICK}_d AS SELECT unnest(?) AS trace_id", [detailed])
    store.execute(f"CREATE OR REPLACE TEMP TABLE {PICK}_i AS SELECT unnest(?) AS trace_id, unnest(?) AS steps",
                  [imp_ids, imp_steps])
    try:
        steps = store.fetchall(f"""
            SELECT s.trace_id, s.step, s.agent, s.kind, s.role, s.target_agent, left(s.content, ?),
                   length(s.content), s.tool_name, left(s.tool_args, 500), s.status,
                   CASE WHEN s.tokens_in IS NOT NULL OR s.tokens_out IS NOT NULL
                        THEN coalesce(s.tokens_in, 0) + coalesce(s.tokens_out, 0) END, s.cost_usd, t.n_steps
            FROM steps s JOIN {PICK}_d d USING (trace_id) JOIN traces t USING (trace_id)
                 LEFT JOIN {PICK}_i i USING (trace_id)
            WHERE t.n_steps <= ? OR s.step < ? OR s.step >= t.n_steps - ?
               OR list_contains(coalesce(i.steps, []), s.step)
            ORDER BY s.trace_id, s.step""",
                              [lim.step_chars, lim.max_steps, lim.head_steps, lim.tail_steps])
    finally:
        store.execute(f"DROP TABLE IF EXISTS {PICK}_d")
        store.execute(f"DROP TABLE IF EXISTS {PICK}_i")

    details: dict[str, dict[str, Any]] = {}
    truncated = 0
    for (tid, step, agent, kind, role, target, content, clen, tool, targs, status, tok, cost, n_steps) in steps:
        d = details.get(tid)
        if d is None:
            d = details[tid] = {"agents": [], "steps": [], "n": n_steps}
        agent = agent if agent is not None else "(no agent)"
        if agent not in d["agents"]:
            d["agents"].append(agent)
        if clen is not None and clen > lim.step_chars:
            truncated += 1
        # Compact rows: [step, agent index, kind, role, target, content, full length,
        #                tool, tool args, status, tokens, cost]
        d["steps"].append([step, d["agents"].index(agent), kind, role, target, content, clen,
                           tool, targs, status, tok, cost])
    # Exact sizes, the same greedy rule in priority order: the budget always holds.
    kept_bytes = 0
    for tid in [r[0] for r in trows if r[0] in details]:
        n = len(script_json(details[tid]).encode("utf-8"))
        if kept_bytes + n > lim.detail_bytes:
            del details[tid]
        else:
            kept_bytes += n
    elided = sum(1 for d in details.values() if len(d["steps"]) < d["n"])

    rows, list_bytes = [], 0
    for tid, system, outcome, task, task_len, n_steps, n_agents, tok, cost, fw, _prio in trows:
        row = {"id": tid, "system": system, "outcome": outcome, "task": task,
               "task_len": task_len, "steps": n_steps, "agents": n_agents, "tokens": tok, "cost": cost,
               "framework": fw, "tags": tags.get(tid, []), "roots": atts.get(tid, []),
               "annotators": assessed.get(tid, []), "detail": tid in details}
        list_bytes += len(script_json(row).encode("utf-8"))
        if list_bytes > lim.list_bytes:
            break  # rows come in priority order: what is left is the least relevant
        rows.append(row)
    listed = {r["id"] for r in rows}
    for tid in [t for t in details if t not in listed]:
        del details[tid]
    return Explorer(total_traces=total, listed=len(rows), detailed=len(details), limits=lim, traces=rows,
                    details=details, truncated_steps=truncated, elided_traces=elided)

"""Trace explorer: the traces the page carries, with their labels, root causes and steps.

Contract: summaries elsewhere cover every trace; the explorer carries a bounded choice
(:class:`~mast.report.page.Limits`), most informative first, and says what it left out
(:class:`Explorer`).  Its temporary tables are this module's own: created and dropped
inside :func:`build`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mast.agreement import authority_rank_sql, latest_signals
from mast.report.jsonblock import script_json
from mast.report.page import Limits, Page
from mast.report.section import Section, Values
from mast.scope import UNKNOWN_SYSTEM

PICK = "_mast_rpt_pick"


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


def build(page: Page) -> Values:
    try:
        return {"explorer": _explorer(page)}
    finally:
        page.store.execute(f"DROP TABLE IF EXISTS {PICK}")  # _explorer() drops the _d and _i it makes


def script_data(values: Values) -> dict[str, Any]:
    e: Explorer = values["explorer"]
    return {"traces": e.traces, "details": e.details, "step_chars": e.limits.step_chars}


def _explorer(page: Page) -> Explorer:
    """Choose the traces the page carries in full, most informative first.

    Priority (each tier round-robin across its cells, so every cell gets its first
    example before any gets a second): 0) the best-labelled examples of each
    system × mode, by confidence and evidence; 1) examples per system × mode × annotator;
    2) traces with a root-cause attribution; 3) the rest, in a stable pseudo-random order.
    """
    store, lim = page.store, page.limits
    sel, sel_params = page.traces_sql()
    att_where, att_params = page.attributions_where()
    total = sum(s.traces for s in page.systems)
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PICK} AS
        WITH sel AS ({sel}),
        cand AS (
            SELECT trace_id, 0 AS tier, row_number() OVER (PARTITION BY system, mode
                   ORDER BY confidence DESC NULLS LAST, len(evidence_steps) DESC, hash(trace_id)) AS rn
            FROM ({page.labels.best}) WHERE present
            UNION ALL
            SELECT trace_id, 1, row_number() OVER (PARTITION BY system, mode, annotator
                   ORDER BY confidence DESC NULLS LAST, len(evidence_steps) DESC, hash(trace_id))
            FROM ({page.labels.all}) WHERE present
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
                    THEN coalesce(t.tokens_in, 0) + coalesce(t.tokens_out, 0) END, t.cost_usd, t.framework, p.prio,
               left(t.metadata->>'outcome_reason', ?)
        FROM {PICK} p JOIN traces t USING (trace_id) ORDER BY p.prio, t.trace_id""",
                           [UNKNOWN_SYSTEM, lim.task_chars, lim.task_chars])
    tags: dict[str, list] = defaultdict(list)
    assessed: dict[str, list[str]] = defaultdict(list)
    for tid, annotator, _rank in store.fetchall(f"""
            SELECT DISTINCT l.trace_id, l.annotator, l.rank FROM ({page.labels.all}) l JOIN {PICK} USING (trace_id)
            ORDER BY 1, 3, 2"""):
        assessed[tid].append(annotator)
    for tid, annotator, mode, conf, evs, rat in store.fetchall(f"""
            SELECT l.trace_id, l.annotator, l.mode, l.confidence, l.evidence_steps, left(l.rationale, ?)
            FROM ({page.labels.all}) l JOIN {PICK} USING (trace_id) WHERE l.present
            ORDER BY l.trace_id, l.mode, l.rank, l.annotator""", [lim.rationale_chars]):
        tags[tid].append([mode, annotator, conf, list(evs or []), rat])
    # Signals (see mast.agreement): hints with evidence, shown apart from the failure tags.
    sig_sql, sig_params = latest_signals(page.taxonomy.id)
    signals: dict[str, list] = defaultdict(list)
    for tid, annotator, mode, conf, evs, rat in store.fetchall(f"""
            SELECT g.trace_id, g.annotator, g.mode, g.confidence, g.evidence_steps, left(g.rationale, ?)
            FROM ({sig_sql}) g JOIN {PICK} USING (trace_id)
            ORDER BY g.trace_id, g.mode, g.annotator""", [lim.rationale_chars, *sig_params]):
        signals[tid].append([mode, annotator, conf, list(evs or []), rat])
    atts: dict[str, list] = defaultdict(list)
    for tid, annotator, agent, step, rat in store.fetchall(f"""
            SELECT a.trace_id, a.annotator, a.agent, a.step, left(a.rationale, ?)
            FROM attributions a JOIN {PICK} USING (trace_id) {att_where}
            QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.annotator ORDER BY a.created_at DESC) = 1
            ORDER BY 1, {authority_rank_sql('a.annotator')}, 2""", [lim.rationale_chars, *att_params]):
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
    for found in (tags, signals):
        for tid, t in found.items():
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
    for tid, system, outcome, task, task_len, n_steps, n_agents, tok, cost, fw, _prio, reason in trows:
        row = {"id": tid, "system": system, "outcome": outcome, "outcome_reason": reason, "task": task,
               "task_len": task_len, "steps": n_steps, "agents": n_agents, "tokens": tok, "cost": cost,
               "framework": fw, "tags": tags.get(tid, []), "signals": signals.get(tid, []),
               "roots": atts.get(tid, []),
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


SECTION = Section(id="explorer", title="Trace explorer", build=build, script_data=script_data)

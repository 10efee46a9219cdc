"""The review page's context: one review set's traces, readable, with the classifiers' hints.

Contract:
- :func:`build_review` only reads the store: the review set (:func:`mast.review.load_review_set`),
  every trace of it in the set's order with its steps (bounded like the report's explorer
  by :class:`~mast.report.page.Limits`: each step's text cut to ``step_chars``, a trace
  longer than ``max_steps`` keeps its head, its tail and the steps around any hint's
  evidence), and per trace the labels the classifiers and community sets gave (present
  ones with confidence, evidence and rationale; absent ones by annotator only) and the
  signals.  People's labels are not shown: a reviewer labels without seeing another's.
- Every string is untrusted trace data: the page sets it with ``textContent`` only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mast import __version__
from mast.agreement import authority_rank, latest_labels, latest_signals
from mast.report.page import Limits
from mast.review import LABELS_FORMAT, LABELS_VERSION, ReviewSet, load_review_set
from mast.taxonomy import Mode
from mast.taxonomy import load as load_taxonomy

_HINT_RANK = authority_rank("community:")  # community sets and classifiers; never people


@dataclass
class ReviewContext:
    review: ReviewSet
    modes: list[Mode]
    generated_at: str
    mast_version: str
    store_path: str
    traces: list[dict[str, Any]]
    truncated_steps: int
    elided_traces: int

    @property
    def title(self) -> str:
        return f"Review {self.review.review_set}"

    def script_data(self) -> dict[str, Any]:
        return {"review_set": self.review.review_set, "taxonomy": self.review.taxonomy,
                "format": LABELS_FORMAT, "version": LABELS_VERSION,
                "modes": [{"id": m.id, "name": m.name, "category": m.category, "category_name": m.category_name,
                           "definition": m.definition, "evidence": m.evidence} for m in self.modes],
                "traces": self.traces}


def build_review(store, review_set: str, *, limits: Limits | None = None) -> ReviewContext:
    lim = limits or Limits()
    rs = load_review_set(store, review_set)
    tax = load_taxonomy(rs.taxonomy)
    ids = [t.trace_id for t in rs.traces]
    hints: dict[str, list] = defaultdict(list)
    important: dict[str, set[int]] = defaultdict(set)
    sql, params = latest_labels(store, tax.id)
    for tid, mode, annotator, present, conf, evs, why in store.fetchall(f"""
            SELECT trace_id, mode, annotator, present, confidence, evidence_steps, left(rationale, ?)
            FROM ({sql}) WHERE rank >= ? AND trace_id IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY trace_id, mode, rank, annotator""", [lim.rationale_chars, *params, _HINT_RANK, ids]):
        ev = list(evs or []) if present else []
        hints[tid].append([mode, annotator, "present" if present else "absent", conf, ev, why if present else None])
        important[tid].update(s + d for s in ev for d in range(-2, 3))
    sig_sql, sig_params = latest_signals(tax.id)
    for tid, mode, annotator, conf, evs, why in store.fetchall(f"""
            SELECT trace_id, mode, annotator, confidence, evidence_steps, left(rationale, ?) FROM ({sig_sql})
            WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY trace_id, mode, annotator""",
                                                               [lim.rationale_chars, *sig_params, ids]):
        hints[tid].append([mode, annotator, "signal", conf, list(evs or []), why])
        important[tid].update(s + d for s in (evs or []) for d in range(-2, 3))
    meta = {r[0]: r[1:] for r in store.fetchall("""
        SELECT trace_id, outcome, left(task, 4000), length(task), n_steps, framework FROM traces
        WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))""", [ids])}
    keep_ids = [t for t in ids if t in important]
    store.execute("CREATE OR REPLACE TEMP TABLE _mast_review_imp AS SELECT unnest(?::VARCHAR[]) AS trace_id, "
                  "unnest(?::INTEGER[][]) AS steps", [keep_ids, [sorted(important[t]) for t in keep_ids]])
    try:
        rows = store.fetchall("""
            SELECT s.trace_id, s.step, s.agent, s.kind, s.role, s.target_agent, left(s.content, ?), length(s.content),
                   s.tool_name, left(s.tool_args, 500), s.status
            FROM steps s JOIN traces t USING (trace_id) LEFT JOIN _mast_review_imp i USING (trace_id)
            WHERE s.trace_id IN (SELECT unnest(?::VARCHAR[]))
              AND (t.n_steps <= ? OR s.step < ? OR s.step >= t.n_steps - ? OR list_contains(coalesce(i.steps, []), s.step))
            ORDER BY s.trace_id, s.step""",
                              [lim.step_chars, ids, lim.max_steps, lim.head_steps, lim.tail_steps])
    finally:
        store.execute("DROP TABLE IF EXISTS _mast_review_imp")
    steps: dict[str, list] = defaultdict(list)
    agents: dict[str, list[str]] = defaultdict(list)
    truncated = 0
    for tid, step, agent, kind, role, target, content, clen, tool, targs, status in rows:
        agent = agent if agent is not None else "(no agent)"
        names = agents[tid]
        if agent not in names:
            names.append(agent)
        truncated += int(clen is not None and clen > lim.step_chars)
        # Compact rows: [step, agent index, kind, role, target, content, full length, tool, tool args, status]
        steps[tid].append([step, names.index(agent), kind, role, target, content, clen, tool, targs, status])
    traces = []
    for t in rs.traces:
        outcome, task, task_len, n_steps, framework = meta[t.trace_id]
        traces.append({"id": t.trace_id, "system": t.system, "reason": t.reason, "outcome": outcome, "task": task,
                       "task_len": task_len, "n": n_steps, "framework": framework, "agents": agents[t.trace_id],
                       "steps": steps[t.trace_id], "hints": hints.get(t.trace_id, [])})
    elided = sum(1 for t in traces if len(t["steps"]) < t["n"])
    return ReviewContext(review=rs, modes=list(tax.modes),
                         generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                         mast_version=__version__, store_path=str(getattr(store, "path", "")), traces=traces,
                         truncated_steps=truncated, elided_traces=elided)

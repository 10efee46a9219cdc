"""Agents: which agents the evidence steps (best view) and the root-cause attributions point to.

Root causes, like labels, have a best-available view: per trace the latest root cause of
the most authoritative annotator that gave one (:func:`mast.agreement.authority_rank`:
human > judge > learned > rules), so a trace counts once, and each count says whose it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mast.agreement import authority_rank_sql
from mast.report.page import Page
from mast.report.section import Section, Values


@dataclass(frozen=True)
class AgentRow:
    agent: str
    evidence: int           # evidence steps (present labels, best view) that are this agent's
    evidence_traces: int
    top_modes: list[tuple[str, int]]
    root_causes: dict[str, int]  # annotator -> traces naming this agent as root cause (each annotator)
    #: annotator -> traces whose best-available root cause (see the module docstring) is this agent
    best_roots: dict[str, int] = field(default_factory=dict)

    @property
    def root_total(self) -> int:
        """Traces whose best-available root cause is this agent (each trace once)."""
        return sum(self.best_roots.values())


def build(page: Page) -> Values:
    return {"agents": _agents(page)}  # system -> rows, most implicated first


def _agents(page: Page) -> dict[str, list[AgentRow]]:
    """Which agents the evidence steps (best view) and the root causes point to."""
    store = page.store
    sel, sel_params = page.traces_sql()
    att_where, att_params = page.attributions_where()
    ev = store.fetchall(f"""
        WITH e AS (SELECT system, trace_id, mode, unnest(evidence_steps) AS step
                   FROM ({page.labels.best}) WHERE present AND len(evidence_steps) > 0)
        SELECT e.system, coalesce(s.agent, '(no agent)'), e.mode, count(*), count(DISTINCT e.trace_id)
        FROM e JOIN steps s ON s.trace_id = e.trace_id AND s.step = e.step GROUP BY ALL""")
    roots = store.fetchall(f"""
        WITH sel AS ({sel}),
        a AS (SELECT a.* FROM attributions a JOIN sel USING (trace_id) {att_where}
              QUALIFY row_number() OVER (PARTITION BY a.trace_id, a.annotator ORDER BY a.created_at DESC) = 1)
        SELECT sel.sys, coalesce(a.agent, '(unspecified)'), a.annotator, count(*),
               count(*) FILTER (WHERE best)
        FROM (SELECT *, row_number() OVER (PARTITION BY trace_id
                                           ORDER BY {authority_rank_sql('annotator')}, annotator) = 1 AS best
              FROM a) a JOIN sel USING (trace_id) GROUP BY ALL""", [*sel_params, *att_params])
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"evidence": 0, "traces": 0, "modes": defaultdict(int), "roots": {}, "best": {}})
    for system, agent, mode, n, nt in ev:
        d = acc[(system, agent)]
        d["evidence"] += int(n)
        d["traces"] += int(nt)  # summed over modes: a trace counts once per mode it shows
        d["modes"][mode] += int(n)
    for system, agent, annotator, n, nb in roots:
        acc[(system, agent)]["roots"][annotator] = int(n)
        if nb:
            acc[(system, agent)]["best"][annotator] = int(nb)
    out: dict[str, list[AgentRow]] = defaultdict(list)
    for (system, agent), d in acc.items():
        top = sorted(d["modes"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        best = dict(sorted(d["best"].items(), key=lambda kv: (-kv[1], kv[0])))
        out[system].append(AgentRow(agent, d["evidence"], d["traces"], top, dict(sorted(d["roots"].items())), best))
    for rows in out.values():
        rows.sort(key=lambda r: (-r.root_total, -r.evidence, r.agent))
    return dict(sorted(out.items()))


SECTION = Section(id="agents", title="Agents", build=build)

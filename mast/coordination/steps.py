"""Coordination metrics: where a multi-agent system spends its steps and tokens.

Contract: pure functions of a :class:`mast.store.Store` (read-only use) returning named
types; everything is aggregated inside DuckDB in one pass per question, so the cost does
not grow with Python loops over steps.

Definitions (also printed on the report page, so a reader can check them):

- **inter-agent message step**: a step of kind ``message`` or ``handoff`` — an agent
  talking to another agent (or to the group).  **Work step**: ``llm_call``,
  ``tool_call`` or ``tool_result`` — an action on the world.  **Other**: ``termination``,
  ``error``, ``event``.  Traces whose importer only knows chat messages (plain message
  logs) are therefore 100% messages: that says what the source recorded, not that no
  work was done.
- **repeated step**: a step whose agent already produced exactly the same text earlier in
  the same trace (compared by a 64-bit hash of the text).  A trace with one is "looping".
- tokens are ``tokens_in + tokens_out`` where the source recorded them; ``None`` when no
  step of the selection had a count (never a silent zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mast.scope import traces_sql

MESSAGE_KINDS = ("message", "handoff")
WORK_KINDS = ("llm_call", "tool_call", "tool_result")
UNKNOWN_AGENT = "(no agent)"


@dataclass(frozen=True, slots=True)
class AgentUsage:
    system: str
    agent: str
    steps: int
    message_steps: int
    work_steps: int
    tokens: int | None
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class SystemCoordination:
    system: str
    traces: int
    steps: int
    message_steps: int
    work_steps: int
    other_steps: int
    addressed_messages: int      # message steps that name their recipient (target_agent)
    repeated_steps: int
    looping_traces: int
    tokens: int | None
    cost_usd: float | None

    @property
    def message_share(self) -> float | None:
        return self.message_steps / self.steps if self.steps else None

    @property
    def work_share(self) -> float | None:
        return self.work_steps / self.steps if self.steps else None

    @property
    def looping_share(self) -> float | None:
        return self.looping_traces / self.traces if self.traces else None


@dataclass(frozen=True, slots=True)
class Coordination:
    systems: list[SystemCoordination]
    agents: list[AgentUsage]  # sorted by system, then tokens (or steps) descending

    def agents_of(self, system: str) -> list[AgentUsage]:
        return [a for a in self.agents if a.system == system]


def coordination(store, systems: Sequence[str] | None = None) -> Coordination:
    """Per system and per agent: steps by kind, tokens, cost, repetition."""
    sel, params = traces_sql(systems, columns="trace_id")
    kinds = f"""
        count(*) FILTER (WHERE s.kind IN {MESSAGE_KINDS}) AS message_steps,
        count(*) FILTER (WHERE s.kind IN {WORK_KINDS}) AS work_steps"""
    agent_rows = store.fetchall(f"""
        WITH sel AS ({sel})
        SELECT sel.sys, coalesce(s.agent, ?) AS agent, count(*) AS steps, {kinds},
               CASE WHEN count(s.tokens_in) + count(s.tokens_out) > 0
                    THEN sum(coalesce(s.tokens_in, 0) + coalesce(s.tokens_out, 0)) END AS tokens,
               sum(s.cost_usd) AS cost
        FROM steps s JOIN sel USING (trace_id)
        GROUP BY ALL
        ORDER BY 1, coalesce(tokens, -1) DESC, steps DESC, agent""", [*params, UNKNOWN_AGENT])
    agents = [AgentUsage(r[0], r[1], int(r[2]), int(r[3]), int(r[4]),
                         None if r[5] is None else int(r[5]), r[6]) for r in agent_rows]
    # Repetition: the same agent saying exactly the same thing again in one trace.  Grouping
    # on a 64-bit hash of the text (no window, no normalisation) keeps this one cheap pass
    # over the steps: lower()/trim() over gigabytes of text cost ten times more.
    sys_rows = store.fetchall(f"""
        WITH sel AS ({sel}),
        per_trace AS (
            SELECT s.trace_id, count(*) AS steps, {kinds},
                   count(*) FILTER (WHERE s.kind IN {MESSAGE_KINDS} AND s.target_agent IS NOT NULL) AS addressed,
                   count(s.tokens_in) + count(s.tokens_out) AS n_tok,
                   sum(coalesce(s.tokens_in, 0) + coalesce(s.tokens_out, 0)) AS tokens,
                   sum(s.cost_usd) AS cost
            FROM steps s JOIN sel USING (trace_id) GROUP BY 1),
        rep AS (
            SELECT trace_id, sum(n - 1) AS repeated FROM (
                SELECT s.trace_id, s.agent, hash(s.content) AS h, count(*) AS n
                FROM steps s JOIN sel USING (trace_id)
                WHERE s.content IS NOT NULL AND s.content <> ''
                GROUP BY ALL HAVING count(*) > 1)
            GROUP BY 1)
        SELECT sel.sys, count(*), coalesce(sum(p.steps), 0),
               coalesce(sum(p.message_steps), 0), coalesce(sum(p.work_steps), 0),
               coalesce(sum(p.addressed), 0), coalesce(sum(r.repeated), 0),
               count(r.trace_id),
               CASE WHEN sum(p.n_tok) > 0 THEN sum(p.tokens) END, sum(p.cost)
        FROM sel LEFT JOIN per_trace p USING (trace_id) LEFT JOIN rep r USING (trace_id)
        GROUP BY 1 ORDER BY 1""", params)
    systems_out = [SystemCoordination(
        system=r[0], traces=int(r[1]), steps=int(r[2]), message_steps=int(r[3]), work_steps=int(r[4]),
        other_steps=int(r[2]) - int(r[3]) - int(r[4]), addressed_messages=int(r[5]), repeated_steps=int(r[6]),
        looping_traces=int(r[7]), tokens=None if r[8] is None else int(r[8]), cost_usd=r[9]) for r in sys_rows]
    return Coordination(systems_out, agents)

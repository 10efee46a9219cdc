"""Per-trace coordination figures: topology, parallelism (Amdahl), coordination tax, models.

Contract: :func:`trace_figures_table` computes one row per selected trace into a temporary
table (all of it inside DuckDB: window functions and list folds, no Python loop over
steps), :data:`GROUP_TRACES` traces per pass so that memory is bounded by the group and not
by the selection (the result does not depend on the group size); the caller reads it and
drops it (:func:`drop_tables`).  The columns are those of
:class:`TraceFigures`.  A figure the trace cannot give is NULL, and a ``*_reason`` column
says why; nothing unknown is ever a zero.

Definitions (the report prints them beside the figures):

**Nodes and edges.**  Agents are the ``agent`` of steps that are not tool steps (kinds
``tool_call`` / ``tool_result`` or role ``tool`` belong to the agent that called the tool,
never to a node of their own), plus any ``target_agent``.  Every ``message`` or ``handoff``
step with an agent is one edge from that agent to its ``target_agent``; where the step
names no target, the recipient is the agent of the next (non-tool) step in the trace, and
no edge is drawn when that is the sender itself.  An implicit handoff the OTLP importer
derived from the span tree (an agent span nested in another agent's span) is a call: one
edge from the agent owning the enclosing span to the nested agent, and one back (the
nested span's result returns to its caller when it ends).

**Topology**, with E the number of edges (messages) and the *hub* the agent touching the
most of them (ties: alphabetical; named only for a centralized team):
- ``single``: one agent;
- ``centralized``: at least 3 agents, at least :data:`HUB_SHARE` of the edges touch the hub
  (so at most 20% are between other agents), the hub sends to at least 2 distinct agents
  (dispatches) and receives at least one message (collects);
- ``pipeline``: agents ordered by their first step; a back edge goes to an agent that
  appeared earlier.  At most :data:`BACK_SHARE` of the edges are back edges, and along the
  forward edges every agent passes to at most one agent and hears from at most one;
- ``decentralized``: any other team with edges (peers talking to each other; two agents
  answering each other back and forth are peers);
- NULL with a reason when there is no agent, or several agents but no message between them.

**Work spans.**  ``llm_call`` and ``tool_call`` steps, from ``started_at`` to ``ended_at``;
a tool call with no ``ended_at`` ends when its ``tool_result`` starts (the result whose
``parent_span_id`` is the call's ``span_id``).  Timing is NULL, with the reason, when a trace
has no work span, when any work span lacks either time (a partial figure would be a made-up
one), when one ends before it starts, or when its clocks disagree: a work span starting
more than :data:`SKEW_US` µs before the trace's first step, or ending after its final
``termination`` step (the run's root span, for span importers: a span recorded on another
host's clock, or outside the run it claims to belong to).
- *wall time*: from the first work span's start to the last one's end;
- *work time*: per agent, the union of its work spans (an agent's nested or overlapping
  spans count once), summed over agents;
- *concurrency* = work time / wall time;
- *serial time*: wall time during which at most one agent was working (idle gaps included:
  more agents cannot shorten them); *parallel work*: agent-time while two or more worked;
- *serial fraction* s = serial time / (serial time + parallel work): Amdahl's s, the share of
  the same work done one agent at a time that cannot overlap.  (``serial_wall_share`` is the
  share of wall time with at most one agent working, for reference.)
- *speedup* = (serial time + parallel work) / wall time, the one-at-a-time duration over
  the real one; *ceiling* = 1 / (s + (1 − s) / N), N = agents with work.  speedup ≤ ceiling;
- *critical path*: the longest chain, by total duration, of work spans each of which began
  after the previous one ended; ``straggler``: the agent with the largest share of it, when
  that share is at least half.

**Coordination tax.**  Tokens are ``tokens_in + tokens_out`` where recorded.  Coordination
tokens: those on ``message`` / ``handoff`` steps, and on an ``llm_call`` directly followed
(among the agents' non-tool steps) by a message or an explicit handoff of the same agent
(the call that wrote it, in sources that meter calls and not messages).  An implicit handoff (read from the span tree) was written by no
call, so the call before it stays work.  Every other counted token is work.  The share is NULL when the trace recorded
no token count; cost likewise.

**Bad input** is counted per trace: ``steps_without_agent`` (no speaker: not a node, not
an edge, their work under ``(no agent)``), ``inverted_spans``, ``skewed_spans`` and
``parent_cycles`` (spans that are their own ancestor; the figures follow at most one
parent link, so a cycle cannot loop them).

**Models.**  An ``llm_call``'s ``attributes.model`` (or ``gen_ai.request.model``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from mast.scope import traces_sql

MESSAGE_KINDS = ("message", "handoff")
HUB_SHARE = 0.8
BACK_SHARE = 0.2
SKEW_US = 1000
NO_AGENT = "(no agent)"
TOPOLOGIES = ("single", "centralized", "pipeline", "decentralized")

#: The temporary tables one computation creates (dropped by :func:`drop_tables`).
#: The tables of one group of traces: remade per group, dropped once every group is done.
GROUP_TABLES = ("_co_g", "_co_st", "_co_owner", "_co_nx", "_co_ge", "_co_topo", "_co_iv", "_co_time", "_co_cp", "_co_tax0",
                "_co_tax", "_co_cyc")
TABLES = ("_co_sel", *GROUP_TABLES, "_co_edges", "_co_traces")
#: Traces per pass (see :func:`trace_figures_table`).
GROUP_TRACES = 100_000


@dataclass(frozen=True, slots=True)
class TraceFigures:
    trace_id: str
    system: str
    outcome: str
    agents: int                       # nodes of the graph (agents, not tools)
    steps_without_agent: int
    messages: int                     # message / handoff steps
    parent_cycles: int                # spans that are their own ancestor (bad parent links)
    edges: int                        # messages with a known sender and recipient
    topology: str | None
    topology_reason: str | None
    hub: str | None
    hub_share: float | None           # share of edges touching the hub
    back_edge_share: float | None
    work_spans: int
    timed_spans: int
    inverted_spans: int               # end before start
    skewed_spans: int                 # outside the trace's own start / end: another clock
    timing_reason: str | None
    wall_s: float | None
    work_s: float | None
    concurrency: float | None
    peak_concurrency: int | None
    serial_fraction: float | None
    serial_wall_share: float | None
    speedup: float | None
    working_agents: int | None
    ceiling: float | None
    critical_path_s: float | None
    critical_path_share: dict | None  # agent -> share of the critical path
    straggler: str | None
    tokens: int | None
    coordination_tokens: int | None
    coordination_token_share: float | None
    cost_usd: float | None
    coordination_cost_usd: float | None
    models: list | None               # distinct models of the trace's LLM calls
    agent_models: dict | None         # agent -> its models

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS = [f.name for f in fields(TraceFigures)]


def drop_tables(store) -> None:
    for t in TABLES:
        store.execute(f"DROP TABLE IF EXISTS {t}")


def trace_figures_table(store, systems: Sequence[str] | None = None, *, group: int = GROUP_TRACES) -> str:
    """Compute the figures of every selected trace into a temporary table; return its name.

    The traces are taken ``group`` at a time (in trace-id order), each group's figures
    appended to the table, so the working tables (a copy of the group's steps, the window
    passes over them) are bounded by the group and not by the selection.  Every figure is
    a function of one trace's steps, so the result does not depend on ``group``.  Also
    left: ``_co_edges``, the edges per trace (``tid``, ``src``, ``dst``, ``n``)."""
    if group < 1:
        raise ValueError(f"group must be at least 1 trace, not {group}")
    sel, params = traces_sql(systems, columns="trace_id, outcome")
    # Inside, a trace is a dense integer (``tid``): partitions, joins and groups on it cost a
    # fraction of those on the long text ids.  The last table maps it back.  Numbered in
    # trace-id order, a group is a range of ids: its steps are found by a range filter the
    # scan of ``steps`` applies itself, instead of a hash probe of every step per group.
    store.execute(f"""CREATE OR REPLACE TEMP TABLE _co_sel AS
                      SELECT (row_number() OVER (ORDER BY trace_id))::INTEGER AS tid, trace_id, sys, outcome
                      FROM ({sel})""", params)
    n, = store.fetchall("SELECT count(*) FROM _co_sel")[0]
    for i, lo in enumerate(range(1, n + 1, group) if n else [1]):
        _group(store, lo, lo + group - 1, first=i == 0)
    for t in GROUP_TABLES:
        store.execute(f"DROP TABLE IF EXISTS {t}")
    return "_co_traces"


def _group(store, lo: int, hi: int, *, first: bool) -> None:
    """The figures of the traces ``lo`` ≤ tid ≤ ``hi``, appended to ``_co_traces`` and
    ``_co_edges`` (created by the first group)."""
    into = "CREATE OR REPLACE TEMP TABLE {} AS" if first else "INSERT INTO {}"
    store.execute("CREATE OR REPLACE TEMP TABLE _co_g AS SELECT * FROM _co_sel WHERE tid BETWEEN ? AND ?", [lo, hi])
    first_id, last_id = store.fetchall("SELECT min(trace_id), max(trace_id) FROM _co_g")[0]
    msg = "('message', 'handoff')"
    # The selected steps, with what every later pass needs; the JSON attributes are read only
    # on the few steps that use them (handoffs, LLM calls), not on all of them.
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _co_st AS
        SELECT sel.tid, s.step, s.kind, s.agent, s.target_agent, s.span_id, s.parent_span_id,
               epoch_us(s.started_at) AS t0, epoch_us(s.ended_at) AS t1,
               CASE WHEN s.tokens_in IS NOT NULL OR s.tokens_out IS NOT NULL
                    THEN coalesce(s.tokens_in, 0) + coalesce(s.tokens_out, 0) END AS tokens,
               s.cost_usd,
               s.kind IN ('tool_call', 'tool_result') OR coalesce(s.role, '') = 'tool' AS is_tool,
               CASE WHEN s.kind = 'handoff' THEN coalesce(s.attributes->>'implicit' = 'true', false)
                    ELSE false END AS implicit,
               CASE WHEN s.kind = 'llm_call' THEN coalesce(s.attributes->>'model',
                    s.attributes->>'"gen_ai.request.model"') END AS model
        FROM steps s JOIN _co_g sel ON sel.trace_id = s.trace_id
        WHERE s.trace_id BETWEEN ? AND ?""", [first_id, last_id])
    # Who owns the span an implicit handoff sits in: the agent of the work done directly in
    # it, or the agent handed to by the handoff that opened it.  One hop, no recursion, so a
    # cycle in parent links cannot hang it.
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_owner AS
        WITH want AS (SELECT DISTINCT tid, parent_span_id AS sid FROM _co_st
                      WHERE implicit AND parent_span_id IS NOT NULL),
        cand AS (
            SELECT s.tid, s.span_id AS sid, s.target_agent AS agent, 0 AS pri, s.step FROM _co_st s
            SEMI JOIN want w ON w.tid = s.tid AND w.sid = s.span_id
            WHERE s.kind = 'handoff' AND s.target_agent IS NOT NULL
            UNION ALL
            SELECT s.tid, s.parent_span_id, s.agent, 1, s.step FROM _co_st s
            SEMI JOIN want w ON w.tid = s.tid AND w.sid = s.parent_span_id
            WHERE s.kind IN ('llm_call', 'tool_call') AND s.agent IS NOT NULL)
        SELECT tid, sid, arg_min(agent, pri * 1000000000 + step) AS agent FROM cand GROUP BY ALL""")
    # One ordered pass over the agents' own (non-tool) steps gives both the recipient of an
    # unaddressed message (the next agent to act) and whether a model call's output was a
    # message (the next step is that agent's message or explicit handoff).
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _co_nx AS
        SELECT n.tid, n.step, n.kind, n.tokens, n.cost_usd, n.target_agent,
               coalesce(o.agent, n.agent) AS agent, o.agent IS NOT NULL AS call,
               lead(n.agent) OVER w AS next_agent,
               lead(n.kind IN {msg} AND NOT n.implicit) OVER w AS next_says
        FROM _co_st n LEFT JOIN _co_owner o ON n.implicit AND o.tid = n.tid AND o.sid = n.parent_span_id
        WHERE n.agent IS NOT NULL AND NOT n.is_tool
        WINDOW w AS (PARTITION BY n.tid ORDER BY n.step)""")
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _co_ge AS
        WITH m AS (SELECT tid, agent AS src, coalesce(target_agent, next_agent) AS dst, call
                   FROM _co_nx WHERE kind IN {msg})
        SELECT tid, src, dst, count(*) AS n FROM (
            SELECT tid, src, dst FROM m
            UNION ALL SELECT tid, dst, src FROM m WHERE call)
        WHERE dst IS NOT NULL AND dst <> src
        GROUP BY ALL""")
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _co_topo AS
        WITH firsts AS (
            -- a step's speaker appears before the recipient it names
            SELECT tid, agent, min(o) AS first FROM (
                SELECT tid, agent, 2 * step AS o FROM _co_nx
                UNION ALL SELECT tid, target_agent, 2 * step + 1 FROM _co_nx
                          WHERE target_agent IS NOT NULL AND kind IN {msg})
            GROUP BY ALL),
        nodes AS (SELECT tid, count(*) AS agents FROM firsts GROUP BY 1),
        e AS (SELECT e.*, fs.first AS fsrc, fd.first AS fdst FROM _co_ge e
              JOIN firsts fs ON fs.tid = e.tid AND fs.agent = e.src
              JOIN firsts fd ON fd.tid = e.tid AND fd.agent = e.dst),
        touch AS (SELECT tid, agent, sum(n) AS w FROM (
                      SELECT tid, src AS agent, n FROM e UNION ALL SELECT tid, dst, n FROM e)
                  GROUP BY ALL),
        -- the most messages, ties to the first name: a struct compares field by field
        hub AS (SELECT tid, arg_min(agent, {{'nw': -w, 'a': agent}}) AS hub FROM touch GROUP BY 1),
        -- edges are one row per (source, target): a count of rows is a count of distinct peers
        fwd AS (SELECT tid, max(c) AS m FROM (
                    SELECT tid, count(*) AS c FROM e WHERE fdst > fsrc GROUP BY tid, src
                    UNION ALL
                    SELECT tid, count(*) FROM e WHERE fdst > fsrc GROUP BY tid, dst) GROUP BY 1),
        agg AS (
            SELECT e.tid, sum(e.n) AS edges,
                   sum(e.n) FILTER (WHERE e.fdst < e.fsrc) AS back,
                   sum(e.n) FILTER (WHERE e.src = h.hub OR e.dst = h.hub) AS hub_w,
                   count(*) FILTER (WHERE e.src = h.hub) AS hub_out,
                   coalesce(sum(e.n) FILTER (WHERE e.dst = h.hub), 0) AS hub_in,
                   any_value(h.hub) AS hub
            FROM e JOIN hub h USING (tid) GROUP BY 1)
        SELECT nodes.tid, nodes.agents, coalesce(agg.edges, 0) AS edges, agg.hub,
               agg.hub_w / agg.edges AS hub_share, coalesce(agg.back, 0) / agg.edges AS back_share,
               CASE
                 WHEN nodes.agents = 1 THEN 'single'
                 WHEN agg.edges IS NULL THEN NULL
                 WHEN nodes.agents >= 3 AND agg.hub_w >= {HUB_SHARE} * agg.edges AND agg.hub_out >= 2
                      AND agg.hub_in > 0 THEN 'centralized'
                 WHEN coalesce(agg.back, 0) <= {BACK_SHARE} * agg.edges AND coalesce(fwd.m, 0) <= 1
                      THEN 'pipeline'
                 ELSE 'decentralized' END AS topology
        FROM nodes LEFT JOIN agg USING (tid) LEFT JOIN fwd USING (tid)""")
    _timing(store)
    _tax(store)
    # Cycles in parent links (a span its own ancestor): counted, so the output can say so.
    # Nothing above follows more than one parent link, so a cycle cannot loop a figure.
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_cyc AS
        WITH RECURSIVE links AS (
            SELECT DISTINCT tid, span_id AS c, parent_span_id AS p FROM _co_st
            WHERE span_id IS NOT NULL AND parent_span_id IS NOT NULL),
        walk(tid, start, p, depth) AS (
            SELECT l.tid, l.c, l.p, 1 FROM links l
            SEMI JOIN links l2 ON l2.tid = l.tid AND l2.c = l.p
            UNION ALL
            SELECT w.tid, w.start, l.p, w.depth + 1 FROM walk w
            JOIN links l ON l.tid = w.tid AND l.c = w.p
            WHERE w.p <> w.start AND w.depth < 64)
        SELECT tid, count(DISTINCT start) AS n FROM walk WHERE p = start GROUP BY 1""")
    store.execute(f"""
        {into.format('_co_traces')}
        WITH cnt AS (SELECT tid, count(*) FILTER (WHERE agent IS NULL AND kind <> 'termination') AS no_agent,
                       count(*) FILTER (WHERE kind IN {msg}) AS messages
                FROM _co_st GROUP BY 1)
        SELECT sel.tid, sel.trace_id, sel.sys AS system, sel.outcome, coalesce(tp.agents, 0) AS agents,
               coalesce(cnt.no_agent, 0) AS steps_without_agent, coalesce(cnt.messages, 0) AS messages,
               coalesce(cy.n, 0) AS parent_cycles, coalesce(tp.edges, 0) AS edges, tp.topology,
               CASE WHEN tp.topology IS NOT NULL THEN NULL
                    WHEN coalesce(tp.agents, 0) = 0 THEN 'no step names an agent'
                    ELSE 'several agents but no message between them' END AS topology_reason,
               CASE WHEN tp.topology = 'centralized' THEN tp.hub END AS hub,
               tp.hub_share, tp.back_share AS back_edge_share,
               coalesce(tm.work_spans, 0) AS work_spans, coalesce(tm.timed, 0) AS timed_spans,
               coalesce(tm.inverted, 0) AS inverted_spans, coalesce(tm.skewed, 0) AS skewed_spans,
               CASE WHEN tm.ok THEN NULL ELSE coalesce(tm.reason, 'no work span (model or tool call)') END
                   AS timing_reason,
               tm.wall_us / 1e6 AS wall_s, tm.work_us / 1e6 AS work_s, tm.work_us / tm.wall_us AS concurrency,
               tm.peak AS peak_concurrency, tm.serial_us / (tm.serial_us + tm.par_work_us) AS serial_fraction,
               tm.serial_us / tm.wall_us AS serial_wall_share,
               (tm.serial_us + tm.par_work_us) / tm.wall_us AS speedup, tm.working_agents,
               1 / (tm.serial_us / (tm.serial_us + tm.par_work_us)
                    + (tm.par_work_us / (tm.serial_us + tm.par_work_us)) / tm.working_agents) AS ceiling,
               cp.cp_us / 1e6 AS critical_path_s, cp.shares AS critical_path_share, cp.straggler,
               tx.tokens, tx.coord_tokens AS coordination_tokens,
               CASE WHEN tx.tokens > 0 THEN tx.coord_tokens / tx.tokens END AS coordination_token_share,
               tx.cost AS cost_usd, tx.coord_cost AS coordination_cost_usd, tx.models, tx.agent_models
        FROM _co_g sel LEFT JOIN cnt USING (tid) LEFT JOIN _co_topo tp USING (tid)
        LEFT JOIN _co_time tm USING (tid) LEFT JOIN _co_cp cp USING (tid)
        LEFT JOIN _co_tax tx USING (tid) LEFT JOIN _co_cyc cy USING (tid)""")
    store.execute(f"{into.format('_co_edges')} SELECT tid, src, dst, n FROM _co_ge")


def _timing(store) -> None:
    # Work spans: a tool call without an end ends when its result starts.
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_iv AS
        WITH res AS (SELECT tid, parent_span_id AS sid, min(t0) AS t0 FROM _co_st
                     WHERE kind = 'tool_result' AND parent_span_id IS NOT NULL GROUP BY ALL),
        bounds AS (SELECT tid, min(t0) FILTER (WHERE step = 0) AS lo,
                          max(t0) FILTER (WHERE kind = 'termination') AS hi FROM _co_st GROUP BY 1)
        SELECT c.tid, c.step, coalesce(c.agent, ?) AS agent, c.t0 AS s, coalesce(c.t1, r.t0) AS e,
               b.lo, b.hi
        FROM _co_st c LEFT JOIN res r
          ON c.kind = 'tool_call' AND c.t1 IS NULL AND r.tid = c.tid AND r.sid = c.span_id
        LEFT JOIN bounds b ON b.tid = c.tid
        WHERE c.kind IN ('llm_call', 'tool_call')""", [NO_AGENT])
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _co_time AS
        WITH chk AS (
            SELECT tid, count(*) AS work_spans,
                   count(*) FILTER (WHERE s IS NOT NULL AND e IS NOT NULL) AS timed,
                   count(*) FILTER (WHERE e < s) AS inverted,
                   count(*) FILTER (WHERE e >= s AND (s < lo - {SKEW_US} OR e > hi + {SKEW_US})) AS skewed,
                   min(s) AS lo, max(e) AS hi
            FROM _co_iv GROUP BY 1),
        ok AS (SELECT *, CASE
                 WHEN timed < work_spans THEN (work_spans - timed) || ' of ' || work_spans
                                              || ' work spans lack a start or end time'
                 WHEN inverted > 0 THEN inverted || ' work span(s) end before they start'
                 WHEN skewed > 0 THEN skewed || ' work span(s) lie outside the run''s own start and end'
                                      || ' (clocks that disagree, or spans recorded outside the run)'
                 WHEN hi = lo THEN 'the work spans have no duration' END AS reason
               FROM chk),
        iv AS (SELECT i.tid, i.agent, i.s, i.e FROM _co_iv i SEMI JOIN ok
               ON ok.tid = i.tid AND ok.reason IS NULL),
        -- per agent, the union of its spans (gaps and islands)
        g AS (SELECT *, sum(CASE WHEN prev IS NULL OR s > prev THEN 1 ELSE 0 END)
                            OVER (PARTITION BY tid, agent ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS isl
              FROM (SELECT *, max(e) OVER (PARTITION BY tid, agent ORDER BY s, e
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev FROM iv)),
        isl AS (SELECT tid, agent, min(s) AS s, max(e) AS e FROM g GROUP BY tid, agent, isl),
        -- a sweep over the islands: how many agents work between consecutive events
        ev AS (SELECT tid, t, sum(d) AS d FROM (
                   SELECT tid, s AS t, 1 AS d FROM isl UNION ALL SELECT tid, e, -1 FROM isl)
               GROUP BY ALL),
        lv AS (SELECT tid, t, sum(d) OVER w AS level, lead(t) OVER (PARTITION BY tid ORDER BY t) - t AS dur
               FROM ev WINDOW w AS (PARTITION BY tid ORDER BY t ROWS UNBOUNDED PRECEDING)),
        sweep AS (SELECT tid, max(level) AS peak,
                         sum(dur) FILTER (WHERE level <= 1) AS serial_us,
                         coalesce(sum(dur * level) FILTER (WHERE level >= 2), 0) AS par_work_us
                  FROM lv WHERE dur IS NOT NULL GROUP BY 1),
        wk AS (SELECT tid, sum(e - s) AS work_us, count(DISTINCT agent) AS working_agents FROM isl GROUP BY 1)
        SELECT ok.tid, ok.work_spans, ok.timed, ok.inverted, ok.skewed, ok.reason, ok.reason IS NULL AS ok,
               CASE WHEN ok.reason IS NULL THEN (ok.hi - ok.lo)::DOUBLE END AS wall_us,
               wk.work_us::DOUBLE AS work_us, wk.working_agents, sweep.peak::INTEGER AS peak,
               sweep.serial_us::DOUBLE AS serial_us, sweep.par_work_us::DOUBLE AS par_work_us
        FROM ok LEFT JOIN wk USING (tid) LEFT JOIN sweep USING (tid)""")
    # The critical path: the heaviest chain of spans each starting after the previous ended
    # (weighted interval scheduling), folded over the spans sorted by end.  Each entry keeps
    # its best chain's total and members, so the fold is quadratic in a trace's work spans:
    # cheap for the tens that traces hold.
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_cp AS
        WITH iv AS (
            SELECT i.tid, i.agent, i.s, i.e,
                   row_number() OVER (PARTITION BY i.tid ORDER BY i.e, i.s, i.step)::INTEGER AS k
            FROM _co_iv i SEMI JOIN _co_time t ON t.tid = i.tid AND t.ok),
        lists AS (SELECT tid, list({'k': k, 's': s, 'e': e} ORDER BY k) AS xs FROM iv GROUP BY 1),
        folded AS (
            SELECT tid, list_reduce(xs, lambda acc, x: list_append(acc, {
                       'b': x.e - x.s + coalesce(list_max(list_filter(acc, lambda y: y.e <= x.s)).b, 0),
                       'e': x.e,
                       'p': list_append(coalesce(list_max(list_filter(acc, lambda y: y.e <= x.s)).p, []::INTEGER[]), x.k)}),
                       []::STRUCT(b BIGINT, e BIGINT, p INTEGER[])[]) AS acc
            FROM lists),
        best AS (SELECT tid, list_max(acc) AS top FROM folded),
        members AS (SELECT b.tid, b.top.b AS cp_us, unnest(b.top.p) AS k FROM best b),
        per_agent AS (SELECT m.tid, any_value(m.cp_us) AS cp_us, iv.agent, sum(iv.e - iv.s) AS d
                      FROM members m JOIN iv ON iv.tid = m.tid AND iv.k = m.k GROUP BY m.tid, iv.agent)
        SELECT tid, any_value(cp_us)::DOUBLE AS cp_us,
               map(list(agent ORDER BY agent), list(d / cp_us ORDER BY agent)) AS shares,
               CASE WHEN max(d) >= 0.5 * any_value(cp_us) THEN arg_max(agent, d) END AS straggler
        FROM per_agent GROUP BY 1""")


def _tax(store) -> None:
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_tax0 AS
        WITH coord AS (
            SELECT tid, sum(tokens) AS tokens, sum(cost_usd) AS cost FROM _co_nx
            WHERE kind IN ('message', 'handoff') OR (kind = 'llm_call' AND next_says AND next_agent = agent)
            GROUP BY 1
            UNION ALL  -- a message with no speaker is still a message
            SELECT tid, sum(tokens), sum(cost_usd) FROM _co_st
            WHERE agent IS NULL AND kind IN ('message', 'handoff') GROUP BY 1),
        c AS (SELECT tid, sum(tokens) AS tokens, sum(cost) AS cost FROM coord GROUP BY 1),
        t AS (SELECT tid, sum(tokens) AS tokens, sum(cost_usd) AS cost FROM _co_st GROUP BY 1)
        SELECT t.tid, t.tokens,
               CASE WHEN t.tokens IS NOT NULL THEN coalesce(c.tokens, 0) END AS coord_tokens,
               t.cost, CASE WHEN t.cost IS NOT NULL THEN coalesce(c.cost, 0) END AS coord_cost
        FROM t LEFT JOIN c USING (tid)""")
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _co_tax AS
        WITH am AS (SELECT tid, coalesce(agent, ?) AS agent, list(DISTINCT model ORDER BY model) AS ms
                    FROM _co_st WHERE model IS NOT NULL GROUP BY ALL),
        tm AS (SELECT tid, map(list(agent ORDER BY agent), list(ms ORDER BY agent)) AS agent_models,
                      list_sort(list_distinct(flatten(list(ms)))) AS models FROM am GROUP BY 1)
        SELECT t.tid, t.tokens, t.coord_tokens, t.cost, t.coord_cost, tm.models, tm.agent_models
        FROM _co_tax0 t LEFT JOIN tm USING (tid)""", [NO_AGENT])

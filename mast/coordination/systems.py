"""Coordination figures rolled up per system, and exposure per topology.

Contract: :func:`analytics` is a pure function of the store (it creates and drops its own
temporary tables) returning an :class:`Analytics`: the per-trace figures of
:mod:`mast.coordination.traces` (when asked for), one :class:`SystemFigures` per system, the
system's who-talks-to-whom graph and the exposure per topology.  Every roll-up is computed
in DuckDB over the per-trace table.

Roll-up definitions:
- a system's *topology* is the one most of its traces have (ties: the order of
  :data:`~mast.coordination.traces.TOPOLOGIES`), its *hub* the agent most often the hub of its
  centralized traces;
- timing figures are medians over the traces that have timing; the system's ceiling is the
  Amdahl bound at its median serial fraction for its median number of working agents;
- token and cost figures are sums over the system's traces; *tokens per agent per task* is the
  mean over traces of tokens / agents; *cost per solved task* is the system's total cost over
  its traces with outcome ``success`` (NULL when no cost or no outcome is recorded);
  *growth*: the least-squares slope of a trace's tokens (cost) against its number of agents,
  over the traces that recorded them (NULL with fewer than two distinct team sizes);
- *models*: per agent, the models of its LLM calls over all traces; a team of two or more
  agents whose calls all used one model is flagged ``single_model_team``;
- *exposure per topology*: of the traces with a topology and at least one assessed label
  (best available: the most authoritative annotator per trace and mode, as
  :mod:`mast.agreement` ranks them), the share with any mode present.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from mast.agreement import latest_labels
from mast.coordination.traces import COLUMNS, GROUP_TRACES, TOPOLOGIES, TraceFigures, drop_tables, trace_figures_table

_ORDER = "CASE topology " + " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TOPOLOGIES)) + " END"


@dataclass(frozen=True, slots=True)
class Edge:
    system: str
    source: str
    target: str
    messages: int


@dataclass(frozen=True, slots=True)
class TopologyExposure:
    system: str | None          # None: over every selected system
    topology: str
    traces: int
    labelled: int               # traces with at least one assessed label
    failing: int                # of those, with any mode present

    @property
    def share(self) -> float | None:
        return self.failing / self.labelled if self.labelled else None


@dataclass(frozen=True, slots=True)
class SystemFigures:
    system: str
    traces: int
    topology: str | None
    topology_counts: dict
    hub: str | None
    agents: float | None                 # median agents per trace
    timed_traces: int
    untimed: dict                        # reason -> traces
    concurrency: float | None
    serial_fraction: float | None
    speedup: float | None
    working_agents: float | None
    ceiling: float | None
    critical_path_s: float | None
    straggler: str | None
    tokens: int | None
    coordination_tokens: int | None
    coordination_token_share: float | None
    cost_usd: float | None
    coordination_cost_usd: float | None
    tokens_per_agent_per_task: float | None
    solved: int
    cost_per_solved_task: float | None
    tokens_per_added_agent: float | None  # least-squares slope of tokens vs agents
    cost_per_added_agent: float | None
    agent_models: dict
    models: list
    single_model_team: bool | None
    inverted_spans: int
    skewed_spans: int
    steps_without_agent: int
    parent_cycles: int

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Analytics:
    traces: list[TraceFigures] | None
    systems: list[SystemFigures]
    edges: list[Edge]                    # per system, heaviest first
    exposure: list[TopologyExposure]     # per system and overall (system None)

    def edges_of(self, system: str) -> list[Edge]:
        return [e for e in self.edges if e.system == system]

    def exposure_of(self, system: str | None) -> list[TopologyExposure]:
        return [x for x in self.exposure if x.system == system]


def amdahl(s: float, n: float) -> float:
    """The Amdahl ceiling 1 / (s + (1 − s) / n)."""
    return 1.0 / (s + (1.0 - s) / n)


def analytics(store, systems: Sequence[str] | None = None, *, taxonomy: str = "mast-v1",
              traces: bool = True, best_labels: str | None = None, group: int = GROUP_TRACES) -> Analytics:
    """Every coordination figure of the selected traces.  ``best_labels`` may name a query
    with columns ``trace_id, present`` (one row per trace and mode: the report passes its
    best-available view); by default the best-available labels of ``taxonomy``.  The
    per-trace figures are computed ``group`` traces per pass (see
    :func:`~mast.coordination.traces.trace_figures_table`): memory is bounded by the group."""
    table = trace_figures_table(store, systems, group=group)
    try:
        rows = [TraceFigures(*r) for r in store.fetchall(f"SELECT * EXCLUDE (tid) FROM {table} ORDER BY system, trace_id")] \
            if traces else None
        return Analytics(rows, _systems(store, table), _edges(store, systems),
                         _exposure(store, table, systems, taxonomy, best_labels))
    finally:
        drop_tables(store)


def _systems(store, table: str) -> list[SystemFigures]:
    out = []
    for r in store.fetchall(f"""
        WITH topo AS (SELECT system, topology, count(*) AS n FROM {table} WHERE topology IS NOT NULL GROUP BY ALL),
        dom AS (SELECT system, topology FROM topo
                QUALIFY row_number() OVER (PARTITION BY system ORDER BY n DESC, {_ORDER}) = 1),
        hubs AS (SELECT system, hub FROM {table} WHERE hub IS NOT NULL GROUP BY system, hub
                 QUALIFY row_number() OVER (PARTITION BY system ORDER BY count(*) DESC, hub) = 1),
        strag AS (SELECT system, straggler FROM {table} WHERE straggler IS NOT NULL GROUP BY system, straggler
                  QUALIFY row_number() OVER (PARTITION BY system ORDER BY count(*) DESC, straggler) = 1),
        untimed AS (SELECT system, map(list(r ORDER BY r), list(n ORDER BY r)) AS m FROM (
                        SELECT system, regexp_replace(timing_reason, '^[0-9]+( of [0-9]+)? ', 'n ') AS r, count(*) AS n
                        FROM {table} WHERE timing_reason IS NOT NULL GROUP BY ALL) GROUP BY 1),
        am AS (SELECT system, agent, list_sort(list_distinct(flatten(list(ms)))) AS ms FROM (
                   SELECT system, unnest(map_keys(agent_models)) AS agent, unnest(map_values(agent_models)) AS ms
                   FROM {table} WHERE agent_models IS NOT NULL) GROUP BY ALL),
        models AS (SELECT system, map(list(agent ORDER BY agent), list(ms ORDER BY agent)) AS agent_models,
                          list_sort(list_distinct(flatten(list(ms)))) AS models, count(*) AS modelled_agents
                   FROM am GROUP BY 1),
        agg AS (
            SELECT system, count(*) AS traces, median(agents) AS agents,
                   count(*) FILTER (WHERE timing_reason IS NULL) AS timed,
                   median(concurrency) AS concurrency, median(serial_fraction) AS s, median(speedup) AS speedup,
                   median(working_agents) AS n, median(critical_path_s) AS cp,
                   sum(tokens) AS tokens, sum(coordination_tokens) AS coord_tokens,
                   sum(cost_usd) AS cost, sum(coordination_cost_usd) AS coord_cost,
                   avg(tokens / nullif(agents, 0)) AS tpa,
                   count(*) FILTER (WHERE outcome = 'success') AS solved,
                   CASE WHEN count(DISTINCT agents) FILTER (WHERE tokens IS NOT NULL) >= 2
                        THEN regr_slope(tokens, agents) END AS tok_slope,
                   CASE WHEN count(DISTINCT agents) FILTER (WHERE cost_usd IS NOT NULL) >= 2
                        THEN regr_slope(cost_usd, agents) END AS cost_slope,
                   sum(inverted_spans) AS inverted, sum(skewed_spans) AS skewed, sum(steps_without_agent) AS no_agent,
                   sum(parent_cycles) AS cycles
            FROM {table} GROUP BY 1),
        counts AS (SELECT system, map(list(topology ORDER BY {_ORDER}), list(n ORDER BY {_ORDER})) AS m
                   FROM topo GROUP BY 1)
        SELECT agg.system, agg.traces, dom.topology, counts.m, hubs.hub, agg.agents, agg.timed, untimed.m,
               agg.concurrency, agg.s, agg.speedup, agg.n, agg.cp, strag.straggler,
               agg.tokens, agg.coord_tokens, agg.cost, agg.coord_cost, agg.tpa, agg.solved,
               agg.tok_slope, agg.cost_slope, models.agent_models, models.models, models.modelled_agents,
               agg.inverted, agg.skewed, agg.no_agent, agg.cycles
        FROM agg LEFT JOIN dom USING (system) LEFT JOIN counts USING (system) LEFT JOIN hubs USING (system)
        LEFT JOIN untimed USING (system) LEFT JOIN strag USING (system) LEFT JOIN models USING (system)
        ORDER BY agg.system"""):
        (system, n, topo, counts, hub, agents, timed, untimed, conc, s, speedup, wa, cp, strag, tokens,
         coord, cost, coord_cost, tpa, solved, tok_slope, cost_slope, agent_models, models, modelled,
         inverted, skewed, no_agent, cycles) = r
        out.append(SystemFigures(
            system=system, traces=int(n), topology=topo, topology_counts=dict(counts or {}),
            hub=hub if topo == "centralized" else None, agents=agents, timed_traces=int(timed),
            untimed=dict(untimed or {}), concurrency=conc, serial_fraction=s, speedup=speedup, working_agents=wa,
            ceiling=amdahl(s, wa) if s is not None and wa else None, critical_path_s=cp, straggler=strag,
            tokens=None if tokens is None else int(tokens), coordination_tokens=None if coord is None else int(coord),
            coordination_token_share=coord / tokens if tokens else None, cost_usd=cost,
            coordination_cost_usd=coord_cost, tokens_per_agent_per_task=tpa, solved=int(solved),
            cost_per_solved_task=cost / solved if cost is not None and solved else None,
            tokens_per_added_agent=tok_slope, cost_per_added_agent=cost_slope,
            agent_models=dict(agent_models or {}), models=list(models or []),
            single_model_team=(len(models) == 1) if models and modelled >= 2 else None,
            inverted_spans=int(inverted), skewed_spans=int(skewed), steps_without_agent=int(no_agent), parent_cycles=int(cycles)))
    return out


def _edges(store, systems) -> list[Edge]:
    rows = store.fetchall("""
        SELECT t.system, e.src, e.dst, sum(e.n) AS n FROM _co_edges e JOIN _co_traces t USING (tid)
        GROUP BY ALL ORDER BY 1, n DESC, 2, 3""")
    return [Edge(r[0], r[1], r[2], int(r[3])) for r in rows]


def _exposure(store, table: str, systems, taxonomy: str, best_labels: str | None) -> list[TopologyExposure]:
    if best_labels is None:
        latest, params = latest_labels(store, taxonomy, systems=systems)
        best_labels = f"""SELECT trace_id, present FROM ({latest})
                          QUALIFY rank = min(rank) OVER (PARTITION BY trace_id, mode)"""
    else:
        params = []
    rows = store.fetchall(f"""
        WITH lab AS (SELECT trace_id, bool_or(present) AS failing FROM ({best_labels}) GROUP BY 1),
        t AS (SELECT t.system, t.topology, l.trace_id IS NOT NULL AS labelled, coalesce(l.failing, false) AS failing
              FROM {table} t LEFT JOIN lab l USING (trace_id) WHERE t.topology IS NOT NULL)
        SELECT system, topology, count(*), count(*) FILTER (WHERE labelled), count(*) FILTER (WHERE failing)
        FROM t GROUP BY GROUPING SETS ((system, topology), (topology))
        ORDER BY system NULLS FIRST, {_ORDER}""", params)
    return [TopologyExposure(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


__all__ = ["COLUMNS", "Analytics", "Edge", "SystemFigures", "TopologyExposure", "amdahl", "analytics"]

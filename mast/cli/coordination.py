"""`mast coordination`: topology, parallelism, coordination tax and models per trace and system."""

from __future__ import annotations

import click

from mast.cli._render import err, out, print_json, table
from mast.cli.options import json_option, systems_option, taxonomy_option


def _f(v, digits: int = 2) -> str | None:
    return None if v is None else f"{v:.{digits}f}"


def _pct(v) -> str | None:
    return None if v is None else f"{100 * v:.0f}%"


@click.command()
@systems_option
@taxonomy_option
@click.option("--traces/--no-traces", "per_trace", default=True, show_default=True,
              help="Include the per-trace figures (the human form shows at most 50 rows).")
@json_option
@click.pass_obj
def coordination(obj, systems, taxonomy_id, per_trace, as_json):
    """Who talks to whom (topology, hub), how much ran in parallel (concurrency, serial
    fraction, Amdahl ceiling, critical path), what coordination cost in tokens, and which
    models each agent used; per trace and per system.  A figure a trace cannot give is
    null, with the reason."""
    from mast.coordination import analytics
    from mast.store import Store  # here, not at the top: duckdb would slow `mast --help`

    with Store(obj.db, read_only=True) as store:
        res = analytics(store, list(systems) or None, taxonomy=taxonomy_id, traces=per_trace)
    if as_json:
        print_json({"traces": [t.as_dict() for t in res.traces] if res.traces is not None else None,
                    "systems": [s.as_dict() | {"edges": [{"source": e.source, "target": e.target,
                                                           "messages": e.messages} for e in res.edges_of(s.system)],
                                               "exposure": [{"topology": x.topology, "traces": x.traces,
                                                             "labelled": x.labelled, "failing": x.failing,
                                                             "share": x.share} for x in res.exposure_of(s.system)]}
                                for s in res.systems],
                    "exposure": [{"topology": x.topology, "traces": x.traces, "labelled": x.labelled,
                                  "failing": x.failing, "share": x.share} for x in res.exposure_of(None)]})
        return
    par = [{"system": s.system, "traces": s.traces, "topology": s.topology or "-", "hub": s.hub,
            "timed": s.timed_traces, "concurrency": _f(s.concurrency), "s": _f(s.serial_fraction),
            "speedup": _f(s.speedup), "ceiling (N)": None if s.ceiling is None else
            f"{s.ceiling:.2f} ({s.working_agents:g})", "critical path": _f(s.critical_path_s, 3),
            "straggler": s.straggler} for s in res.systems]
    tax = [{"system": s.system, "coord. tokens": _pct(s.coordination_token_share),
            "tokens/agent/task": _f(s.tokens_per_agent_per_task, 0), "$/solved": _f(s.cost_per_solved_task, 4),
            "tokens per added agent": _f(s.tokens_per_added_agent, 0),
            "models": ", ".join(s.models) + (" (one model)" if s.single_model_team else "")} for s in res.systems]
    if not res.systems:
        out.print("no traces selected")
        return
    out.print(table(par, list(par[0]), title="Topology and parallelism (medians over timed traces)",
                    justify_right=["traces", "timed", "concurrency", "s", "speedup", "ceiling (N)", "critical path"]))
    out.print(table(tax, list(tax[0]), title="Coordination tax and models",
                    justify_right=["coord. tokens", "tokens/agent/task", "$/solved", "tokens per added agent"]))
    ex = [{"topology": x.topology, "traces": x.traces, "labelled": x.labelled, "failing": x.failing,
           "exposure": _pct(x.share)} for x in res.exposure_of(None)]
    if ex:
        out.print(table(ex, list(ex[0]), title="Exposure per topology (best-available labels)",
                        justify_right=["traces", "labelled", "failing", "exposure"]))
    if res.traces:
        tr = [{"trace": t.trace_id[:15], "system": t.system, "topology": t.topology or f"- ({t.topology_reason})",
               "hub": t.hub, "concurrency": _f(t.concurrency), "s": _f(t.serial_fraction),
               "crit. path s": _f(t.critical_path_s, 3), "coord. tokens": _pct(t.coordination_token_share),
               "timing": t.timing_reason or "ok"} for t in res.traces[:50]]
        out.print(table(tr, list(tr[0]), title=f"Per trace ({min(50, len(res.traces))} of {len(res.traces)})",
                        justify_right=["concurrency", "s", "crit. path s", "coord. tokens"]))
    for s in res.systems:
        said = [f"{n} {what}" for n, what in (
            (s.inverted_spans, "span(s) ending before they start"),
            (s.skewed_spans, "span(s) outside their run's start and end"),
            (s.parent_cycles, "span(s) in a cycle of parent links"),
            (s.steps_without_agent, "step(s) with no agent (not in the graph)")) if n]
        if said:
            # a note on the data, not data: stderr, so --json-like piping of the tables stays clean
            err.print(f"[dim]{s.system}: {', '.join(said)}[/dim]", highlight=False)

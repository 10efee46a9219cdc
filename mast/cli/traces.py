"""`mast traces list|show` and `mast stats`."""

from __future__ import annotations

from dataclasses import asdict, fields
from enum import Enum
from typing import Any

import click

from mast.cli._render import out, print_json, read_db, safe, table
from mast.cli.options import json_option, systems_option
from mast.model import Trace


@click.group()
def traces():
    """Browse stored traces."""


@traces.command("list")
@systems_option
@click.option("--limit", type=int, help="At most this many rows.")
@json_option
@click.pass_obj
def list_(obj, systems, limit, as_json):
    """List traces."""
    from mast.store import Store

    with Store(read_db(obj), read_only=True) as store:
        df = store.list_traces(systems, limit)
    rows = df.to_dicts()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["id"] = r["trace_id"][:15]
        r["task"] = (r["task"] or "").replace("\n", " ")[:60]
    out.print(table(rows, ["id", "system", "source_format", "outcome", "n_steps", "n_agents", "task"],
                    justify_right=["n_steps", "n_agents"]))


@traces.command()
@click.argument("trace_id")
@click.option("--width", type=int, default=160, show_default=True, help="Characters of content per step.")
@json_option
@click.pass_obj
def show(obj, trace_id, width, as_json):
    """Show one trace: its steps, annotations and attributions (an id prefix is enough)."""
    from mast.store import Store  # here, not at the top: duckdb and pyarrow would slow `mast --help`

    with Store(read_db(obj), read_only=True) as store:
        [trace] = store.load_traces([store.resolve_trace_id(trace_id)], labels=True)
        redactions = store.redaction_counts([trace.trace_id]).get(trace.trace_id, 0)
        sources = store.run_sources(trace.trace_id)
    t = _as_dict(trace)
    t["trace"]["redactions"] = redactions
    t["sources"] = sources
    if as_json:
        print_json(t)
        return
    from rich.text import Text  # rich only when printing (start-up time: mast.cli._render)

    tr = t["trace"]
    meta = tr.get("metadata") or {}
    # Text, not markup, and safe(): a system name or path may hold "[bold]" or "\x1b[2J".
    # The store keeps NULL for a system nothing named: print what the report calls it.
    system = safe(tr["system"] or "(unknown)")
    named = f" [named by {meta['system_from']}]" if meta.get("system_from") not in (None, "artefact") else ""
    reason = f": {safe(meta['outcome_reason'])}" if meta.get("outcome_reason") else ""
    head = Text(safe(tr["trace_id"]), style="bold")
    head.append(f"  {system}{named}  ({safe(tr['source_format'])}, {safe(tr['outcome'])}{reason})")
    out.print(head, highlight=False)
    out.print(Text(f"source: {safe(tr['source_path'])} record {tr['source_index']}"), highlight=False)
    if tr["task"]:
        out.print(Text("task: " + safe(tr["task"][:300].replace("\n", " "))), highlight=False)
    if meta.get("run_key"):
        out.print(Text(f"run: {safe(meta['run_key'])} ({safe(meta.get('run_key_kind'))})"), highlight=False)
    if len(sources) > 1 or any(not s["chosen"] for s in sources):
        out.print(table([{"": "chosen" if s["chosen"] else "alternate", "file": s["path"], "format": s["format"],
                          "steps": s["steps"], "why": s["why"],
                          "matched by": s.get("match_rule") or ("run id" if s.get("run_key") else "same content")}
                         for s in sources],
                        ["", "file", "format", "steps", "why", "matched by"], title="artefacts of this run",
                        justify_right=["steps"]))
        for s in sources:  # what the chosen artefact did not say, and which alternate did
            for fact, src in (s.get("inherited") or {}).items():
                out.print(Text(f"{fact.replace('_', ' ')} from the alternate {safe(src.get('path'))} "
                               f"({safe(src.get('format'))})"), highlight=False)
    if redactions:
        out.print(Text(f"redacted: {redactions} credential-looking string(s) replaced before storage"),
                  highlight=False)
    rows = []
    for s in t["steps"]:
        text = s["content"] or (f"{s['tool_name']}({s['tool_args'] or ''})" if s["tool_name"] else "")
        text = text.replace("\n", " ⏎ ")
        rows.append({"step": s["step"], "agent": s["agent"], "kind": s["kind"],
                     "→": s["target_agent"] or "",
                     "content": text[:width] + ("…" if len(text) > width else "")})
    out.print(table(rows, ["step", "agent", "kind", "→", "content"], title="steps", justify_right=["step"]))
    present = [a for a in t["annotations"] if a["label"] == "present"]
    if t["annotations"]:
        arows = [{"annotator": a["annotator"], "mode": a["mode"], "label": a["label"],
                  "confidence": "" if a["confidence"] is None else f"{a['confidence']:.2f}",
                  "evidence": ",".join(map(str, a["evidence_steps"] or [])),
                  "rationale": (a["rationale"] or "")[:80]} for a in present]
        out.print(table(arows, ["annotator", "mode", "label", "confidence", "evidence", "rationale"],
                        title=f"annotations: {len(present)} present of {len(t['annotations'])}"))
    if t["attributions"]:
        out.print(table(t["attributions"], ["annotator", "agent", "step", "rationale"], title="root cause"))


def _as_dict(trace: Trace) -> dict[str, Any]:
    """The ``--json`` shape: the trace's fields and totals, its steps numbered, its labels."""
    def plain(items: list[tuple[str, Any]]) -> dict[str, Any]:
        return {k: v.value if isinstance(v, Enum) else v for k, v in items}

    head = plain([(f.name, getattr(trace, f.name)) for f in fields(trace)
                  if f.name not in ("steps", "annotations", "attributions")])
    head.update(asdict(trace.totals()))
    return {"trace": head,
            "steps": [{"step": i, **asdict(s, dict_factory=plain)} for i, s in enumerate(trace.steps)],
            "annotations": [asdict(a, dict_factory=plain) for a in trace.annotations],
            "attributions": [asdict(a, dict_factory=plain) for a in trace.attributions]}


@click.command()
@json_option
@click.pass_obj
def stats(obj, as_json):
    """Per system: traces, steps, agents, tokens, labelled traces."""
    from mast.store import Store

    with Store(read_db(obj), read_only=True) as store:
        rows = store.stats().to_dicts()
    if as_json:
        print_json(rows)
        return
    cols = ["system", "traces", "steps", "agents", "tokens", "labelled_traces"]
    out.print(table(rows, cols, title="store", justify_right=cols[1:]))

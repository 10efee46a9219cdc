#!/usr/bin/env python3
"""What mast makes of every artefact of every framework fixture, and how many traces a run becomes.

    python bench/fidelity_table.py [--markdown]

Part 1, per artefact (each file ingested alone into a fresh store): framework, folder,
file, importer, agents, steps, handoffs, errors (error steps plus steps with status
"error"), tool errors, outcome (with its reason when one was recorded).  Where the
fixture's generator computed what the run really did from the framework's own objects
(``golden.json["artefacts"]``: CrewAI, LangGraph/LangSmith, OTel), a cell where mast
disagrees reads ``mast ≠ fw <framework's value>``, over the facts that artefact form
holds (``tests/ingest/fw_golden.py: CARRIES``), and the last column lists every fact
that differs (agents, handoffs, tool calls, tokens, task, outcome and its reason).

Part 2, per fixture folder (all its artefacts ingested together): artefacts, the runs the
generator executed (``tests/fixtures/frameworks/runs.json``, written by the generators:
which run wrote which artefact; not from mast) and the traces stored.  One trace per run
is the goal; more traces than runs means artefacts of one run were not recognised as one.

Uses only what every version of mast since the fixtures has (``ingest_paths``, the
``traces`` and ``steps`` tables), so it runs unchanged on older checkouts for a before /
after comparison.  Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mast.ingest.pipeline import expand, ingest_paths  # noqa: E402
from mast.store import Store  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "ingest"))
from fw_golden import CARRIES, FACT_KEYS, fact_differences, stored_facts  # noqa: E402

FW = ROOT / "tests" / "fixtures" / "frameworks"
#: Runs each folder's generator executed (which artefacts came from one execution): what
#: the generators wrote in runs.json (tests/fixtures/frameworks/generators/_venvs.py:
#: record_runs), not from mast.  Older checkouts without it: the counts of that time.
_RUNS_FILE = FW / "runs.json"
RUNS = ({k: len(v["runs"]) for k, v in json.loads(_RUNS_FILE.read_text()).items()} if _RUNS_FILE.exists() else {
    "ag2/groupchat": 3, "ag2/pattern": 3, "ag2/twoagent": 3, "ag2/toolfail": 4,
    "ag2x/failing": 1, "ag2x/workflow": 1,
    "autogen/0.4.9.3/roundrobin": 1, "autogen/0.4.9.3/selector": 1, "autogen/0.4.9.3/swarm": 1,
    "autogen/0.7.5/roundrobin": 2, "autogen/0.7.5/selector": 3, "autogen/0.7.5/swarm": 2,
    "crewai/failing": 2, "crewai/research": 5, "crewai/hierarchical": 4, "crewai_steps": 1,
    "langgraph/dicts": 2, "langgraph/loop": 7, "langgraph/supervisor": 6, "langgraph/toolerror": 1,
    "langsmith/wrap_openai": 2, "openai_agents": 3, "otel": 3, "smolagents": 1,
})
SKIP = {"golden.json", "facts.json", "README.md", "runs.json"}  # and *.facts.json


def framework_facts() -> dict[Path, dict]:
    """Artefact path -> the facts its generator computed from the framework's own objects."""
    out = {}
    for g in sorted(FW.glob("*/golden.json")):
        arts = json.loads(g.read_text()).get("artefacts")
        if isinstance(arts, dict) and all(isinstance(v, dict) and "tool_errors" in v for v in arts.values()):
            out.update({g.parent / rel: facts for rel, facts in arts.items()})
    return out


def compared(db: Path, want: dict | None) -> tuple[dict, str]:
    """The cells that differ from the framework (``mast ≠ fw …``) and every differing fact."""
    if want is None:
        return {}, ""
    got = stored_facts(db)
    if len(got) != 1:
        return {}, f"{len(got)} traces for one run"
    keys = CARRIES.get(got[0]["importer"], FACT_KEYS)
    diff = fact_differences(want, got[0], keys)
    cells = {}
    if "agents" in diff:
        cells["agents"] = len(want["agents"])
    if "handoffs" in diff:
        cells["handoffs"] = len(want["handoffs"])
    if "tool_errors" in diff:
        cells["tool_errors"] = want["tool_errors"]
    if "outcome" in diff or "outcome_reason" in diff:
        cells["outcome"] = want["outcome"] + (f" ({want['outcome_reason'][:40]})" if want["outcome_reason"] else "")
    text = "; ".join(f"{k}: fw {json.dumps(w)[:70]}, mast {json.dumps(g)[:70]}" for k, (w, g) in diff.items())
    return cells, text.replace("|", "\\|")


def folders() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in expand([FW]):
        if "generators" in f.parts or f.name in SKIP or f.name.endswith(".facts.json"):
            continue
        rel = f.parent.relative_to(FW)
        # an ag2 1.x run is a folder tree (agents' logs, the hub's WALs and audit log)
        key = "/".join(rel.parts[:2]) if rel.parts[0] == "ag2x" else str(rel)
        out.setdefault(key, []).append(f)
    return dict(sorted(out.items()))


def per_trace(st: Store) -> list[dict]:
    rows = st.fetchall("""
        SELECT t.trace_id, t.source_format, t.n_agents, t.n_steps, t.outcome, t.metadata::VARCHAR,
               count(*) FILTER (WHERE s.kind = 'handoff'),
               count(*) FILTER (WHERE s.kind = 'error' OR s.status = 'error'),
               count(*) FILTER (WHERE s.kind = 'tool_result' AND s.status = 'error'), t.source_index
        FROM traces t LEFT JOIN steps s USING (trace_id)
        GROUP BY ALL ORDER BY t.source_index, t.trace_id""")
    out = []
    for tid, fmt, agents, steps, outcome, meta, handoffs, errors, tool_errors, _ in rows:
        md = json.loads(meta) if isinstance(meta, str) else (meta or {})
        reason = md.get("outcome_reason")
        out.append({"importer": fmt, "agents": agents, "steps": steps, "handoffs": handoffs, "errors": errors,
                    "tool_errors": tool_errors, "outcome": outcome + (f" ({reason[:60]})" if reason else "")})
    return out


def _cell(t: dict, cells: dict, k: str):
    return f"{t[k]} ≠ fw {cells[k]}" if k in cells else t[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (default: the same)")
    ap.parse_args()
    groups = folders()
    truth = framework_facts()
    art_rows, run_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (folder, files) in enumerate(groups.items()):
            fw = folder.split("/")[0]
            for i, f in enumerate(files):
                db = Path(tmp) / f"a{k}_{i}.duckdb"
                with Store(db) as st:
                    res = ingest_paths(st, [f], keep_going=True)
                    if res.errors:
                        art_rows.append([fw, folder, f.name, "-", "-", "-", "-", "-", "-",
                                         f"refused: {res.errors[0]}"[:80], ""])
                        continue
                    traces = per_trace(st)
                cells, diff = compared(db, truth.get(f))
                for t in traces:
                    art_rows.append([fw, folder, f.name, t["importer"], _cell(t, cells, "agents"), t["steps"],
                                     _cell(t, cells, "handoffs"), t["errors"], _cell(t, cells, "tool_errors"),
                                     _cell(t, cells, "outcome"),
                                     (diff or "agrees") if f in truth else "(no framework facts)"])
            db = Path(tmp) / f"f{k}.duckdb"
            with Store(db) as st:
                ingest_paths(st, files, keep_going=True)
                n = st.fetchall("SELECT count(*) FROM traces")[0][0]
            runs = RUNS.get(folder)
            run_rows.append([folder, len(files), runs if runs is not None else "?", n,
                             f"{n / runs:.2f}" if runs else "?"])
    print("| framework | folder | artefact | importer | agents | steps | handoffs | errors | tool errors | outcome "
          "| differs from the framework |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in art_rows:
        print("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    print()
    print("| folder | artefacts | runs | traces | traces per run |")
    print("|---|---:|---:|---:|---:|")
    for r in run_rows:
        print("| " + " | ".join(map(str, r)) + " |")
    known = [r for r in run_rows if isinstance(r[2], int)]  # folders whose runs are known
    tot_runs, tot_traces = sum(r[2] for r in known), sum(r[3] for r in known)
    print(f"| **all with known runs** | {sum(r[1] for r in known)} | {tot_runs} | {tot_traces} | "
          f"{tot_traces / tot_runs:.2f} |")


if __name__ == "__main__":
    main()

"""Golden facts for the CrewAI / LangGraph / LangSmith / OTel fixtures (helper, not a test module).

``<framework>/golden.json["artefacts"]`` is written by the generators from the
framework's own objects in the run that wrote each artefact (see
tests/fixtures/frameworks/generators/README.md), never from mast: agents, handoffs, tool
calls with their status, tool errors, LLM calls, tokens, task, outcome and its reason.
:func:`check_framework` reads the same facts back from the store after a real
``mast ingest`` through the CLI and compares them, on the facts the artefact form holds
(:data:`CARRIES`).  :func:`summarise` / :func:`check` are the older store-computed
summaries (``MAST_WRITE_GOLDEN=1`` rewrites them), still used by other formats' tests.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from mast.store import Store


def summarise(db: Path) -> list[dict]:
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, source_format, system, outcome, tokens_in, tokens_out, task, "
                             "metadata->>'system_from', metadata->>'outcome_reason' "
                             "FROM traces ORDER BY source_path, source_index")
        out = []
        for tid, fmt, system, outcome, tin, tout, task, system_from, reason in traces:
            rows = st.fetchall("SELECT step, agent, kind, span_id, parent_span_id, tool_name, target_agent, status "
                               "FROM steps WHERE trace_id = ? ORDER BY step", [tid])
            pairs = st.fetchall("""
                SELECT c.tool_name, coalesce(r.status, 'ok') FROM steps c JOIN steps r
                  ON r.trace_id = c.trace_id AND r.kind = 'tool_result' AND r.parent_span_id = c.span_id
                WHERE c.trace_id = ? AND c.kind = 'tool_call' ORDER BY c.step""", [tid])
            unpaired = st.fetchall("""
                SELECT count(*) FROM steps c WHERE c.trace_id = ? AND c.kind = 'tool_call' AND NOT EXISTS (
                  SELECT 1 FROM steps r WHERE r.trace_id = c.trace_id AND r.kind = 'tool_result'
                    AND r.parent_span_id = c.span_id)""", [tid])[0][0]
            terms = [r for r in rows if r[2] == "termination"]
            out.append({
                "format": fmt, "system": system, "system_from": system_from, "outcome": outcome,
                "outcome_reason": reason, "has_task": bool(task),
                "agents": sorted({r[1] for r in rows if r[1]}),
                "kinds": dict(sorted(Counter(r[2] for r in rows).items())),
                "tool_pairs": [list(p) for p in pairs], "unpaired_tool_calls": unpaired,
                "handoffs": [[r[1], r[6]] for r in rows if r[2] == "handoff"],
                "termination": [terms[-1][1], terms[-1][7]] if terms else None,
                "termination_last": bool(terms) and rows[-1][2] == "termination",
                "tokens": [tin, tout],
            })
        return out


def check(fix: Path, rel: str, got: list[dict]) -> None:
    """Compare with ``fix/golden.json[rel]`` (or record it when MAST_WRITE_GOLDEN=1)."""
    gpath = fix / "golden.json"
    golden = json.loads(gpath.read_text()) if gpath.exists() else {}
    if os.environ.get("MAST_WRITE_GOLDEN") == "1":
        golden[rel] = got
        gpath.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
        return
    assert rel in golden, f"no golden summary for {rel}; see tests/ingest/fw_golden.py"
    want = golden[rel]
    assert len(got) == len(want), f"{rel}: {len(got)} trace(s), golden has {len(want)}"
    for g, w in zip(got, want):
        for key in w:
            assert g[key] == w[key], f"{rel}: {key} differs: got {g[key]!r}, golden {w[key]!r}"


def golden_keys(fix: Path) -> list[str]:
    gpath = fix / "golden.json"
    listed = set(json.loads(gpath.read_text())) if gpath.exists() else set()
    on_disk = {str(p.relative_to(fix)) for p in fix.rglob("*") if p.is_file()
               and p.name not in ("golden.json", "facts.json")}
    return sorted(listed | on_disk)


def ingest(mast, path: Path) -> dict:
    """Ingest one file through the CLI and return its --json summary."""
    return json.loads(mast("ingest", "--json", path).stdout)


def no_traces(db: Path) -> bool:
    if not db.exists():
        return True
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT count(*) FROM traces")[0][0] == 0 and \
            st.fetchall("SELECT count(*) FROM steps")[0][0] == 0


def refused(mast, db: Path, path: Path, *must: str, fmt: str = "auto") -> str:
    """Ingest must fail naming the file (and each of ``must``) and store nothing."""
    res = mast("ingest", "--format", fmt, path, expect=1)
    text = res.stderr + res.stdout
    assert path.name in text
    for m in must:
        assert m in text, f"{m!r} not in {text!r}"
    assert no_traces(db)
    return text


def assert_truncated_refused(src: Path, mast, db: Path, tmp_path: Path) -> None:
    """A fixture cut in half (inside a record) is refused whole: error names it, nothing stored."""
    raw = src.read_bytes()
    cut = raw[: len(raw) // 2]
    assert not cut.endswith(b"\n"), "cut inside a record, as a crash or a full disk would"
    p = tmp_path / src.name
    p.write_bytes(cut)
    res = mast("ingest", p, expect=1)
    assert str(p) in res.stderr
    assert no_traces(db)


# -- facts computed by the generators from the frameworks' own objects --------------------------

#: Every fact a generator records per artefact (``golden.json["artefacts"][rel]``).
FACT_KEYS = ("agents", "handoffs", "tool_calls", "tool_errors", "llm_calls", "tokens", "task", "outcome",
             "outcome_reason")


#: What each artefact form can hold of its run, per importer (the rest hold every fact):
#: CrewAI's output log names tasks, agents and how they ended, not tools, calls or usage;
#: CrewOutput / TaskOutput keep each agent's messages (tool calls with their results) but
#: no usage per call; a LangGraph final state or stream holds messages, not the calls that
#: made them (mast keeps them as message steps, with their usage; astream_events has the
#: calls), and not how the run ended (the exception is raised to the caller, never written into the state or stream).
CARRIES = {
    "crewai-log": ("agents", "handoffs", "task", "outcome", "outcome_reason"),
    "crewai-output": ("agents", "handoffs", "tool_calls", "tool_errors", "task", "outcome", "outcome_reason"),
    "langgraph-messages": ("agents", "handoffs", "tool_calls", "tool_errors", "tokens", "task"),
    "langgraph-stream": ("agents", "handoffs", "tool_calls", "tool_errors", "tokens", "task"),
    # astream_events has every model call (an llm_call step each), but not how the run ended
    "langgraph-events": ("agents", "handoffs", "tool_calls", "tool_errors", "llm_calls", "tokens", "task"),
}


def framework_golden(fix: Path) -> dict:
    """``fix/golden.json["artefacts"]``: what the framework itself recorded for each artefact's run."""
    return json.loads((fix / "golden.json").read_text())["artefacts"]


def stored_facts(db: Path) -> list[dict]:
    """The same facts as :data:`FACT_KEYS`, read back from the store, one dict per trace."""
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT trace_id, outcome, tokens_in, tokens_out, task, metadata->>'outcome_reason', "
                             "source_format FROM traces ORDER BY source_path, source_index")
        out = []
        for tid, outcome, tin, tout, task, reason, fmt in traces:
            rows = st.fetchall("SELECT agent, kind, target_agent, status FROM steps WHERE trace_id = ? ORDER BY step",
                               [tid])
            pairs = st.fetchall("""
                SELECT c.tool_name, coalesce(r.status, 'ok') FROM steps c JOIN steps r
                  ON r.trace_id = c.trace_id AND r.kind = 'tool_result' AND r.parent_span_id = c.span_id
                WHERE c.trace_id = ? AND c.kind = 'tool_call' ORDER BY c.step""", [tid])
            out.append({
                "agents": sorted({r[0] for r in rows if r[0]}),
                "handoffs": [[r[0], r[2]] for r in rows if r[1] == "handoff"],
                "tool_calls": [list(p) for p in pairs],
                "tool_errors": sum(1 for r in rows if r[1] == "tool_result" and r[3] == "error"),
                "llm_calls": sum(1 for r in rows if r[1] == "llm_call" and r[3] != "error"),
                "tokens": [tin, tout], "task": task, "outcome": outcome, "outcome_reason": reason,
                "importer": fmt,
            })
        return out


def fact_differences(want: dict, got: dict, keys) -> dict:
    """``{key: (framework, mast)}`` for each of ``keys`` where the store disagrees with the framework.

    The outcome's reason is the framework's own message: mast may prefix it with where it
    was raised (CrewAI's "OpenAI API call failed: …") or keep its opening clause only.
    """
    diff = {}
    for k in keys:
        w, g = want.get(k), got.get(k)
        if k == "outcome_reason" and w is not None:
            # or mast keeps the message's opening clause ("GraphRecursionError: Recursion
            # limit of 6 reached" of "… reached without hitting a stop condition. …")
            ok = isinstance(g, str) and (w[:200] in g or (len(g) >= 20 and w.startswith(g)))
        elif k == "task" and w is not None:
            ok = isinstance(g, str) and w.strip() in g
        else:
            ok = w == g
        if not ok:
            diff[k] = (w, g)
    return diff


def check_framework(fix: Path, rel: str, db: Path, keys=None, known: dict | None = None) -> None:
    """The stored trace of ``fix/rel`` holds what the framework recorded for that run.

    ``known`` lists disagreements not fixed yet, ``{key: what mast stores}``: they must
    still be exactly that (a fix fails here, so the entry is removed with it).
    """
    want = framework_golden(fix)[rel]
    got = stored_facts(db)
    assert len(got) == 1, f"{rel}: one run is one trace, got {len(got)}"
    if keys is None:
        keys = CARRIES.get(got[0]["importer"], FACT_KEYS)
    known = known or {}
    diff = fact_differences(want, got[0], [k for k in keys if k not in known])
    assert not diff, f"{rel}: the store disagrees with the framework (framework, mast): {diff}"
    for k, stored in known.items():
        assert got[0][k] == stored != want[k], \
            f"{rel}: {k} is no longer the known disagreement {stored!r} (framework {want[k]!r}, mast {got[0][k]!r})"


def artefact_keys(fix: Path) -> list[str]:
    """Every artefact under ``fix`` (and every one the golden file names): none goes unchecked."""
    listed = set(framework_golden(fix)) if (fix / "golden.json").exists() else set()
    on_disk = {str(p.relative_to(fix)) for p in fix.rglob("*") if p.is_file()
               and p.name not in ("golden.json", "facts.json") and not p.name.endswith(".facts.json")}
    return sorted(listed | on_disk)


def assert_sdk_items(steps: list[tuple], items: list[dict]) -> None:
    """An OpenAI Agents SDK run's stored steps (agent, kind, tool name, status, target) have
    the agents, handoffs and tool calls of the SDK's own items (its generators' facts)."""
    agents = {i.get("agent") or i.get("source") for i in items} | {i["target"] for i in items if "target" in i}
    assert {s[0] for s in steps if s[0]} == agents
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == \
        [(i["source"], i["target"]) for i in items if i["item"] == "handoff"]
    assert [(s[0], s[2]) for s in steps if s[1] == "tool_call"] == \
        [(i["agent"], i["name"]) for i in items if i["item"] == "tool_call"]

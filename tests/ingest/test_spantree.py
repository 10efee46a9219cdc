"""Nested span-tree dumps (``spantree``), the shape TRAIL publishes its smolagents traces in.

TRAIL's own traces embed gated GAIA / SWE-bench content and are not redistributable.  The
fixtures in tests/fixtures/formats/spantree/ (NOTICE.md): ``smolagents_managed.json``, a real
smolagents 1.26 run (a CodeAgent manager and a managed ToolCallingAgent whose first search
fails) traced by openinference-instrumentation-smolagents 0.1.43 and dumped in that shape by
generators/gen_spantree.py, with ``smolagents_managed.facts.json`` from smolagents' own
objects; and two hand-written files in the same shape (a manager with LLM spans, and JSON
Lines of two small runs, one ending in AgentMaxStepsError).
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from span_export_checks import steps_of, tool_names
from mast.ingest import detect
from mast.ingest.formats.otel.spantree import duration_ns
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "spantree"
FILES = sorted(p.name for p in FIX.iterdir() if p.suffix in (".json", ".jsonl")
               and p.name != "golden.json" and not p.name.endswith(".facts.json"))
FACTS = json.loads((FIX / "smolagents_managed.facts.json").read_text())


def _docs(name: str) -> list[dict]:
    text = (FIX / name).read_text()
    return [json.loads(x) for x in text.splitlines() if x.strip()] if name.endswith(".jsonl") else [json.loads(text)]


def _walk(spans):
    stack = list(reversed(spans))
    while stack:
        s = stack.pop()
        yield s
        stack.extend(reversed(s.get("child_spans") or []))


def _expected_tools(spans) -> tuple[list[str], list[str]]:
    """Tool calls and results in tree order: TOOL spans, and a CodeAgent's "Step N" whose
    output is an execution log (its code ran: smolagents' ``python_interpreter``), whose
    result comes after what ran inside it."""
    calls, results = [], []

    def walk(s):
        a = s["span_attributes"]
        code = s["span_name"].startswith("Step ") and str(a.get("output.value", "")).startswith("Execution logs:")
        if a.get("openinference.span.kind") == "TOOL":
            calls.append(a["tool.name"])
            results.append(a["tool.name"])
        if code:
            calls.append("python_interpreter")
        for c in sorted(s.get("child_spans") or [], key=lambda c: c["timestamp"]):
            walk(c)
        if code:
            results.append("python_interpreter")

    for s in spans:
        walk(s)
    return calls, results


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == "spantree"
    assert ingest(mast, FIX / name)["formats"] == {"spantree": 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("name", FILES)
def test_tools_tokens_errors_match_the_tree(name, mast, db):
    ingest(mast, FIX / name)
    for doc, steps in zip(_docs(name), steps_of(db)):
        spans = sorted(_walk(doc["spans"]), key=lambda s: s["timestamp"])
        calls, results = _expected_tools(doc["spans"])
        assert tool_names(steps) == calls and tool_names(steps, "tool_result") == results
        llm = [s["span_attributes"] for s in spans if s["span_attributes"].get("openinference.span.kind") == "LLM"]
        if llm:
            assert sum(s[5] or 0 for s in steps) == sum(a["llm.token_count.prompt"] for a in llm)
            assert sum(s[6] or 0 for s in steps) == sum(a["llm.token_count.completion"] for a in llm)
        failed_tools = [s["span_attributes"]["tool.name"] for s in spans if s["status_code"] == "Error"
                        and s["span_attributes"].get("openinference.span.kind") == "TOOL"]
        assert [s[2] for s in steps if s[1] == "tool_result" and s[3] == "error"] == failed_tools


def test_real_smolagents_run_matches_what_smolagents_recorded(mast, db):
    ingest(mast, FIX / "smolagents_managed.json")
    [steps] = steps_of(db)
    # tokens: smolagents' own per-step usage, summed over both agents' memories (the
    # instrumentation puts them on the agent spans only: no LLM spans)
    assert sum(s[5] or 0 for s in steps) == FACTS["tokens_in"]
    assert sum(s[6] or 0 for s in steps) == FACTS["tokens_out"]
    # the managed agent is its own agent, called by the manager: a handoff, by name
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == [("CodeAgent", "search_agent")]
    searches = [(s[0], s[3]) for s in steps if s[1] == "tool_result" and s[2] == "web_search"]
    assert searches == [("search_agent", "ok" if r["ok"] else "error") for r in FACTS["tool_runs"]]
    assert len(FACTS["search_agent_errors"]) == 1
    # every run of the tool (as the tool itself logged them), then the agent's final answer
    assert [s[2] for s in steps if s[1] == "tool_call" and s[0] == "search_agent"] == \
        [r["tool"] for r in FACTS["tool_runs"]] + ["final_answer"]
    with Store(db, read_only=True) as st:
        [(task,)] = st.fetchall("SELECT task FROM traces")
        [(answer,)] = st.fetchall("SELECT content FROM steps WHERE kind = 'tool_result' AND tool_name = 'final_answer' "
                                  "ORDER BY step DESC LIMIT 1")
    assert task == FACTS["task"] and answer == FACTS["answer"]


def test_manager_and_managed_agent_are_two_agents_with_a_handoff(mast, db):
    ingest(mast, FIX / "gaia_manager_search.json")
    [steps] = steps_of(db)
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == [("CodeAgent", "ToolCallingAgent")]
    assert {s[0] for s in steps if s[2] == "web_search"} == {"ToolCallingAgent"}
    assert steps[-1][:2] == ("CodeAgent", "termination")
    with Store(db, read_only=True) as st:
        [(task, started, ended)] = st.fetchall("SELECT task, started_at::VARCHAR, ended_at::VARCHAR FROM traces")
    agent_span = next(s for s in _walk(_docs("gaia_manager_search.json")[0]["spans"]) if s["span_name"] == "CodeAgent.run")
    assert task == agent_span["span_attributes"]["input.value"]  # the task is on the agent's run span
    assert started.startswith("2025-03-19 16:40:46.830526")
    assert ended.startswith("2025-03-19 16:42:35.530526")  # timestamp + PT1M48.7S


def test_failed_run_is_a_failure_with_its_error(mast, db):
    ingest(mast, FIX / "swe_and_math.jsonl")
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT outcome, list(s.content ORDER BY s.step) FILTER (s.kind = 'error') "
                           "FROM traces t LEFT JOIN steps s USING (trace_id) GROUP BY t.trace_id, t.source_index, 1 "
                           "ORDER BY t.source_index")
    assert rows[0] == ("failure", ["AgentMaxStepsError: Reached max steps."])
    assert rows[1][0] == "unknown" and not rows[1][1]


@pytest.mark.parametrize("text,ns", [("PT1M48.7S", 108_700_000_000), ("PT24.688187S", 24_688_187_000),
                                     ("P1DT2H", 93_600 * 10**9), ("PT0S", 0), ("", None)])
def test_iso_durations(text, ns):
    assert duration_ns(text) == ns


def test_truncated_dump_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "gaia_manager_search.json", mast, db, tmp_path)


@pytest.mark.parametrize("mutate,must", [
    (lambda d: d.pop("trace_id"), "missing required field(s): trace_id"),
    (lambda d: d["spans"][0]["child_spans"][1].pop("span_id"), "spans[0].child_spans[1]"),
    (lambda d: d["spans"][0].update(duration="about a minute"), "is not an ISO-8601 duration"),
    (lambda d: d["spans"][0].update(status_code="Maybe"), "unknown status_code 'Maybe' (newer format?)"),
    (lambda d: d["spans"][0].update(child_spans={"a": 1}), "child_spans is not a list"),
])
def test_bad_span_is_refused_naming_the_record(mutate, must, mast, db, tmp_path):
    [d] = _docs("gaia_manager_search.json")
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d, indent=1))
    refused(mast, db, p, must, fmt="spantree")
    assert no_traces(db)


def test_lookalike_is_not_a_span_tree(tmp_path):
    # a trace summary that lists span names but no span objects is not a dump
    p = tmp_path / "summary.json"
    p.write_text(json.dumps({"trace_id": "x", "spans": 12, "names": ["main"]}))
    with pytest.raises(Exception, match="no importer"):
        detect(p)

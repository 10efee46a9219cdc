"""Langfuse trace exports (``langfuse``): the public framework traces of langfuse/langfuse.

tests/fixtures/formats/langfuse/ holds four of the traces Langfuse's own tests use (AutoGen,
CrewAI, LangGraph and OpenAI Agents runs exported from Langfuse; NOTICE.md), each
``{"trace": {...}, "observations": [...]}``.  Before this importer they were refused.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from span_export_checks import steps_of, tool_names
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "langfuse"
FILES = sorted(p.name for p in FIX.glob("*.trace.json"))


def _doc(name: str) -> dict:
    return json.loads((FIX / name).read_text())


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == "langfuse"
    assert ingest(mast, FIX / name)["formats"] == {"langfuse": 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("name", FILES)
def test_tokens_and_tools_match_the_observations(name, mast, db):
    ingest(mast, FIX / name)
    [steps] = steps_of(db)
    obs = sorted(_doc(name)["observations"], key=lambda o: o["startTime"])
    gens = [o for o in obs if o["type"] == "GENERATION"]
    assert [s[5] for s in steps if s[1] == "llm_call"] == [o["usageDetails"]["input"] for o in gens]
    assert [s[6] for s in steps if s[1] == "llm_call"] == [o["usageDetails"]["output"] for o in gens]
    tools = [o["name"] for o in obs if o["type"] == "TOOL"]
    assert tool_names(steps) == tools and tool_names(steps, "tool_result") == tools
    assert not set(tools) & {s[0] for s in steps}
    assert steps[-1][1] == "termination"


def test_agents_come_from_the_exported_spans(mast, db):
    for name in FILES:
        ingest(mast, FIX / name)
    with Store(db, read_only=True) as st:
        rows = dict(st.fetchall("SELECT t.source_path, list(DISTINCT s.agent) FILTER (s.agent IS NOT NULL) "
                                "FROM traces t JOIN steps s USING (trace_id) GROUP BY 1"))
        tasks = dict(st.fetchall("SELECT source_path, task FROM traces"))
    by = {k.rsplit("/", 1)[-1]: sorted(v or []) for k, v in rows.items()}
    # OpenAI Agents: the agent span (graph.node.id), not the workflow span around it
    assert by["openai-agents-2025-09-30.trace.json"] == ["Hello world"]
    # CrewAI through OpenInference: the task span names its agent's role
    assert by["crewai-2025-07-11.trace.json"] == ["Software developer"]
    # LangGraph: the graph nodes
    assert by["langgraph-python-2025-08-22.trace.json"] == ["agent", "tools"]
    t = {k.rsplit("/", 1)[-1]: v for k, v in tasks.items()}
    assert t["openai-agents-2025-09-30.trace.json"] == "What's the weather in Tokyo?"
    assert t["langgraph-python-2025-08-22.trace.json"] == "Search the web for 'example' and summarize."
    assert t["autogen-2025-06-06.trace.json"] == json.loads(_doc("autogen-2025-06-06.trace.json")["trace"]["input"])


def test_api_shape_and_json_lines(mast, db, tmp_path):
    # GET /api/public/traces/{id}: the trace with its observations inside, one per line
    lines = []
    for name in FILES:
        d = _doc(name)
        lines.append(json.dumps({**d["trace"], "observations": d["observations"]}))
    p = tmp_path / "traces.jsonl"
    p.write_text("\n".join(lines) + "\n")
    assert ingest(mast, p)["formats"] == {"langfuse": 1}
    got = summarise(db)
    assert len(got) == len(FILES)
    assert all(g["format"] == "langfuse" and g["termination_last"] for g in got)


def test_error_level_is_an_error(mast, db, tmp_path):
    d = _doc("openai-agents-2025-09-30.trace.json")
    tool = next(o for o in d["observations"] if o["type"] == "TOOL")
    tool.update(level="ERROR", statusMessage="weather service unavailable", output=None)
    md = json.loads(tool["metadata"])
    md["attributes"].pop("output.value", None)
    tool["metadata"] = json.dumps(md)
    p = tmp_path / "err.json"
    p.write_text(json.dumps(d))
    ingest(mast, p)
    [steps] = steps_of(db)
    assert [(s[2], s[3]) for s in steps if s[1] == "tool_result"] == [("get_weather", "error")]
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT content FROM steps WHERE kind = 'tool_result'") == [("weather service unavailable",)]


def test_truncated_export_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "crewai-2025-07-11.trace.json", mast, db, tmp_path)


@pytest.mark.parametrize("mutate,must", [
    (lambda d: d["observations"][1].pop("startTime"), "missing required field(s): startTime"),
    (lambda d: d["observations"][1].update(type="HOLOGRAM"), "unknown observation type 'HOLOGRAM' (newer Langfuse version?)"),
    (lambda d: d.pop("observations") and d["trace"].pop("observations"), "missing required field: observations"),
    (lambda d: d["observations"][1].update(level="LOUD"), "unknown level 'LOUD'"),
])
def test_bad_observation_is_refused_naming_the_record(mutate, must, mast, db, tmp_path):
    d = _doc("langgraph-python-2025-08-22.trace.json")
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d, indent=1))
    refused(mast, db, p, must, fmt="langfuse")
    assert no_traces(db)


@pytest.mark.parametrize("api", [False, True])
def test_a_trace_input_longer_than_the_head_is_detected(api, mast, db, tmp_path):
    # the trace's input and output come before its observations; a run's whole message
    # history as input pushed them past the head and the file was refused by every importer
    d = _doc("crewai-2025-07-11.trace.json")
    d["trace"]["input"] = "the task, then the whole conversation so far. " * 3_000
    if api:  # GET /api/public/traces/{id}: the trace object, observations inside it
        d = dict(d["trace"], observations=d["observations"])
    p = tmp_path / "long.json"
    p.write_text(json.dumps(d, indent=2))
    assert p.stat().st_size > 100_000
    assert detect(p).name == "langfuse"
    ingest(mast, p)
    with Store(db, read_only=True) as st:
        [(task, n)] = st.fetchall("SELECT task, n_steps FROM traces")
    assert task.startswith("the task, then") and n > 1


def test_a_trace_from_the_list_endpoint_says_to_fetch_it_whole(mast, db, tmp_path):
    # GET /api/public/traces lists each trace's observations as ids only
    d = _doc("crewai-2025-07-11.trace.json")
    t = dict(d["trace"], observations=[o["id"] for o in d["observations"]])
    p = tmp_path / "listed.json"
    p.write_text(json.dumps(t, indent=1))
    refused(mast, db, p, "closest: langfuse (observations are ids only", "GET /api/public/traces/{id}")

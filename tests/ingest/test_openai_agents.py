"""OpenAI Agents SDK traces: its own processors' export dicts, and OpenInference's instrumentation over OTLP.

Fixtures (tests/fixtures/frameworks/openai_agents/, generators/gen_openai_agents.py): two
real runs of openai-agents 0.24 (a triage agent handing off to ``billing_agent``, whose
``issue_refund`` tool raises, through chat completions; to ``tech_agent`` through the
Responses API; and a third stopped by ``MaxTurnsExceeded``), recorded at once by a user's file-writing ``TracingProcessor``
(``processor.jsonl``), the SDK's ``BackendSpanExporter`` posting to a loopback endpoint
(``backend_batches.jsonl``) and openinference-instrumentation-openai-agents
(``openinference.otlp.json``).  ``facts.json`` is from the SDK's ``RunResult`` objects.
On main before this change the SDK's files were refused, and the OTLP import had the
handoff as a tool call, no task and an ``otel`` framework.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_sdk_items, assert_truncated_refused, check, ingest, no_traces, refused, summarise
from span_export_checks import steps_of
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "openai_agents"
SDK_FILES = ["processor.jsonl", "backend_batches.jsonl"]
FILES = {"processor.jsonl": "openai-agents", "backend_batches.jsonl": "openai-agents",
         "openinference.otlp.json": "otel"}
FACTS = json.loads((FIX / "facts.json").read_text())


@pytest.mark.parametrize("name", sorted(FILES))
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == FILES[name]
    assert ingest(mast, FIX / name)["formats"] == {FILES[name]: 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("name", sorted(FILES))
def test_agents_handoffs_tools_tokens_match_the_run_results(name, mast, db):
    ingest(mast, FIX / name)
    with Store(db, read_only=True) as st:
        traces = st.fetchall("SELECT task, tokens_in, tokens_out, framework, outcome FROM traces ORDER BY started_at")
    assert len(traces) == len(FACTS["runs"])
    by_start = sorted(zip(steps_of(db), _starts(db)), key=lambda x: x[1])
    for run, (task, tin, tout, framework, outcome), (steps, _) in zip(FACTS["runs"], traces, by_start):
        items = run["items"]
        assert framework == "openai-agents"
        assert (tin, tout) == (run["tokens_in"], run["tokens_out"])
        assert_sdk_items(steps, items)
        runs = {r["tool"]: r["ok"] for r in FACTS["tool_runs"]}
        assert [(s[2], s[3]) for s in steps if s[1] == "tool_result"] == \
            [(i["name"], "ok" if runs[i["name"]] else "error") for i in items if i["item"] == "tool_call"]
        assert steps[-1][:2] == (run["last_agent"], "termination")
        # a run the SDK stopped (MaxTurnsExceeded) failed, with its error after the work
        assert outcome == ("failure" if run.get("error") else "unknown")
        assert [s[1] for s in steps[-2:]] == (["error", "termination"] if run.get("error") else
                                              [steps[-2][1], "termination"])
        assert steps[-1][3] == ("failed" if run.get("error") else "completed")
        # the Responses API's spans carry no messages in the SDK's export: its task is unknown there
        assert task == (None if run["api"] == "responses" and name in SDK_FILES else run["task"])


def _starts(db):
    with Store(db, read_only=True) as st:
        return [r[0] for r in st.fetchall("SELECT started_at FROM traces ORDER BY source_path, source_index")]


def test_sdk_file_and_backend_batches_are_the_same_traces(mast, db):
    a = ingest(mast, FIX / "processor.jsonl")
    b = ingest(mast, FIX / "backend_batches.jsonl")
    assert a["traces_new"] == 3 and b["traces_new"] == 0 and b["traces_present"] == 3


def test_workflow_name_is_the_system_and_the_default_names_nothing(mast, db):
    ingest(mast, FIX / "processor.jsonl")
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT system, metadata->>'system_from', metadata->>'group_id' FROM traces "
                           "ORDER BY started_at")
    assert rows == [("openai_agents", "folder", None), ("support-desk", "artefact", "conv-7"),
                    ("openai_agents", "folder", None)]


def test_failing_tool_keeps_the_sdk_error(mast, db):
    ingest(mast, FIX / "processor.jsonl")
    span = next(x for x in _lines() if x.get("span_data", {}).get("type") == "function"
                and x["span_data"]["name"] == "issue_refund")
    with Store(db, read_only=True) as st:
        [(content, status)] = st.fetchall("SELECT content, status FROM steps WHERE kind = 'tool_result' "
                                          "AND tool_name = 'issue_refund'")
    assert status == "error" and content == span["span_data"]["output"]
    assert span["error"]["message"] == "Error running tool (non-fatal)"


@pytest.mark.parametrize("name", SDK_FILES)
def test_truncated_export_is_refused_whole(name, mast, db, tmp_path):
    assert_truncated_refused(FIX / name, mast, db, tmp_path)


def _lines():
    return [json.loads(x) for x in (FIX / "processor.jsonl").read_text().splitlines()]


def _write(tmp_path, name, items):
    p = tmp_path / name
    p.write_text("".join(json.dumps(x) + "\n" for x in items))
    return p


def test_span_missing_fields_names_the_line(mast, db, tmp_path):
    items = _lines()
    del items[3]["trace_id"]
    refused(mast, db, _write(tmp_path, "nofield.jsonl", items), "line 4", "trace_id")


def test_span_data_not_an_object(mast, db, tmp_path):
    items = _lines()
    items[2]["span_data"] = "generation"
    refused(mast, db, _write(tmp_path, "baddata.jsonl", items), "line 3", "span_data")


def test_unknown_object_is_a_newer_version(mast, db, tmp_path):
    items = _lines()
    items.insert(5, {"object": "trace.event", "id": "ev_1", "trace_id": items[0]["id"]})
    refused(mast, db, _write(tmp_path, "newer.jsonl", items), "line 6", "newer SDK version")


def test_unknown_span_type_is_kept_as_a_plain_span(mast, db, tmp_path):
    items = _lines()
    items[2]["span_data"] = {"type": "realtime_session", "model": "x"}
    ingest(mast, _write(tmp_path, "newtype.jsonl", items))
    assert len(steps_of(db)) == 3


def test_lookalikes_are_not_taken(mast, db, tmp_path):
    # an OpenAI API object log, and a trace record with no span anywhere in the file
    api = _write(tmp_path, "api.jsonl", [{"object": "chat.completion", "id": "chatcmpl-1", "choices": []}])
    assert not detect_name(api) == "openai-agents"
    only = _write(tmp_path, "only_traces.jsonl", [_lines()[0]])
    refused(mast, db, only, "no spans", fmt="openai-agents")
    assert no_traces(db)


def detect_name(p):
    try:
        return detect(p).name
    except Exception:
        return None

"""smolagents over OTLP: OpenInference's smolagents instrumentation, as a user's OTLP exporter sends it.

Fixtures (tests/fixtures/frameworks/smolagents/, generators/gen_smolagents_otlp.py): a real
smolagents 1.26 run, a CodeAgent manager calling its managed ToolCallingAgent
``search_agent`` (whose first ``web_search`` fails), encoded by the OTLP exporter's own
encoder: one OTLP/JSON request with hex ids, and one request per span per line with
base64 ids.  ``smolagents_managed.facts.json`` is what smolagents recorded in its agents'
memories.  On main before this change the OTLP import had no agent on any step, no handoff,
the task as the run span's raw JSON, no tokens, and no step for the code's execution logs.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, refused, summarise
from span_export_checks import steps_of
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "smolagents"
FILES = ["smolagents_managed.otlp.json", "smolagents_managed.otlp.jsonl"]
FACTS = json.loads((FIX / "smolagents_managed.facts.json").read_text())


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == "otel"
    assert ingest(mast, FIX / name)["formats"] == {"otel": 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("name", FILES)
def test_agents_handoff_task_tokens_match_what_smolagents_recorded(name, mast, db):
    ingest(mast, FIX / name)
    [steps] = steps_of(db)
    manager, managed = FACTS["agents"]
    assert {s[0] for s in steps if s[0]} == set(FACTS["agents"])
    # the managed-agent call is a handoff from the manager to the agent it manages
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == \
        [(manager, a) for a in FACTS["managed_agents"][manager]]
    # every tool run the tool itself logged, by the managed agent, failed where it failed
    assert [(s[0], s[3]) for s in steps if s[1] == "tool_result" and s[2] == "web_search"] == \
        [(managed, "ok" if r["ok"] else "error") for r in FACTS["tool_runs"]]
    assert [s[2] for s in steps if s[1] == "tool_call" and s[0] == managed] == FACTS["search_agent_tool_calls"][:1] \
        * sum(1 for r in FACTS["tool_runs"]) + FACTS["search_agent_tool_calls"][1:]
    assert sum(s[5] or 0 for s in steps) == FACTS["tokens_in"]
    assert sum(s[6] or 0 for s in steps) == FACTS["tokens_out"]
    with Store(db, read_only=True) as st:
        [(task, framework, outcome)] = st.fetchall("SELECT task, framework, outcome FROM traces")
        logs = [r[0] for r in st.fetchall("SELECT content FROM steps WHERE kind = 'tool_result' "
                                          "AND tool_name = 'python_interpreter' ORDER BY step")]
        [(last_agent, answer)] = st.fetchall("SELECT agent, content FROM steps WHERE kind = 'termination'")
    assert task == FACTS["task"] and framework == "smolagents" and outcome == "unknown"
    # the manager's code execution logs, as smolagents kept them as its steps' observations
    assert logs == FACTS["observations"]
    assert (last_agent, answer) == (manager, FACTS["answer"])


def test_both_encodings_give_the_same_steps(mast, db, tmp_path):
    ingest(mast, FIX / FILES[0])
    other = tmp_path / "other.duckdb"
    from mast.cli import cli
    from click.testing import CliRunner
    assert CliRunner().invoke(cli, ["-d", str(other), "ingest", str(FIX / FILES[1])]).exit_code == 0
    assert steps_of(db) == steps_of(other)


@pytest.mark.parametrize("name", FILES)
def test_truncated_export_is_refused_whole(name, mast, db, tmp_path):
    assert_truncated_refused(FIX / name, mast, db, tmp_path)


def test_span_without_span_id_names_it(mast, db, tmp_path):
    doc = json.loads((FIX / "smolagents_managed.otlp.json").read_text())
    del doc["resourceSpans"][0]["scopeSpans"][0]["spans"][3]["spanId"]
    p = tmp_path / "missing.otlp.json"
    p.write_text(json.dumps(doc))
    refused(mast, db, p, "spans[3]", "spanId")


def test_newer_attribute_type_is_refused_as_newer(mast, db, tmp_path):
    doc = json.loads((FIX / "smolagents_managed.otlp.json").read_text())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": "smolagents.future", "value": {"mapValue": {}}})
    p = tmp_path / "newer.otlp.json"
    p.write_text(json.dumps(doc))
    refused(mast, db, p, "newer")


def test_a_step_span_without_execution_logs_is_no_code_run(mast, db, tmp_path):
    # a look-alike: a "Step N" chain span of another framework, whose output is no log
    doc = json.loads((FIX / "smolagents_managed.otlp.json").read_text())
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for kv in s["attributes"]:
            if kv["key"] == "output.value" and s["name"].startswith("Step "):
                kv["value"] = {"stringValue": "done"}
    p = tmp_path / "nolog.otlp.json"
    p.write_text(json.dumps(doc))
    ingest(mast, p)
    [steps] = steps_of(db)
    assert not [s for s in steps if s[2] == "python_interpreter"]

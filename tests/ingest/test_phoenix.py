"""Arize Phoenix span exports (``phoenix``): the public fixtures of Arize-ai/phoenix.

tests/fixtures/formats/phoenix/ holds three span exports from Phoenix's own test suite
(see NOTICE.md there): a PXI agent turn with 8 tool calls (one failing), the same agent
delegating to a sub-agent through a ``call_subagent`` tool, and a file of three named
groups of spans.  Before this importer they were refused with "expected … context".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, no_traces, refused, summarise
from span_export_checks import steps_of, tool_names
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats" / "phoenix"
FILES = sorted(p.name for p in FIX.glob("*.json") if p.name != "golden.json")


def _spans(name: str) -> list[list[dict]]:
    data = json.loads((FIX / name).read_text())
    return list(data.values()) if isinstance(data, dict) else [data]


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_golden(name, mast, db):
    assert detect(FIX / name).name == "phoenix"
    out = ingest(mast, FIX / name)
    assert out["formats"] == {"phoenix": 1}
    check(FIX, name, summarise(db))


@pytest.mark.parametrize("name", FILES)
def test_tools_tokens_and_errors_match_the_export(name, mast, db):
    ingest(mast, FIX / name)
    for spans, steps in zip(_spans(name), steps_of(db)):
        tools = [s for s in sorted(spans, key=lambda s: s["start_time"]) if s["span_kind"] == "TOOL"]
        # every TOOL span is one call paired with one result, in order, and never an agent
        assert tool_names(steps) == [s["attributes"]["tool.name"] for s in tools]
        assert tool_names(steps, "tool_result") == tool_names(steps)
        assert not {s["attributes"]["tool.name"] for s in tools} & {s[0] for s in steps}
        failed = [s["attributes"]["tool.name"] for s in tools if s["status_code"] == "ERROR"]
        assert [s[2] for s in steps if s[1] == "tool_result" and s[3] == "error"] == failed
        llm = [s for s in spans if s["span_kind"] == "LLM"]
        assert sum(s[5] or 0 for s in steps) == sum(s["attributes"].get("llm.token_count.prompt", 0) for s in llm)
        assert sum(s[6] or 0 for s in steps) == sum(s["attributes"].get("llm.token_count.completion", 0) for s in llm)
        assert steps[-1][1] == "termination"


def test_subagent_call_is_a_handoff_to_the_subagent(mast, db):
    ingest(mast, FIX / "pxi_turn_subagent_trace.json")
    [steps] = steps_of(db)
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == [("pxi.turn", "ServerAgent")]
    # the sub-agent's own tools are its steps, the caller's are the caller's
    assert {s[0] for s in steps if s[1] == "tool_call" and s[2] == "load_skill"} == {"ServerAgent"}
    assert {s[0] for s in steps if s[1] == "tool_call" and s[2] == "call_subagent"} == {"pxi.turn"}


def test_task_is_the_turn_input(mast, db):
    ingest(mast, FIX / "pxi_turn_trace.json")
    with Store(db, read_only=True) as st:
        [(task,)] = st.fetchall("SELECT task FROM traces")
    assert task == _spans("pxi_turn_trace.json")[0][0]["attributes"]["input.value"]


def test_jsonl_export_reads_like_the_array(mast, db, tmp_path):
    spans = _spans("pxi_turn_trace.json")[0]
    p = tmp_path / "spans.jsonl"
    p.write_text("".join(json.dumps(s) + "\n" for s in spans))
    assert ingest(mast, p)["formats"] == {"phoenix": 1}
    [a] = summarise(db)
    ingest(mast, FIX / "pxi_turn_trace.json")
    b = [g for g in summarise(db) if g != a] or [a]
    assert a["kinds"] == b[0]["kinds"] and a["tool_pairs"] == b[0]["tool_pairs"]


def test_truncated_export_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "pxi_turn_trace.json", mast, db, tmp_path)


@pytest.mark.parametrize("mutate,must", [
    (lambda s: s.pop("start_time"), "missing required field(s): start_time"),
    (lambda s: s["context"].pop("span_id"), "context.span_id"),
    (lambda s: s.update(span_kind="HOLOGRAM"), "unknown span_kind 'HOLOGRAM' (newer Phoenix version?)"),
    (lambda s: s.update(start_time="yesterday"), "start_time 'yesterday' is not a time"),
    (lambda s: s.update(status_code="MAYBE"), "unknown status_code"),
])
def test_bad_span_is_refused_naming_the_record(mutate, must, mast, db, tmp_path):
    spans = _spans("pxi_turn_trace.json")[0]
    mutate(spans[3])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(spans, indent=1))
    text = refused(mast, db, p, must, fmt="phoenix")
    assert "3" in text
    assert no_traces(db)


def test_otel_sdk_dump_is_not_taken_for_phoenix(tmp_path):
    # the OTel SDK's to_json also has context.trace_id, but a kind and hex ids
    sdk = {"name": "x", "context": {"trace_id": "0x" + "1" * 32, "span_id": "0x" + "2" * 16},
           "kind": "SpanKind.INTERNAL", "parent_id": None, "start_time": "2025-01-01T00:00:00Z",
           "end_time": "2025-01-01T00:00:01Z", "status": {"status_code": "UNSET"}, "attributes": {}}
    p = tmp_path / "sdk.json"
    p.write_text(json.dumps(sdk))
    assert detect(p).name == "otel"


def test_export_whose_first_span_is_longer_than_the_head_is_detected(mast, db, tmp_path):
    spans = _spans("pxi_turn_trace.json")[0]
    spans[0]["attributes"]["input.value"] = "x" * 100_000  # a long prompt on the first span
    p = tmp_path / "long.json"
    p.write_text(json.dumps(spans, indent=1))
    assert detect(p).name == "phoenix"
    assert ingest(mast, p)["formats"] == {"phoenix": 1}


def _steps_alone(mast, db: Path, path: Path) -> list[list[tuple]]:
    """The steps of ``path`` ingested into an empty store (the store is removed after)."""
    assert ingest(mast, path)["formats"] == {"phoenix": 1}
    out = steps_of(db)
    db.unlink()
    return out


@pytest.mark.parametrize("indent", [None, 1])
def test_a_rest_api_page_reads_like_the_array(indent, mast, db, tmp_path):
    # GET /v1/projects/{id}/spans answers {"data": [spans], "next_cursor": ...}; saved as is,
    # on one line or pretty-printed, it was refused ("missing required field(s): name, …")
    spans = _spans("pxi_turn_trace.json")[0]
    p = tmp_path / "page.json"
    p.write_text(json.dumps({"data": spans, "next_cursor": "U3BhbjoxMjM="}, indent=indent))
    want = _steps_alone(mast, db, FIX / "pxi_turn_trace.json")
    assert _steps_alone(mast, db, p) == want


def test_nested_attributes_read_like_the_flat_ones(mast, db, tmp_path):
    # Phoenix's own span JSON keeps attributes nested, as its store holds them; read flat,
    # the task, the tokens and the tool results were lost
    def nest(flat: dict) -> dict:
        out: dict = {}
        for key, value in flat.items():
            *path, last = key.split(".")
            node = out
            for part in path:
                node = node.setdefault(part, {})
            node[last] = value

        def lists(node):  # {"0": …, "1": …} → a list, as Phoenix's unflatten writes it
            if not isinstance(node, dict):
                return node
            node = {k: lists(v) for k, v in node.items()}
            return [node[str(i)] for i in range(len(node))] if node and all(k.isdigit() for k in node) else node
        return lists(out)

    spans = _spans("pxi_turn_trace.json")[0]
    p = tmp_path / "nested.json"
    p.write_text(json.dumps([dict(s, attributes=nest(s["attributes"])) for s in spans]))
    assert any(isinstance(v, list) for s in json.loads(p.read_text()) for v in s["attributes"].get("llm", {}).values())
    want = _steps_alone(mast, db, FIX / "pxi_turn_trace.json")
    assert _steps_alone(mast, db, p) == want


def test_a_decision_span_is_a_current_kind(mast, db, tmp_path):
    # DECISION is one of the span kinds Phoenix's REST API lists; it was refused as "newer"
    spans = _spans("pxi_turn_trace.json")[0]
    spans[0]["span_kind"] = "DECISION"
    p = tmp_path / "decision.json"
    p.write_text(json.dumps(spans))
    assert ingest(mast, p)["formats"] == {"phoenix": 1}

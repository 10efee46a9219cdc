"""Generic message lists: JSON array, JSONL, {"messages": [...]}, OpenAI tool calls linked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_json
from mast.ingest import detect
from mast.ingest.pipeline import ingest_paths
from mast.store import Store

CHAT = [
    {"role": "system", "content": "You are a team of a planner and a coder."},
    {"role": "user", "content": "Compute 6 * 7 with the calculator."},
    {"role": "assistant", "name": "planner", "content": "Coder, please call the calculator."},
    {"role": "assistant", "name": "coder", "content": None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "multiply", "arguments": "{\"a\": 6, \"b\": 7}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "log", "arguments": "{\"msg\": \"multiplying\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
    {"role": "assistant", "agent": "coder", "content": "The answer is 42."},
]


def _store(db: Path, path: Path):
    with Store(db) as st:
        s = ingest_paths(st, [path])
    assert not s.errors, s.errors
    return s


def _steps(db: Path):
    with Store(db, read_only=True) as st:
        return st.query("SELECT * FROM steps ORDER BY trace_id, step").to_dicts()


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("shape", ["array", "messages-object", "jsonl", "jsonl-no-suffix"])
def test_shapes_detected_and_read(tmp_path, db, shape):
    if shape == "array":
        f = write_json(tmp_path / "chat.json", CHAT)
    elif shape == "messages-object":
        f = write_json(tmp_path / "chat.json", {"messages": CHAT, "system": "calc-team", "task": "6*7"})
    elif shape == "jsonl":
        f = _write_jsonl(tmp_path / "chat.jsonl", CHAT)
    else:
        f = _write_jsonl(tmp_path / "chat.log", CHAT)
    assert detect(f).name == "messages"
    s = _store(db, f)
    assert s.traces_new == 1
    steps = _steps(db)
    # One step per message, plus one per tool call beyond the message's own text.
    n_calls = sum(len(m.get("tool_calls", [])) for m in CHAT)
    with_text = sum(1 for m in CHAT if m.get("content") or not m.get("tool_calls"))
    assert len(steps) == with_text + n_calls
    # a system prompt is a system-role step, not an agent called "system"
    assert [s["agent"] for s in steps if s["kind"] == "message"] == [
        None if m["role"] == "system" else m.get("name") or m.get("agent") or m["role"] for m in CHAT
        if m["role"] != "tool" and (m.get("content") or not m.get("tool_calls"))]
    assert [s["role"] for s in steps if s["kind"] == "message"][0] == "system"
    with Store(db, read_only=True) as st:
        system, task = st.fetchall("SELECT system, task FROM traces")[0]
    if shape == "messages-object":
        assert (system, task) == ("calc-team", "6*7")
    else:
        assert task == CHAT[1]["content"]  # the first user message


def test_tool_calls_linked_to_results(tmp_path, db):
    _store(db, write_json(tmp_path / "chat.json", CHAT))
    steps = _steps(db)
    calls = {s["span_id"]: s for s in steps if s["kind"] == "tool_call"}
    results = [s for s in steps if s["kind"] == "tool_result"]
    assert set(calls) == {"call_1", "call_2"}
    assert [(r["parent_span_id"], r["tool_name"], r["content"]) for r in results] == [
        ("call_1", "multiply", "42"), ("call_2", "log", "ok")]
    assert calls["call_1"]["tool_args"] == '{"a": 6, "b": 7}' and calls["call_1"]["agent"] == "coder"
    for r in results:  # every result follows its call
        assert calls[r["parent_span_id"]]["step"] < r["step"] and r["role"] == "tool"
    # an answer came back: "ok", as every other importer stores a tool result that is no error
    assert [r["status"] for r in results] == ["ok", "ok"]


def test_jsonl_of_conversations_is_one_trace_per_line(tmp_path, db):
    rows = [{"messages": CHAT[:3], "system": "a"}, {"messages": CHAT[1:3], "system": "b"}]
    s = _store(db, _write_jsonl(tmp_path / "many.jsonl", rows))
    assert s.traces_new == 2
    with Store(db, read_only=True) as st:
        got = st.fetchall("SELECT system, source_index, n_steps FROM traces ORDER BY source_index")
    assert got == [("a", 0, 3), ("b", 1, 2)]


def test_tool_results_and_system_prompts_are_not_agents(tmp_path, db):
    # OpenAI's tool messages carry the tool's name: it must not become an agent
    chat = [dict(m) for m in CHAT]
    chat[4]["name"] = "multiply"
    chat[5]["name"] = "log"
    _store(db, write_json(tmp_path / "chat.json", chat))
    steps = _steps(db)
    agents = {s["agent"] for s in steps if s["agent"]}
    assert agents == {"user", "planner", "coder"}
    assert [(s["agent"], s["tool_name"]) for s in steps if s["kind"] == "tool_result"] == [
        ("coder", "multiply"), ("coder", "log")]  # the calling agent's results


MAGENTIC = [
    {"role": "human", "content": "Find the opening hours of the museum."},
    {"role": "Orchestrator (thought)", "content": "Initial plan: ask WebSurfer."},
    {"role": "Orchestrator (-> WebSurfer)", "content": "Search for the museum's opening hours."},
    {"role": "WebSurfer", "content": "I typed 'museum opening hours' into the search bar."},
    {"role": "Orchestrator (thought)", "content": "The request is satisfied."},
    {"role": "Orchestrator (termination condition)", "content": "The request has been answered."},
]


def test_magentic_one_roles_in_a_plain_message_list(tmp_path, db):
    _store(db, write_json(tmp_path / "m1.json", MAGENTIC))
    steps = _steps(db)
    assert [s["agent"] for s in steps] == ["user", "Orchestrator", "Orchestrator", "WebSurfer",
                                           "Orchestrator", "Orchestrator"]
    assert [s["target_agent"] for s in steps][2] == "WebSurfer"
    assert [s["kind"] for s in steps][-1] == "termination"
    assert json.loads(steps[1]["attributes"])["note"] == "thought"
    assert steps[0]["role"] == "user" and steps[3]["role"] == "assistant"
    with Store(db, read_only=True) as st:
        [(n_agents, task)] = st.fetchall("SELECT n_agents, task FROM traces")
    assert task == MAGENTIC[0]["content"]
    assert n_agents == 3  # not five pseudo-agents for the orchestrator's annotations

"""autogen-magentic-one's own ``log.jsonl`` (``magentic-one-log``).

Fixtures: tests/fixtures/frameworks/magentic_one/ (generators/gen_magentic_one.py): the
package's ``LedgerOrchestrator``, ``Coder`` and ``Executor`` (as ``ComputerTerminal``) run
offline against scripted models, logged by the package's own ``LogHandler``; ``solved``
ends on the ledger's "Request satisfied." and a final answer, ``maxrounds`` on the
orchestrator's "Max rounds (2) reached.".  ``facts.json`` / ``golden.json`` come from the
event objects the logger received, the runtime's sends and the calls the stand-in served.
On main before this importer the logs were refused ("no importer recognises this file").
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check_framework, ingest, no_traces, refused
from span_export_checks import steps_of
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "magentic_one"
RUNS = ["solved", "maxrounds"]
FACTS = json.loads((FIX / "facts.json").read_text())["runs"]


def _lines(run: str) -> list[dict]:
    return [json.loads(x) for x in (FIX / run / "log.jsonl").read_text().splitlines()]


def _write(tmp_path, lines: list[dict], name: str = "log.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


@pytest.mark.parametrize("run", RUNS)
def test_detected_and_matches_the_run(run, mast, db):
    path = FIX / run / "log.jsonl"
    assert detect(path).name == "magentic-one-log"
    assert ingest(mast, path)["formats"] == {"magentic-one-log": 1}
    # agents, no handoffs or tools, every model call with its tokens, task, outcome and reason
    check_framework(FIX, f"{run}/log.jsonl", db)


@pytest.mark.parametrize("run", RUNS)
def test_steps_follow_the_orchestrator(run, mast, db):
    ingest(mast, FIX / run / "log.jsonl")
    [steps] = steps_of(db)
    facts = FACTS[run]
    # each model call belongs to the agent whose client the stand-in served, in order
    calls = [s for s in steps if s[1] == "llm_call"]
    assert [(s[0], s[5], s[6]) for s in calls] == [
        (c["agent"], c["prompt_tokens"], c["completion_tokens"]) for c in facts["llm_calls"]]
    # "(-> X)": the orchestrator's instruction to X, the agent it then asked for a reply
    assert [s[4] for s in steps if s[4]] == facts["request_reply_to"]
    assert all(s[0] == "Orchestrator" for s in steps if s[4])
    # the orchestrator's own notes never become agents
    agents = {s[0] for s in steps if s[0]}
    assert agents == set(facts["agents"]) and not any("(" in a for a in agents)
    # the run ends on the orchestrator's termination condition: a stop at a limit, or the end
    assert steps[-1][:2] == ("Orchestrator", "termination")
    assert steps[-1][3] == ("stopped" if facts["max_rounds"] == facts["rounds"] else "completed")


def test_task_is_the_users_broadcast_and_notes_are_kept(mast, db):
    ingest(mast, FIX / "solved" / "log.jsonl")
    with Store(db, read_only=True) as st:
        task, final = st.fetchall("SELECT task, metadata->>'final_answer' FROM traces")[0]
        first = st.fetchall("SELECT agent, role, kind, content FROM steps WHERE step = 0")[0]
        notes = st.fetchall("SELECT DISTINCT attributes->>'note' FROM steps WHERE attributes->>'note' IS NOT NULL "
                            "ORDER BY 1")
    assert task == FACTS["solved"]["task"] == first[3]
    assert first[:3] == (None, "user", "message")  # the user is not a team member
    said = [e for e in FACTS["solved"]["events"] if e.get("source") == "Orchestrator (final answer)"]
    assert final == said[0]["message"].strip()
    assert [n for (n,) in notes] == ["final answer", "thought"]


def test_timestamps_are_kept_in_order(mast, db):
    ingest(mast, FIX / "solved" / "log.jsonl")
    with Store(db, read_only=True) as st:
        got = st.fetchall("SELECT started_at FROM steps ORDER BY step")
        window = st.fetchall("SELECT started_at, ended_at FROM traces")[0]
    assert len(got) == len(_lines("solved")) and all(t for (t,) in got)
    assert [t for (t,) in got] == sorted(t for (t,) in got) and window == (got[0][0], got[-1][0])


def test_a_web_surfer_action_is_a_tool_call(mast, db, tmp_path):
    # hand-made, derived: a WebSurferEvent as the package's LogHandler writes one (its
    # dataclass fields beside type and timestamp) after the real lines' task
    lines = _lines("solved")[:1] + [{"timestamp": "2024-11-20T10:02:11.473", "type": "WebSurferEvent",
                                     "source": "WebSurfer", "message": "web_search( {\"query\": \"museum\"} )",
                                     "url": "https://www.bing.com/", "action": "web_search",
                                     "arguments": {"query": "museum"}}]
    ingest(mast, _write(tmp_path, lines))
    [steps] = steps_of(db)
    assert steps[1][:3] == ("WebSurfer", "tool_call", "web_search")


def test_a_newer_event_type_is_kept_as_an_event(mast, db, tmp_path):
    lines = _lines("solved")
    lines.insert(3, {"timestamp": lines[3]["timestamp"], "type": "ToolCallEvent", "source": "Coder",
                     "message": "something new"})
    ingest(mast, _write(tmp_path, lines))
    [steps] = steps_of(db)
    assert len(steps) == len(lines) and steps[3][1] == "event"


def test_a_log_cut_after_a_model_call_gives_it_to_the_last_speaker(mast, db, tmp_path):
    lines = _lines("solved")
    cut = next(i for i, x in enumerate(lines) if x["type"] == "LLMCallEvent" and i > 5)
    ingest(mast, _write(tmp_path, lines[: cut + 1]))
    [steps] = steps_of(db)
    assert steps[-1][1] == "llm_call" and steps[-1][0] == next(s[0] for s in reversed(steps[:-1]) if s[0])


def test_truncated_log_is_refused(mast, db, tmp_path):
    assert_truncated_refused(FIX / "solved" / "log.jsonl", mast, db, tmp_path)


@pytest.mark.parametrize("change, why", [
    (lambda x: x.pop("source"), "missing required field: source"),
    (lambda x: x.pop("message"), "missing required field: message"),
    (lambda x: x.pop("type"), "missing required field: type"),
    (lambda x: x.update(source=["Coder"]), "source is not a string"),
])
def test_an_event_without_its_fields_is_refused(change, why, mast, db, tmp_path):
    lines = _lines("solved")
    bad = next(i for i, x in enumerate(lines) if x["source" if "source" in x else "type"] == "Coder")
    change(lines[bad])
    refused(mast, db, _write(tmp_path, lines), f"line {bad + 1}", why, fmt="magentic-one-log")


def test_a_bad_token_count_is_refused(mast, db, tmp_path):
    lines = _lines("solved")
    i = next(i for i, x in enumerate(lines) if x["type"] == "LLMCallEvent")
    lines[i]["prompt_tokens"] = "many"
    refused(mast, db, _write(tmp_path, lines), f"line {i + 1}", "not a token count")


def test_look_alikes_are_not_taken(tmp_path):
    # AgentChat's event log (JSON logging envelope) and a line without a timestamp
    agentchat = ROOT / "tests" / "fixtures" / "frameworks" / "autogen" / "0.7.5" / "selector" / "events.jsonl"
    assert detect(agentchat).name != "magentic-one-log"
    no_ts = _write(tmp_path, [{k: v for k, v in x.items() if k != "timestamp"} for x in _lines("solved")])
    from mast.ingest.formats.magentic_one import MagenticOneLogImporter
    head = no_ts.read_bytes()
    assert MagenticOneLogImporter().decline(no_ts, head) == (2, "a Magentic-One event without a timestamp")


def test_an_empty_log_is_refused(mast, db, tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text("\n")
    mast("ingest", "--format", "magentic-one-log", p, expect=1)
    assert no_traces(db)


# -- MagenticOneGroupChat (autogen-agentchat 0.7.5): the ordinary AgentChat importers ------------
# tests/fixtures/frameworks/magentic_one/agentchat/ (generators/gen_agentchat_magentic.py):
# one run's TaskResult, run_stream and core event log; facts.json from the TaskResult, the
# runtime's GroupChatRequestPublish messages and the calls the stand-in served.
TEAM = FIX / "agentchat"
TEAM_FACTS = json.loads((TEAM / "facts.json").read_text())


@pytest.mark.parametrize("name, fmt", [("task_result.json", "autogen"), ("run_stream.jsonl", "autogen"),
                                       ("events.jsonl", "autogen-events")])
def test_agentchat_magentic_one_artefacts_are_read(name, fmt, mast, db):
    assert ingest(mast, TEAM / name)["formats"] == {fmt: 1}
    [steps] = steps_of(db)
    with Store(db, read_only=True) as st:
        task, reason = st.fetchall("SELECT task, metadata->>'outcome_reason' FROM traces")[0]
    assert task == TEAM_FACTS["task"]
    msgs = [s for s in steps if s[1] == "message"]
    assert [s[0] for s in msgs] == [m["source"] for m in TEAM_FACTS["task_result_messages"]]
    assert steps[-1][1] == "termination"
    if fmt == "autogen":  # the stop reason is the orchestrator's ledger's reason
        assert reason == TEAM_FACTS["stop_reason"]


def test_agentchat_magentic_one_event_log_names_who_the_orchestrator_asks(mast, db):
    # before: the orchestrator's instruction had no recipient, though the log holds the
    # GroupChatRequestPublish it sent to the speaker its ledger chose
    ingest(mast, TEAM / "events.jsonl")
    [steps] = steps_of(db)
    assert [s[4] for s in steps if s[1] == "message" and s[4]] == TEAM_FACTS["request_reply_to"]
    assert all(s[0] == "MagenticOneOrchestrator" for s in steps if s[1] == "message" and s[4])
    # every model call: the orchestrator's facts, plan, ledgers and final answer, the coder's reply
    assert [(s[0], s[5], s[6]) for s in steps if s[1] == "llm_call"] == [
        (c["agent"], c["prompt_tokens"], c["completion_tokens"]) for c in TEAM_FACTS["llm_calls"]]


def test_agentchat_magentic_one_run_is_one_trace(mast, db):
    out = json.loads(mast("ingest", "--json", *(TEAM / n for n in ("events.jsonl", "run_stream.jsonl",
                                                                   "task_result.json"))).stdout)
    assert out["files"] == 3 and out["traces_new"] == 1

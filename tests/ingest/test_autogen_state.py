"""AutoGen AgentChat ``team.save_state()`` JSON (``autogen-state``).

Fixtures: ``tests/fixtures/frameworks/autogen/0.7.5/<scenario>/save_state.json``, written by
generators/gen_agentchat_state.py after real autogen-agentchat 0.7.5 runs of the three
teams of gen_autogen.py (round-robin with a tool, a Swarm with two handoffs, a selector
whose parallel tool call half fails), with ``save_state.facts.json`` from each run's
``TaskResult``.  On main before this change every save_state file was refused.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check, ingest, refused, summarise
from span_export_checks import steps_of
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "autogen" / "0.7.5"
SCENARIOS = ["roundrobin", "selector", "swarm"]


def _facts(sc):
    return json.loads((FIX / sc / "save_state.facts.json").read_text())


@pytest.mark.parametrize("sc", SCENARIOS)
def test_detected_and_matches_golden(sc, mast, db):
    p = FIX / sc / "save_state.json"
    assert detect(p).name == "autogen-state"
    assert ingest(mast, p)["formats"] == {"autogen-state": 1}
    check(FIX, f"{sc}/save_state.json", summarise(db))


@pytest.mark.parametrize("sc", SCENARIOS)
def test_the_thread_matches_the_task_result(sc, mast, db):
    f = _facts(sc)
    ingest(mast, FIX / sc / "save_state.json")
    [steps] = steps_of(db)
    with Store(db, read_only=True) as st:
        [(task, tin, tout, outcome)] = st.fetchall("SELECT task, tokens_in, tokens_out, outcome FROM traces")
    assert task == f["task"] and outcome == "unknown"  # a saved state keeps no stop reason
    assert [tin, tout] == f["tokens"]
    # the manager speaks only in the selector's SelectSpeakerEvents, which it never threads
    assert {s[0] for s in steps} == {a for a in f["agents"] if not a.endswith("GroupChatManager")}
    assert [[s[0], s[4]] for s in steps if s[1] == "handoff"] == f["handoffs"]
    transfers = {"transfer_to_" + t for _, t in f["handoffs"]}  # a handoff's tool call is the handoff
    assert [(s[0], s[2]) for s in steps if s[1] == "tool_call"] == \
        [tuple(c) for c in f["tool_calls"] if c[1] not in transfers]
    assert [(s[0], s[2], s[3] == "error") for s in steps if s[1] == "tool_result"] == \
        [tuple(r) for r in f["tool_results"] if r[1] not in transfers]


def test_participants_and_manager_are_metadata(mast, db):
    ingest(mast, FIX / "swarm" / "save_state.json")
    state = json.loads((FIX / "swarm" / "save_state.json").read_text())
    with Store(db, read_only=True) as st:
        [(meta,)] = st.fetchall("SELECT metadata FROM traces")
    meta = json.loads(meta)
    assert meta["manager"] == "SwarmGroupChatManager" and meta["current_speaker"] == "refunds"
    assert sorted(meta["participants"]) == sorted(k for k in state["agent_states"] if k != "SwarmGroupChatManager")


def test_several_states_in_one_array(mast, db, tmp_path):
    p = tmp_path / "states.json"
    p.write_text(json.dumps([json.loads((FIX / sc / "save_state.json").read_text()) for sc in SCENARIOS]))
    assert ingest(mast, p)["traces_new"] == 3


def test_truncated_state_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "swarm" / "save_state.json", mast, db, tmp_path)


def _state(tmp_path, name, edit):
    s = json.loads((FIX / "swarm" / "save_state.json").read_text())
    edit(s)
    p = tmp_path / name
    p.write_text(json.dumps(s, indent=2))
    return p


def test_a_thread_message_without_source_names_it(mast, db, tmp_path):
    p = _state(tmp_path, "nosource.json",
               lambda s: s["agent_states"]["SwarmGroupChatManager"]["message_thread"][2].pop("source"))
    refused(mast, db, p, "message_thread[2]", "source")


def test_no_manager_thread(mast, db, tmp_path):
    p = _state(tmp_path, "nomanager.json", lambda s: s["agent_states"].pop("SwarmGroupChatManager"))
    refused(mast, db, p, "message_thread")


def test_newer_state_version(mast, db, tmp_path):
    p = _state(tmp_path, "newer.json", lambda s: s.update(version="2.0.0"))
    refused(mast, db, p, "newer")


def test_lookalike_single_agent_state_is_not_taken(tmp_path):
    # an AssistantAgent's own save_state(): no TeamState, no manager thread
    p = tmp_path / "agent_state.json"
    p.write_text(json.dumps({"type": "AssistantAgentState", "version": "1.0.0",
                             "llm_context": {"messages": [{"content": "hi", "source": "user", "type": "UserMessage"}]}}))
    try:
        name = detect(p).name
    except Exception:
        name = None
    assert name != "autogen-state"

"""OpenAI Agents SDK run states (``to_state().to_json()``) and input lists (``to_input_list()``).

Fixtures (tests/fixtures/frameworks/openai_agents_state/, generators/gen_openai_agents_state.py):
two real runs of openai-agents 0.24 against a scripted model.  A triage agent hands off to
``flights_agent`` (chat completions), whose ``book_flight`` needs approval: the run is saved
paused, approved, resumed and finished; and to ``hotels_agent`` (Responses API), whose
``find_hotel`` raises.  ``facts.json`` is from the SDK's ``RunResult`` objects.  On main before
this change both artefacts were refused (the input list: "missing required field: role").
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_sdk_items, assert_truncated_refused, check, ingest, refused, summarise
from span_export_checks import steps_of
from mast.errors import UnknownFormat
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "openai_agents_state"
STATES = ["flights.interrupted.state.json", "flights.state.json", "hotels.state.json"]
LISTS = ["input_list/flights.input_list.json", "input_list/hotels.input_list.json"]
FACTS = json.loads((FIX / "facts.json").read_text())["artefacts"]
RUNS = {r["tool"]: r["ok"] for r in json.loads((FIX / "facts.json").read_text())["tool_runs"]}


@pytest.mark.parametrize("name", STATES + LISTS)
def test_detected_and_matches_golden(name, mast, db):
    fmt = "openai-agents-state" if name in STATES else "messages"
    assert detect(FIX / name).name == fmt
    assert ingest(mast, FIX / name)["formats"] == {fmt: 1}
    check(FIX, name, summarise(db))


def _facts_items(name):
    return [i for i in FACTS[name]["items"] if i["item"] != "HandoffCallItem"]


@pytest.mark.parametrize("name", STATES)
def test_state_matches_the_run_result(name, mast, db):
    ingest(mast, FIX / name)
    fact = FACTS[name]
    items = _facts_items(name)
    [steps] = steps_of(db)
    with Store(db, read_only=True) as st:
        [(task, tin, tout, framework, outcome)] = st.fetchall(
            "SELECT task, tokens_in, tokens_out, framework, outcome FROM traces")
    assert (task, framework, outcome) == (fact["task"], "openai-agents", "unknown")
    assert (tin, tout) == (fact["tokens_in"], fact["tokens_out"])
    assert sum(1 for s in steps if s[1] == "llm_call") == fact["requests"]
    assert_sdk_items(steps, items)
    answered = [i for i in items if i["item"] == "tool_output"]
    calls = [i["name"] for i in items if i["item"] == "tool_call"][:len(answered)]
    assert [(s[2], s[3]) for s in steps if s[1] == "tool_result"] == \
        [(n, "ok" if RUNS[n] else "error") for n in calls]
    # a run saved paused ends stopped, waiting for the approval it asked for
    assert steps[-1][:2] == (fact["last_agent"], "termination")
    assert steps[-1][3] == ("stopped" if fact["interruptions"] else "completed")
    waiting = [s[2] for s in steps if s[1] == "event"]
    assert waiting == fact["interruptions"]


@pytest.mark.parametrize("order", [STATES[:2], STATES[1::-1]])
def test_a_paused_state_and_the_state_it_resumed_to_are_one_run(order, mast, db):
    for name in order:
        ingest(mast, FIX / name)
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT source_path, system FROM traces")
        sources = st.fetchall("SELECT path, chosen FROM run_sources ORDER BY path")
    # the finished state is the run's trace; the paused one, which alone names the
    # workflow (its trace was still open), gives it its system name
    assert [(p.split("/")[-1], s) for p, s in rows] == [("flights.state.json", "travel-desk")]
    assert [(p.split("/")[-1], c) for p, c in sources] == [("flights.interrupted.state.json", False),
                                                            ("flights.state.json", True)]


def test_two_runs_are_two_traces(mast, db):
    ingest(mast, FIX / "flights.state.json")
    assert ingest(mast, FIX / "hotels.state.json")["traces_new"] == 1


@pytest.mark.parametrize("name", LISTS)
def test_input_list_has_the_handoffs_and_tool_results(name, mast, db):
    ingest(mast, FIX / name)
    of = name.split("/")[1].replace("input_list", "state")
    state, items = FACTS[of], _facts_items(of)
    [steps] = steps_of(db)
    # the items name no agent but the handoff's target: before it the author is "assistant"
    assert [s[4] for s in steps if s[1] == "handoff"] == [i["target"] for i in items if i["item"] == "handoff"]
    assert [(s[0], s[2]) for s in steps if s[1] == "tool_call"] == \
        [(i["agent"], i["name"]) for i in items if i["item"] == "tool_call"]
    assert [(s[2], s[3]) for s in steps if s[1] == "tool_result"] == \
        [(i["name"], "ok" if RUNS[i["name"]] else "error") for i in items if i["item"] == "tool_call"]
    assert steps[-1][:2] == (state["last_agent"], "message")
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT task FROM traces") == [(state["task"],)]


def test_truncated_state_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "flights.state.json", mast, db, tmp_path)


def _state(name="flights.state.json"):
    return json.loads((FIX / name).read_text())


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj, indent=1))
    return p


def test_missing_generated_items_names_the_field(mast, db, tmp_path):
    st = _state()
    del st["generated_items"]
    refused(mast, db, _write(tmp_path, "noitems.state.json", st), "generated_items")


def test_an_item_with_no_type_names_the_item(mast, db, tmp_path):
    st = _state()
    del st["generated_items"][3]["type"]
    refused(mast, db, _write(tmp_path, "notype.state.json", st), "generated_items[3]", "type")


def test_a_newer_snapshot_layout_is_refused_as_newer(mast, db, tmp_path):
    st = _state()
    st["$schemaVersion"] = "2.0"
    refused(mast, db, _write(tmp_path, "newer.state.json", st), "2.0", "newer SDK version")


def test_bad_usage_names_the_response(mast, db, tmp_path):
    st = _state()
    st["model_responses"][1]["usage"]["input_tokens"] = "many"
    refused(mast, db, _write(tmp_path, "badusage.state.json", st), "model_responses[1]", "input_tokens")


def test_an_unknown_item_type_is_kept_as_an_event(mast, db, tmp_path):
    st = _state()
    st["generated_items"].insert(2, {"type": "compaction_item", "raw_item": {"type": "compaction"},
                                     "agent": {"name": "flights_agent"}})
    ingest(mast, _write(tmp_path, "newitem.state.json", st))
    [steps] = steps_of(db)
    assert [s[:2] for s in steps if s[1] == "event"] == [("flights_agent", "event")]


def test_states_one_per_line_are_one_trace_each(mast, db, tmp_path):
    p = tmp_path / "states.jsonl"
    p.write_text("".join(json.dumps(_state(n)) + "\n" for n in ("flights.state.json", "hotels.state.json")))
    assert ingest(mast, p)["traces_new"] == 2


def test_a_look_alike_is_not_a_run_state(tmp_path):
    # a "$schemaVersion" document that is no run state is refused, this importer named as closest
    p = tmp_path / "schema.json"
    p.write_text(json.dumps({"$schemaVersion": "1.0", "title": "x", "properties": {}}))
    with pytest.raises(UnknownFormat) as e:
        detect(p)
    assert "openai-agents-state" in str(e.value) and "current_agent" in str(e.value)


# -- SQLiteSession databases ----------------------------------------------------------------

SESSION = FIX / "session" / "conversations.db"


def test_session_is_one_conversation_with_each_turns_handoff_and_tools(mast, db):
    assert detect(SESSION).name == "openai-agents-session"
    assert ingest(mast, SESSION)["formats"] == {"openai-agents-session": 1}
    check(FIX, "session/conversations.db", summarise(db))
    turns = FACTS["session/conversations.db"]["turns"]
    [steps] = steps_of(db)
    with Store(db, read_only=True) as st:
        [(task, framework, start, end)] = st.fetchall("SELECT task, framework, started_at, ended_at FROM traces")
    assert (task, framework) == (turns[0]["task"], "openai-agents") and start <= end
    assert sum(1 for s in steps if s[1] == "message" and s[0] == "user") == len(turns)
    items = [i for t in turns for i in t["items"] if i["item"] != "HandoffCallItem"]
    assert [s[4] for s in steps if s[1] == "handoff"] == [i["target"] for i in items if i["item"] == "handoff"]
    # each turn starts again at the (unnamed) first agent: no turn's work is its predecessor's agent's
    assert [s[0] for s in steps if s[1] == "handoff"] == ["assistant"] * len(turns)
    assert [(s[0], s[2], s[3]) for s in steps if s[1] == "tool_result"] == \
        [(i["agent"], n, "ok" if RUNS[n] else "error") for i, n in
         ((i, i["name"]) for i in items if i["item"] == "tool_call")]


def _copy_db(tmp_path, name="c.db"):
    import shutil
    p = tmp_path / name
    shutil.copy(SESSION, p)
    return p


def test_session_item_that_is_not_json_names_the_row(mast, db, tmp_path):
    import sqlite3
    p = _copy_db(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute("UPDATE agent_messages SET message_data = '{\"role\": \"user\", \"con' WHERE id = 4")
    refused(mast, db, p, "agent_messages row 4", "not JSON")


def test_session_item_with_no_role_or_known_type_names_the_row(mast, db, tmp_path):
    import sqlite3
    p = _copy_db(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute("UPDATE agent_messages SET message_data = '{\"type\": \"hologram\"}' WHERE id = 6")
    refused(mast, db, p, "agent_messages row 6", "role")


def test_truncated_session_database_is_refused(mast, db, tmp_path):
    p = tmp_path / "cut.db"
    p.write_bytes(SESSION.read_bytes()[:len(SESSION.read_bytes()) // 2])
    res = mast("ingest", p, expect=1)
    assert str(p) in res.stderr


def test_renamed_session_tables_are_found_by_their_columns(mast, db, tmp_path):
    import sqlite3
    p = _copy_db(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute("ALTER TABLE agent_messages RENAME TO chat_items")
    ingest(mast, p)
    [steps] = steps_of(db)
    assert [s[4] for s in steps if s[1] == "handoff"] == ["flights_agent", "hotels_agent"]


def test_two_sessions_are_two_traces(mast, db, tmp_path):
    import sqlite3
    p = _copy_db(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute("INSERT INTO agent_messages (session_id, message_data) SELECT 'other-chat', message_data "
                    "FROM agent_messages WHERE id <= 6 ORDER BY id")
    assert ingest(mast, p)["traces_new"] == 2


def test_a_trajectory_of_responses_items_is_read_as_its_input_list(mast, db, tmp_path):
    # agent benchmarks built on the Responses API write the SDK's input items as "traj"
    items = json.loads((FIX / LISTS[1]).read_text())
    p = tmp_path / "results.json"
    p.write_text(json.dumps([{"task_id": 3, "trial": 0, "reward": 0.0, "info": {}, "traj": items}]))
    assert ingest(mast, p)["formats"] == {"trajectory": 1}
    [steps] = steps_of(db)
    assert [(s[0], s[4]) for s in steps if s[1] == "handoff"] == [("assistant", "hotels_agent")]
    assert [(s[2], s[3]) for s in steps if s[1] == "tool_result"] == [("find_hotel", "error")]
    assert steps[-1][:2] == ("hotels_agent", "termination")

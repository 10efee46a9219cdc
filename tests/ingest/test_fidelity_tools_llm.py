"""Tool errors and LLM calls the framework recorded are what the store says (issue 12, items 3 and 7).

The fixtures come from real runs (tests/fixtures/frameworks/generators/gen_ag2.py scenario
``toolfail``, gen_langchain_fidelity.py); each ``facts.json`` is what the libraries
themselves reported.  Every test ingests through the CLI into a real DuckDB file.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import artefact_keys, check_framework
from mast.store import Store

FW = ROOT / "tests" / "fixtures" / "frameworks"
AG2_FAIL = FW / "ag2" / "toolfail"


def _tool_results(db) -> list[tuple]:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT tool_name, status, content FROM steps WHERE kind = 'tool_result' ORDER BY step")


@pytest.mark.parametrize("name", ["runtime_logging.db", "runtime.log", "chat_result.json",
                                  "groupchat_messages.json", "events.jsonl", "otel.otlp.json"])
def test_ag2_failed_execution_is_an_error_in_every_artefact(name, mast, db):
    mast("ingest", AG2_FAIL / name)
    got = _tool_results(db)
    assert [s for _, s, _ in got] == ["error", "ok"], got
    # the failure's own words where the artefact has them (spans carry only error.type)
    assert "unknown city: Atlantis" in got[0][2] or got[0][2] == "ExecutionError"
    assert "Paris" in got[1][2]


def test_ag2_result_that_only_looks_like_a_failure_stays_ok(mast, db, tmp_path):
    # The runtime log records a function's return only when it returned: a result text
    # starting "Error: " that has its function_calls row is the function's own answer.
    import shutil
    import sqlite3
    p = tmp_path / "runtime_logging.db"
    shutil.copy(AG2_FAIL / "runtime_logging.db", p)
    con = sqlite3.connect(p)
    [(rid, state)] = [r for r in con.execute("SELECT id, json_state FROM events WHERE event_name = "
                                             "'received_message'") if "The weather in Paris" in r[1]][:1]
    con.execute("UPDATE events SET json_state = ? WHERE id = ?",
                [state.replace("The weather in Paris", "Error: The weather in Paris"), rid])
    con.execute("UPDATE function_calls SET returns = replace(returns, 'The weather in Paris', "
                "'Error: The weather in Paris')")
    con.commit()
    con.close()
    mast("ingest", p)
    got = _tool_results(db)
    assert [s for _, s, _ in got] == ["error", "ok"]
    assert got[1][2].startswith("Error: The weather in Paris")


def test_langchain_handled_tool_error_is_an_error_with_the_message_text(mast, db):
    facts = json.loads((FW / "langgraph" / "toolerror" / "facts.json").read_text())
    mast("ingest", FW / "langgraph" / "toolerror" / "openinference.otlp.json")
    got = _tool_results(db)
    want = [(t["name"], "error" if t["status"] == "error" else "ok", t["content"]) for t in facts["tool_results"]]
    assert got == want
    with Store(db, read_only=True) as st:
        task, tin, tout = st.fetchall("SELECT task, tokens_in, tokens_out FROM traces")[0]
    assert task == facts["task"]  # ("user", text) input tuples are messages too
    assert [tin, tout] == facts["tokens"]


@pytest.mark.parametrize("name", ["langsmith_runs.jsonl", "bare_call.jsonl"])
def test_wrap_openai_llm_call_is_a_step_with_its_tokens(name, mast, db):
    facts = json.loads((FW / "langsmith" / "wrap_openai" / "facts.json").read_text())
    mast("ingest", FW / "langsmith" / "wrap_openai" / name)
    with Store(db, read_only=True) as st:
        [(task, tin, tout)] = st.fetchall("SELECT task, tokens_in, tokens_out FROM traces")
        llm = st.fetchall("SELECT agent, content, tokens_in, tokens_out FROM steps WHERE kind = 'llm_call'")
        last = st.fetchall("SELECT kind, content FROM steps ORDER BY step DESC LIMIT 1")[0]
    assert task == facts["task"]
    assert len(llm) == facts["llm_calls"][name]
    u = facts["usage"]
    assert [(c, i, o) for _, c, i, o in llm] == [(facts["answer"], u["prompt_tokens"], u["completion_tokens"])]
    assert [tin, tout] == [u["prompt_tokens"], u["completion_tokens"]]
    assert llm[0][0] is None  # the model is no agent
    assert last == ("termination", facts["answer"])


@pytest.mark.parametrize("rel", artefact_keys(FW / "langsmith"))
def test_langsmith_runs_match_what_the_client_returned(rel, mast, db):
    # golden.json: from the ChatCompletion objects the wrapped client returned in the run
    mast("ingest", FW / "langsmith" / rel)
    check_framework(FW / "langsmith", rel, db)


def test_agentchat_otel_keeps_the_speaker_selection_calls(mast, db):
    # The same scripted team, once logged by the event logger and once traced: the spans
    # must account for every LLM call the event log does, the selector's included.
    sel = FW / "autogen" / "0.7.5" / "selector"
    mast("ingest", sel / "events.jsonl")
    mast("ingest", sel / "otel.otlp.json")
    with Store(db, read_only=True) as st:
        by_format = dict(((f, (i, o)) for f, i, o in st.fetchall(
            "SELECT source_format, tokens_in, tokens_out FROM traces")))
        picks = st.fetchall("SELECT content FROM steps WHERE kind = 'llm_call' AND agent = 'SelectorGroupChatManager' "
                            "AND trace_id IN (SELECT trace_id FROM traces WHERE source_format = 'otel') ORDER BY step")
    assert by_format["otel"] == by_format["autogen-events"]
    assert [c for (c,) in picks] == ["researcher", "writer", "reviewer"]  # whom each selection chose

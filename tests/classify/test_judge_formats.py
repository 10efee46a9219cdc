"""Structured-output negotiation (mast/classify/judge/structured.py) against the loopback
server in the three ways real servers differ: json_schema only (OpenAI, vLLM),
json_object + schema only with llama-cpp-python's 500 for json_schema, and neither."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.judge.structured import Negotiation  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Step, Trace  # noqa: E402
from mast.store import Store  # noqa: E402

MODEL = "local-model"
FAST = dict(base_wait=0.01, max_wait=0.2)
#: server mode -> the mode auto negotiation must end in
ENDS_IN = {"json_schema": "json_schema", "json_object": "json_object", "none": "text"}


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def add_traces(db: Path, first: int, n: int) -> list[str]:
    traces = [Trace("sys", "test", "generic", "mem.json", i,
                    [Step("planner", f"plan {i}"), Step("coder", f"code {i}"), Step("planner", f"plan {i}"),
                     Step("tester", f"result {i} SHOW:3.3")], task=f"task {i}")
              for i in range(first, first + n)]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    return [t.finalise().trace_id for t in traces]


def judge(db, server, ids=None, **kw):
    clf = create("judge", **{"model": MODEL, "base_url": server.base_url, **FAST, **kw})
    with Store(db) as st:
        res = run(st, clf, Selection(trace_ids=tuple(ids) if ids else None))
    return clf, res


def sent_types(server) -> list[str | None]:
    return [(b.get("response_format") or {}).get("type") for b in server.chat_bodies]


def rows(db, sql, params=()):
    with Store(db) as st:
        return st.fetchall(sql, list(params))


@pytest.mark.parametrize("accepts", ["json_schema", "json_object", "none"])
def test_auto_finds_the_mode_each_kind_of_server_takes_and_every_trace_is_labelled(db, server, accepts):
    server.accepts = accepts
    ids = add_traces(db, 0, 3)
    clf, res = judge(db, server, concurrency=1)
    assert res.failed == 0 and res.done == 3, res.failures
    # every trace got all 14 verdicts, and the scripted evidence survived validation
    assert rows(db, "SELECT count(*) FROM annotations") == [(3 * 14,)]
    assert rows(db, "SELECT count(*) FROM annotations WHERE label = 'present' AND mode = '3.3' "
                    "AND evidence_steps = [3]") == [(3,)]
    mode = ENDS_IN[accepts]
    assert res.details["judge"]["response_format"] == mode
    assert any(n.startswith(f"judge: response format {mode}") for n in res.notes), res.notes
    # each refused mode was tried exactly once, then every trace went out in the mode that works
    refused = {"json_schema": [], "json_object": ["json_schema"], "none": ["json_schema", "json_object"]}[accepts]
    expect = {"json_schema": "json_schema", "json_object": "json_object", "text": None}[mode]
    assert sent_types(server) == refused + [expect] * 3
    assert server.format_refusals == len(refused)
    last = server.chat_bodies[-1]
    if mode == "json_object":
        assert last["response_format"]["schema"]["required"] == ["verdicts", "root_cause"]
    if mode == "text":
        assert "Reply with one JSON object only" in last["messages"][-1]["content"]
        assert '"required":["verdicts","root_cause"]' in last["messages"][-1]["content"]
    assert rows(db, "SELECT base_url, model, response_format FROM judge_endpoints") == \
        [(server.base_url, MODEL, mode)]
    assert set(ids) == {t for (t,) in rows(db, "SELECT DISTINCT trace_id FROM annotations")}


@pytest.mark.parametrize("accepts", ["json_object", "none"])
def test_the_mode_is_remembered_so_a_second_run_is_never_refused(db, server, accepts):
    server.accepts = accepts
    add_traces(db, 0, 2)
    judge(db, server, concurrency=1)
    refusals = server.format_refusals
    assert refusals >= 1
    new = add_traces(db, 10, 3)
    before = len(server.chat_bodies)
    clf, res = judge(db, server, ids=new, concurrency=2)
    assert res.done == 3 and res.failed == 0
    assert server.format_refusals == refusals          # not one refused request in the second run
    assert len(server.chat_bodies) == before + 3
    assert "remembered for this endpoint and model" in clf.stats.response_format_how
    # the same server under another spelling of its URL is the same endpoint
    clf, res = judge(db, server, ids=add_traces(db, 20, 1), base_url=server.base_url + "/")
    assert res.done == 1 and server.format_refusals == refusals


def test_concurrent_refusals_step_down_once(db, server):
    server.accepts = "none"
    add_traces(db, 0, 8)
    server.latency = 0.05                   # keep the first requests in flight together
    clf, res = judge(db, server, concurrency=4)
    assert res.done == 8 and res.failed == 0
    # up to 4 requests were refused in json_schema, yet json_object was stepped to once, not 4 times
    assert [m for m, _ in clf.caps.formats.refused] == ["json_schema", "json_object"]
    assert sent_types(server)[-8:] == [None] * 8


def test_cli_response_format_forces_a_mode(db, server, mast):
    add_traces(db, 0, 2)
    res = mast("classify", "--with", "judge", "-m", MODEL, "--base-url", server.base_url,
               "--response-format", "text", "--json")
    summary = json.loads(res.stdout)
    assert summary["done"] == 2 and summary["judge"]["response_format"] == "text"
    assert "forced by --response-format" in res.stderr
    assert sent_types(server) == [None, None]        # the server takes json_schema, but text was asked for
    assert rows(db, "SELECT count(*) FROM judge_endpoints") == [(0,)]   # a forced mode is not the endpoint's
    # json_object is forced as well, where auto would have sent json_schema
    add_traces(db, 5, 1)
    mast("classify", "--with", "judge", "-m", MODEL, "--base-url", server.base_url, "--where", "source_index = 5",
         "--response-format", "json_object")
    assert sent_types(server)[-1] == "json_object"


def test_forced_mode_the_server_refuses_stops_the_run_with_a_clear_error(db, server, mast, monkeypatch):
    server.accepts = "json_object"
    add_traces(db, 0, 6)
    monkeypatch.setenv("MAST_JUDGE_RESPONSE_FORMAT", "json_schema")   # the setting, not the flag
    res = mast("classify", "--with", "judge", "-m", MODEL, "--base-url", server.base_url, "-C", "concurrency=1",
               expect=1)
    assert "refuses response_format json_schema" in res.stderr and "--response-format" in res.stderr
    # stopped at once, not one refusal per trace (the worker may have taken its next queued job)
    assert 1 <= server.format_refusals <= 2
    assert rows(db, "SELECT status FROM runs") == [("failed",)]
    assert rows(db, "SELECT count(*) FROM annotations") == [(0,)]


def test_unknown_response_format_is_a_usage_error(db, server, mast):
    add_traces(db, 0, 1)
    res = mast("classify", "--with", "judge", "-m", MODEL, "--base-url", server.base_url,
               "-C", "response_format=xml", expect=1)
    assert "unknown response format 'xml'" in res.stderr
    assert server.chat_bodies == [] and rows(db, "SELECT count(*) FROM runs") == [(0,)]


def test_cache_keys_on_the_prompt_not_on_the_structured_mode(db, server):
    ids = add_traces(db, 0, 2)
    judge(db, server, response_format="json_object")
    assert len(server.chat_bodies) == 2
    # json_schema sends the same prompt as json_object: served from the cache
    clf, res = judge(db, server, response_format="json_schema")
    assert len(server.chat_bodies) == 2 and clf.stats.cached == 2
    # the text mode asks with another prompt (the schema appended): asked again, and cached apart
    clf, res = judge(db, server, response_format="text")
    assert len(server.chat_bodies) == 4 and clf.stats.cached == 0
    clf, res = judge(db, server, response_format="text")
    assert len(server.chat_bodies) == 4 and clf.stats.cached == 2
    assert rows(db, "SELECT count(DISTINCT key) FROM judge_cache WHERE trace_id IN (SELECT unnest(?))",
                [ids]) == [(4,)]


def test_a_fallback_to_text_mid_run_caches_under_the_text_prompt(db, server):
    server.accepts = "none"
    add_traces(db, 0, 2)
    judge(db, server, concurrency=1)                    # starts in json_schema, ends in text
    n = len(server.chat_bodies)
    clf, res = judge(db, server)                        # remembered text: the keys of what was sent
    assert len(server.chat_bodies) == n and clf.stats.cached == 2


def test_text_mode_estimate_counts_the_schema_in_the_prompt(db, server):
    add_traces(db, 0, 2)
    with Store(db) as st:
        ids = Selection().resolve(st)
        plain = create("judge", model=MODEL, base_url=server.base_url).estimate(st, ids)
        text = create("judge", model=MODEL, base_url=server.base_url, response_format="text").estimate(st, ids)
    assert text.prompt_tokens > plain.prompt_tokens + 2 * 200   # the schema is ~1.4 kB per request
    assert server.chat_bodies == []


def test_negotiation_steps_down_once_per_mode_and_never_after_a_reply():
    n = Negotiation.start("auto")
    assert n.mode == "json_schema"
    assert n.refusal("json_schema", "500: response_format") and n.mode == "json_object"
    assert n.refusal("json_schema", "late refusal of a request in flight") and n.mode == "json_object"
    n.worked("json_object")
    assert not n.refusal("json_object", "500: schema") and n.mode == "json_object"   # it worked: a real error
    t = Negotiation.start("auto", remembered="text")
    assert t.mode == "text" and not t.refusal("text", "schema")                     # nowhere lower to go
    f = Negotiation.start("json_schema", remembered="text")
    assert f.mode == "json_schema" and f.forced and not f.refusal("json_schema", "400")

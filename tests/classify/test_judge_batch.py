"""--batch: the Batch API flow (upload JSONL, create, poll, download, store) and resuming."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.judge.batch import BatchPending  # noqa: E402
from mast.classify.judge.prices import load_table, price_for  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Step, Trace  # noqa: E402
from mast.store import Store  # noqa: E402

MODEL = "gpt-4o-mini"


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def make_store(db, specs):
    traces = [Trace("sys", "test", "generic", "mem.json", i, [Step(a, c) for a, c in spec], task=f"task {i}")
              for i, spec in enumerate(specs)]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    return [t.finalise().trace_id for t in traces]


def batch_run(db, server, **kw):
    clf = create("judge", model=MODEL, base_url=server.base_url, batch=True, poll_interval=0.01, **kw)
    with Store(db) as st:
        return clf, run(st, clf, Selection())


def rows(db, sql, params=()):
    with Store(db) as st:
        return st.fetchall(sql, list(params))


def test_batch_flow_stores_results_failures_and_half_price(db, server):
    ids = make_store(db, [[("a", "x"), ("a", "x")], [("a", "y FAULT:500x1")], [("a", "z FAULT:OFFTAX")]])
    clf, res = batch_run(db, server)
    assert server.chat_bodies == []                      # nothing went through the online endpoint
    assert len(server.batches) == 1
    b = next(iter(server.batches.values()))
    lines = server.files[b["input_file_id"]]["_data"].decode().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["url"] == "/v1/chat/completions"
    assert json.loads(lines[0])["body"]["response_format"]["type"] == "json_schema"
    assert res.done == 1 and res.failed == 2
    assert "status 500" in res.failures[ids[1]] and res.failures[ids[2]].startswith("unclassified")
    assert rows(db, "SELECT mode FROM annotations WHERE label = 'present'") == [("1.3",)]
    assert rows(db, "SELECT status FROM judge_batches") == [("stored",)]
    price = price_for(MODEL, load_table())
    assert res.cost_usd == pytest.approx(price.cost(res.tokens_in, res.tokens_out) / 2)
    assert clf.stats.batch_ids == [b["id"]]
    # rerun: the judged trace is cached; only the two failures are sent, in a new batch
    _, again = batch_run(db, server)
    assert len(server.batches) == 2
    second = list(server.batches.values())[1]
    assert len(server.files[second["input_file_id"]]["_data"].decode().splitlines()) == 2


def test_killed_batch_resumes_by_id_without_paying_twice(db, server):
    make_store(db, [[("a", f"trace {i}")] for i in range(4)])
    server.hold_batches = True
    with pytest.raises(BatchPending, match="batch_0001 is still in_progress"):
        batch_run(db, server, poll_timeout=0.2)
    assert rows(db, "SELECT batch_id, status FROM judge_batches") == [("batch_0001", "in_progress")]
    assert rows(db, "SELECT count(*) FROM annotations") == [(0,)]
    server.hold_batches = False
    clf, res = batch_run(db, server)
    assert len(server.batches) == 1                      # resumed, not created again
    assert len(server.files) == 2                        # the input file and one output file
    assert res.done == 4 and clf.stats.batch_ids == ["batch_0001"]
    assert rows(db, "SELECT count(DISTINCT trace_id) FROM annotations") == [(4,)]
    assert rows(db, "SELECT status FROM judge_batches") == [("stored",)]


def test_named_batch_id_that_is_unknown_is_a_clear_error(db, server):
    from mast.errors import UsageError
    make_store(db, [[("a", "x")]])
    with pytest.raises(UsageError, match="batch_9999 is not recorded"):
        batch_run(db, server, batch_id="batch_9999")


def test_cli_batch(db, server, mast):
    make_store(db, [[("a", "x")], [("b", "y")]])
    out = json.loads(mast("classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url,
                          "-C", "batch=true", "--json").stdout)
    assert out["done"] == 2 and out["judge"]["batch_ids"] == ["batch_0001"]


def test_cli_resumes_a_named_batch(db, server, mast):
    make_store(db, [[("a", "x")], [("b", "y")]])
    server.hold_batches = True
    clf = create("judge", model=MODEL, base_url=server.base_url, batch=True, poll_interval=0.01, poll_timeout=0.1)
    with Store(db) as st, pytest.raises(BatchPending):
        run(st, clf, Selection())
    server.hold_batches = False
    out = json.loads(mast("classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url,
                          "-C", "batch_id=batch_0001", "--json").stdout)
    assert out["done"] == 2 and out["judge"]["batch_ids"] == ["batch_0001"] and len(server.batches) == 1

"""The bookkeeping at the end of an ingest does only what the files can need.

Files the store has never seen have no earlier version to look for: no deletes of their
earlier rows, no search for traces they no longer hold.  A run's facts that hold a hint
only in their token counts take no redaction chain.  A changed file is still replaced and
a secret in the facts still redacted.  Statements are seen through a recording proxy on
the store's own connection (a real DuckDB file).
"""

from __future__ import annotations

import json
import os

import duckdb

from conftest import ROOT, write_json
from mast.classify.hooks import ingest_hooks
from mast.ingest.pipeline import ingest_paths
from mast.redact import REDACTED, sql_redact
from mast.store import Store
from mast.store.sources import _HINTED

FIXTURE = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"


class _Recorder:
    def __init__(self, con):
        self._c, self.sql = con, []

    def execute(self, sql, *a, **k):
        self.sql.append(" ".join(sql.split()))
        return self._c.execute(sql, *a, **k)

    def __getattr__(self, name):
        return getattr(self._c, name)


def _ingest(db, paths) -> tuple[list[str], object]:
    with Store(db) as store:
        rec = store._con = _Recorder(store._con)
        summary = ingest_paths(store, paths, workers=0, hooks=ingest_hooks())
        store._con = rec._c
    return rec.sql, summary


def _chat(text: str, tokens: int = 7) -> dict:
    return {"messages": [{"source": "user", "content": text, "type": "TextMessage", "models_usage": None},
                         {"source": "assistant", "content": f"on it: {text}", "type": "TextMessage",
                          "models_usage": {"prompt_tokens": tokens, "completion_tokens": 3}}],
            "stop_reason": None}


def test_new_files_are_recorded_without_looking_for_earlier_versions(tmp_path, db):
    seed = write_json(tmp_path / "seed" / "a.json", _chat("first task"))
    _ingest(db, [seed])  # the store exists and knows another file
    sql, summary = _ingest(db, [FIXTURE])
    assert summary.traces_new == 1
    assert not [s for s in sql if s.startswith(("DELETE FROM ingested_files", "DELETE FROM run_sources",
                                                 "DELETE FROM ingested_file_traces"))]
    assert not [s for s in sql if "trace_id NOT IN (SELECT trace_id FROM _mast_ft)" in s]
    # its facts count tokens ("tokens" is a hint) and hold no secret: no chain planned for them
    [insert] = [s for s in sql if s.startswith("INSERT INTO run_sources")]
    assert "regexp_replace" not in insert
    with Store(db, read_only=True) as s:
        assert s.fetchall("SELECT count(*) FROM ingested_files")[0][0] == 2
        [(facts,)] = s.fetchall("SELECT facts FROM run_sources WHERE path LIKE '%task_result.json'")
        assert json.loads(facts)["tokens"]
        assert s.fetchall("SELECT count(*) FROM ingested_file_traces")[0][0] == 2


def test_a_changed_file_is_still_replaced(tmp_path, db):
    f = write_json(tmp_path / "run" / "a.json", _chat("first task"))
    _ingest(db, [f])
    write_json(f, _chat("second task"))
    os.utime(f, ns=(1, 1))  # a different mtime whatever the clock says
    sql, summary = _ingest(db, [f])
    assert summary.traces_new == 1 and summary.traces_replaced == 1
    assert [s for s in sql if s.startswith("DELETE FROM ingested_files")]
    with Store(db, read_only=True) as s:
        assert s.fetchall("SELECT count(*) FROM traces")[0][0] == 1
        assert s.fetchall("SELECT count(*) FROM run_sources")[0][0] == 1


def test_a_secret_in_the_facts_is_still_redacted(tmp_path, db):
    secret = "sk-proj-" + "Zq8" * 12
    f = write_json(tmp_path / "run" / "a.json", _chat(f"deploy with key {secret}"))
    sql, _ = _ingest(db, [f])
    [insert] = [s for s in sql if s.startswith("INSERT INTO run_sources")]
    assert "regexp_replace" in insert
    with Store(db, read_only=True) as s:
        [(facts,)] = s.fetchall("SELECT facts FROM run_sources")
    assert secret not in facts and REDACTED in facts


def test_token_counts_alone_are_no_hint_and_the_chain_would_leave_them_as_they_are():
    # the check and the chain, side by side on facts whose only hint is the key "tokens"
    con = duckdb.connect()
    for facts in [{"tokens": [0, 0]}, {"tokens": [123456789012, 98765432109876]}, {"task": "plain", "tokens": [5, 1]},
                  {"outcome": "failure", "outcome_reason": "max turns", "system": "crew", "tokens": [1, 22]},
                  {"task": "use my token abcdefghijklmnopqrstuvwx", "tokens": [5, 1]}]:  # a word, no separator
        text = json.dumps(facts)
        con.execute("CREATE OR REPLACE TEMP TABLE _mast_rs AS SELECT ?::VARCHAR AS facts", [text])
        assert con.execute(_HINTED).fetchall() == [([False],)], text
        assert con.execute(f"SELECT {sql_redact('facts')} FROM _mast_rs").fetchall() == [(text,)], text
    for facts in [{"task": "use my token: abcdefghijklmnopqrstuvwx", "tokens": [5, 1]},
                  {"task": 'a "tokens": [1, 2] b'}, {"tokens": [-1, 2]}]:
        con.execute("CREATE OR REPLACE TEMP TABLE _mast_rs AS SELECT ?::VARCHAR AS facts", [json.dumps(facts)])
        assert con.execute(_HINTED).fetchall() == [([True],)], facts


def test_span_files_whose_runs_have_no_other_artefact_are_not_looked_up_for_pieces(tmp_path, db):
    otel = ROOT / "tests/fixtures/frameworks/otel"
    files = [otel / n for n in ("genai_legacy.otlp.json", "genai_latest.otlp.jsonl")]
    sql, summary = _ingest(db, files)
    assert summary.traces_new >= 2 and not summary.joined.traces
    assert not [s for s in sql if s.startswith("WITH mine AS")]
    # the same spans again under another name: a second artefact of those runs, which is looked up
    copy = tmp_path / "copy" / files[0].name
    copy.parent.mkdir()
    copy.write_bytes(files[0].read_bytes())
    sql, summary = _ingest(db, [copy])
    assert [s for s in sql if s.startswith("WITH mine AS")]
    assert not summary.joined.traces  # copies of one export are left to run identity

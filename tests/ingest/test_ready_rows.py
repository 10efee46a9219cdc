"""Rows made ready in the parser processes: redacted, cast and with the rules' features there,
so the writer only appends them (mast.store.ready).

Whatever process made them, the store must hold the same rows as an ingest with no parser
process, and no secret may leave a parser process unredacted.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import ROOT, write_json  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.ingest import pipeline, writer  # noqa: E402
from mast.ingest.pipeline import ingest_paths  # noqa: E402
from mast.redact import REDACTED  # noqa: E402
from mast.settings import Settings  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.store.ready import ReadyTables  # noqa: E402

# made up, and built from pieces (no file holds a string a secret scanner would flag)
GH = "ghp" + "_" + "Zq8Lw2Rt5Yx7Vb1Nm3Kp6Hs9Df4Gj0Ac2Ee5Ii"
STRIPE = "sk" + "_live_" + "Q7w2E9r4T1y6U3i8O5p0A2s7"
PASS = "Pw" + "x7Kd9Lm2Qp4R"
SECRETS = (GH, STRIPE, PASS)


def _secret_chat(path: Path) -> Path:
    """A message list with a secret in its task, an agent name, content, tool args and metadata."""
    return write_json(path, {
        "system": "crew-a",
        "task": f"deploy with postgres://app:{PASS}@db/prod",
        "messages": [
            {"role": "user", "name": f"planner-{STRIPE}", "content": "start"},
            {"role": "assistant", "name": "coder", "content": f"use the token {GH} and run the tests",
             "tool_calls": [{"id": "call-1", "type": "function",
                             "function": {"name": "deploy", "arguments": json.dumps({"key": STRIPE})}}]},
            {"role": "tool", "tool_call_id": "call-1", "content": "Traceback (most recent call last): boom"},
        ],
    })


def _corpus(root: Path) -> list[Path]:
    """Who&When (attributions), MAST human (annotations), secrets, and repeats of a file."""
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "traces" / "who-and-when", root / "ww", ignore=shutil.ignore_patterns("LICENSE"))
    shutil.copy(ROOT / "traces" / "mast-human" / "MAD_human_labelled_subset.json", root / "mad.json")
    for i in range(3):
        _secret_chat(root / f"secret{i}.json")
    return [root]


def _hooks(db: Path):
    return ingest_hooks(Settings(db=str(db)))


def _ingest(db: Path, paths, workers: int, **kw):
    with Store(db) as st:
        return ingest_paths(st, paths, workers=workers, hooks=_hooks(db), **kw)


def _dump(db: Path) -> dict:
    """Every stored row of the write path's tables, but the write times."""
    with Store(db, read_only=True) as st:
        def rows(sql: str) -> list:
            return sorted(map(repr, st.fetchall(sql)))
        return {
            "traces": rows("SELECT * EXCLUDE (ingested_at) FROM traces"),
            "steps": rows("SELECT * FROM steps"),
            "annotations": rows("SELECT * EXCLUDE (created_at) FROM annotations"),
            "attributions": rows("SELECT * EXCLUDE (created_at) FROM attributions"),
            "features": rows("SELECT * FROM rule_step_features"),
            "feature_versions": rows("SELECT * FROM rule_feature_traces"),
            "files": rows("SELECT path, traces FROM ingested_files"),
            "sources": rows("SELECT * EXCLUDE (created_at) FROM run_sources")
            if "created_at" in {r[0] for r in st.fetchall("DESCRIBE run_sources")}
            else rows("SELECT * FROM run_sources"),
        }


@pytest.fixture
def parsers(monkeypatch):
    """Parser processes on a small corpus (whose batches would otherwise go as Python lists),
    several chunks and groups, and a record of what the writer ran the catalogue on."""
    monkeypatch.setattr(pipeline, "SMALL_JOB_BYTES", 0)
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 4)
    monkeypatch.setattr(writer, "GROUP_BYTES_FIRST", 1)
    redacted: list[str] = []
    real = Store._insert

    def insert(self, table, rows, into, now, **kw):
        redacted.append(table)
        return real(self, table, rows, into, now, **kw)

    monkeypatch.setattr(Store, "_insert", insert)
    return redacted


def test_parser_processes_store_what_the_writer_alone_stores(tmp_path, parsers):
    paths = _corpus(tmp_path / "c")
    ref, db = tmp_path / "ref.duckdb", tmp_path / "db.duckdb"
    a = _ingest(ref, paths, workers=0)
    parsers.clear()
    b = _ingest(db, paths, workers=2)
    assert not a.errors and not b.errors
    assert (a.traces_new, a.traces_present, a.steps) == (b.traces_new, b.traces_present, b.steps)
    assert b.traces_present >= 2  # the repeated secret file's traces are stored once
    assert parsers == []  # the writer ran no redaction: the parsers handed it stored rows
    want, got = _dump(ref), _dump(db)
    assert want["features"] and want["annotations"] and want["attributions"]
    for table in want:
        assert got[table] == want[table], table
    again = _ingest(db, paths, workers=2)
    assert all(f.skipped for f in again.files) and again.traces_new == 0


def test_a_parser_hands_over_no_secret_and_the_store_holds_none(tmp_path, parsers, monkeypatch):
    paths = _corpus(tmp_path / "c")
    handed: list = []
    real = pipeline._take_chunk

    def take(w, chunk, parsed, *a, **k):
        handed.extend(parsed.segments)
        return real(w, chunk, parsed, *a, **k)

    monkeypatch.setattr(pipeline, "_take_chunk", take)
    db = tmp_path / "db.duckdb"
    s = _ingest(db, paths, workers=2)
    assert not s.errors and handed and all(isinstance(t, ReadyTables) for t in handed)
    crossed = repr([(t.traces.to_pylist(), t.steps.to_pylist(), t.annotations.to_pylist(),
                     t.attributions.to_pylist(), {k: v.to_pylist() for k, v in t.derived.items()}, t.runs)
                    for t in handed])
    assert REDACTED in crossed
    for secret in SECRETS:
        assert secret not in crossed
    with Store(db, read_only=True) as st:
        stored = st.fetchall("SELECT (SELECT list(t::VARCHAR) FROM traces t)::VARCHAR, "
                             "(SELECT list(s::VARCHAR) FROM steps s)::VARCHAR, "
                             "(SELECT list(f::VARCHAR) FROM rule_step_features f)::VARCHAR")[0]
        counts = st.fetchall("SELECT sum(t.redactions) FROM traces t WHERE task LIKE 'deploy with%'")[0][0]
        steps = st.fetchall("SELECT agent, content, tool_args FROM steps WHERE trace_id IN "
                            "(SELECT trace_id FROM traces WHERE task LIKE 'deploy with%') ORDER BY step")
    for secret in SECRETS:
        assert all(secret not in t for t in stored)
    assert counts == 1  # one trace (the three files are copies), its task's password
    assert steps[0][0] == f"planner-{REDACTED}"
    assert any(REDACTED in (c or "") for _, c, _ in steps) and any(REDACTED in (a or "") for _, _, a in steps)


class _SeesBatch:
    """A hook without ``rows`` (it stays in the writer): what the batch shows it."""

    tables = ()

    def __init__(self):
        self.seen: list[tuple] = []

    def on_write(self, store, batch) -> None:
        self.seen += store.fetchall(f"SELECT trace_id, step, content, redactions FROM {batch.steps}")

    def __reduce__(self):  # never pickled: it must not reach a parser process
        raise TypeError("not picklable")


def test_a_hook_the_parsers_cannot_run_sees_the_stored_rows_in_the_writer(tmp_path, parsers):
    paths = _corpus(tmp_path / "c")
    db = tmp_path / "db.duckdb"
    hook = _SeesBatch()
    with Store(db) as st:
        s = ingest_paths(st, paths, workers=2, hooks=[*_hooks(db), hook])
    assert not s.errors and parsers == []
    with Store(db, read_only=True) as st:
        stored = st.fetchall("SELECT trace_id, step, content, redactions FROM steps")
        assert st.fetchall("SELECT count(DISTINCT trace_id) FROM rule_step_features")[0][0] == s.traces_new
    assert sorted(map(repr, hook.seen)) == sorted(map(repr, stored))
    assert not any(secret in (c or "") for _, _, c, _ in hook.seen for secret in SECRETS)


def test_a_bad_file_among_ready_rows_fails_alone(tmp_path, parsers):
    paths = _corpus(tmp_path / "c")
    (tmp_path / "c" / "secret1.json").write_text('[{"role": "user", "content": "x"}, {"content": "no role"}]')
    ref, db = tmp_path / "ref.duckdb", tmp_path / "db.duckdb"
    a = _ingest(ref, paths, workers=0, keep_going=True)
    b = _ingest(db, paths, workers=2, keep_going=True)
    assert [str(e.path) for e in b.errors] == [str(e.path) for e in a.errors] == [str(tmp_path / "c" / "secret1.json")]
    assert _dump(db) == _dump(ref)


def test_a_group_that_fails_in_the_writer_is_retried_file_by_file_from_ready_rows(tmp_path, parsers, monkeypatch):
    paths = _corpus(tmp_path / "c")
    from mast.store import ready
    real, calls = ready.append, []

    def append(store, tables, *a, **k):  # the first group's write fails once, as a whole
        calls.append(tables.traces.num_rows)
        if len(calls) == 1 and tables.traces.num_rows > 1:
            raise RuntimeError("the group fails")
        return real(store, tables, *a, **k)

    monkeypatch.setattr(ready, "append", append)
    ref, db = tmp_path / "ref.duckdb", tmp_path / "db.duckdb"
    _ingest(ref, paths, workers=0)
    s = _ingest(db, paths, workers=2)
    assert not s.errors and len(calls) > 2
    assert _dump(db) == _dump(ref)


def test_ready_rows_can_be_turned_off_and_the_writer_redacts_as_before(tmp_path, parsers, monkeypatch):
    paths = _corpus(tmp_path / "c")
    ref, db = tmp_path / "ref.duckdb", tmp_path / "db.duckdb"
    _ingest(ref, paths, workers=2)
    assert parsers == []
    monkeypatch.setattr(pipeline, "READY", False)
    s = _ingest(db, paths, workers=2)
    assert not s.errors and "steps" in parsers  # the writer ran the catalogue itself
    assert _dump(db) == _dump(ref)


class _SeesLimit:
    """A hook without ``rows`` (it runs in the writer): DuckDB's memory limit as each batch is written."""

    tables = ()

    def __init__(self):
        self.limits: list[str] = []

    def on_write(self, store, batch) -> None:
        self.limits.append(store.fetchall("SELECT current_setting('memory_limit')")[0][0])

    def __reduce__(self):  # never pickled: it stays in the writer
        raise TypeError("not picklable")


def _as_duckdb_says(limit: str) -> str:
    with Store(":memory:") as st:
        st.execute(f"SET memory_limit = '{limit}'")
        return st.fetchall("SELECT current_setting('memory_limit')")[0][0]


def test_the_writer_that_only_appends_ready_rows_keeps_a_smaller_pool_unless_told(tmp_path, parsers):
    paths = _corpus(tmp_path / "c")
    hook = _SeesLimit()
    with Store(tmp_path / "db.duckdb") as st:
        s = ingest_paths(st, paths, workers=2, hooks=[*_hooks(tmp_path / "db.duckdb"), hook])
        after = st.fetchall("SELECT current_setting('memory_limit')")[0][0]
    assert not s.errors and parsers == [] and hook.limits
    assert set(hook.limits) == {_as_duckdb_says(pipeline.READY_MEMORY_LIMIT)}
    assert after != _as_duckdb_says(pipeline.READY_MEMORY_LIMIT)  # restored once the ingest ends
    told = _SeesLimit()
    from mast.ingest.faults import IngestLimits
    with Store(tmp_path / "told.duckdb") as st:
        ingest_paths(st, paths, workers=2, hooks=[*_hooks(tmp_path / "told.duckdb"), told],
                     limits=IngestLimits(memory_limit="300MB"))
    assert told.limits and set(told.limits) == {_as_duckdb_says("300MB")}  # a limit the user set is kept
    default = _SeesLimit()
    with Store(tmp_path / "default.duckdb") as st:  # the user's limit is kept even when it equals the default
        ingest_paths(st, paths, workers=2, hooks=[*_hooks(tmp_path / "default.duckdb"), default],
                     limits=IngestLimits.from_settings(Settings(ingest_memory_limit=pipeline.INGEST_MEMORY_LIMIT)))
    assert default.limits and set(default.limits) == {_as_duckdb_says(pipeline.INGEST_MEMORY_LIMIT)}


def test_a_file_streamed_among_ready_rows_is_written_under_the_full_limit(tmp_path, parsers, monkeypatch):
    paths = _corpus(tmp_path / "c")
    big = tmp_path / "c" / "mad.json"
    monkeypatch.setattr(pipeline, "STREAM_BYTES", big.stat().st_size - 1)  # the MAST human file is streamed
    hook = _SeesLimit()
    real, streamed = pipeline.ingest_file, []

    def ingest_file(store, path, *a, **k):
        streamed.append(store.fetchall("SELECT current_setting('memory_limit')")[0][0])
        return real(store, path, *a, **k)

    monkeypatch.setattr(pipeline, "ingest_file", ingest_file)
    with Store(tmp_path / "db.duckdb") as st:
        s = ingest_paths(st, paths, workers=2, hooks=[*_hooks(tmp_path / "db.duckdb"), hook])
    assert not s.errors and len(streamed) == 1
    assert streamed == [_as_duckdb_says(pipeline.INGEST_MEMORY_LIMIT)]
    assert _as_duckdb_says(pipeline.READY_MEMORY_LIMIT) in hook.limits


def test_parser_processes_take_arrow_buffers_from_the_c_allocator():
    from mast.ingest.workers import _pool
    pool = _pool(1, _hooks(Path("unused.duckdb")))
    try:
        # eval pickles by name: the question is asked in the parser process itself
        got = pool.submit(eval, "__import__('pyarrow').default_memory_pool().backend_name").result()
    finally:
        pool.shutdown()
    assert got == "system"

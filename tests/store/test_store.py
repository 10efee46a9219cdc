from __future__ import annotations

import pickle
import subprocess
import sys

import duckdb
import pytest

from mast.errors import IngestError, MastError, StoreError, StoreInUse, StoreMissing, UnknownFormat, UsageError
from mast.model import Annotation, Label, Step, StepKind, Trace
from mast.store import Store, schema


def _trace(n=3, task="do it", path="x.json"):
    return Trace(system="S", framework="f", source_format="messages", source_path=path, source_index=0,
                 task=task, steps=[Step(agent=f"a{i % 2}", content=f"hello {i}", role="assistant",
                                        tokens_in=10, tokens_out=5) for i in range(n)])


def test_migrations_recorded_and_idempotent(db):
    with Store(db) as s:
        first = s.migrations()
    with Store(db) as s:
        assert s.migrations() == first
    assert "m001_core_tables" in first


def test_a_failing_migration_leaves_a_new_store_empty_and_an_old_one_as_it_was(db, monkeypatch):
    def m999_broken(con):
        con.execute("CREATE TABLE half_done (x INTEGER)")
        con.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, ("m999_broken", m999_broken)])
    monkeypatch.setattr("mast.store.store.MIGRATIONS", schema.MIGRATIONS)
    with pytest.raises(StoreError):
        Store(db)
    # all pending migrations run in one transaction: none of them was kept
    con = duckdb.connect(str(db))
    assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == []
    con.close()
    monkeypatch.undo()
    with Store(db) as s:  # the shipped migrations apply cleanly afterwards
        done = s.migrations()
        assert "m999_broken" not in done and "m001_core_tables" in done
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, ("m999_broken", m999_broken)])
    monkeypatch.setattr("mast.store.store.MIGRATIONS", schema.MIGRATIONS)
    with pytest.raises(StoreError):
        Store(db)
    monkeypatch.undo()
    with Store(db) as s:  # an existing store keeps its migrations and gains nothing half-made
        assert s.migrations() == done
        assert s.fetchall("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'") == [(0,)]


def test_write_is_idempotent_by_content_hash(db):
    with Store(db) as s:
        with s.transaction():
            r1 = s.write_traces([_trace()])
        with s.transaction():
            r2 = s.write_traces([_trace(path="elsewhere.json")])
        assert (r1.new, r1.present, r1.steps) == (1, 0, 3)
        assert (r2.new, r2.present) == (0, 1)
        row = s.fetchall("SELECT n_steps, n_agents, tokens_in, tokens_out FROM traces")[0]
        assert row == (3, 2, 30, 15)
        assert s.fetchall("SELECT count(*) FROM steps")[0][0] == 3


def test_trace_id_is_tagged_and_content_sensitive():
    a, b = _trace().finalise(), _trace(task="other").finalise()
    assert a.trace_id.startswith("t1-") and len(a.trace_id) == 3 + 32
    assert a.trace_id != b.trace_id


def test_rollback_leaves_nothing(db):
    with Store(db) as s:
        with pytest.raises(RuntimeError):
            with s.transaction():
                s.write_traces([_trace()])
                raise RuntimeError("boom")
        assert s.fetchall("SELECT count(*) FROM traces")[0][0] == 0
        assert s.fetchall("SELECT count(*) FROM steps")[0][0] == 0


def test_secrets_redacted_before_storage(db):
    t = _trace()
    t.steps[0].content = "use key sk-proj-ABCDEFGHIJKLMNOPQRSTUV123 please"
    t.steps[1].attributes = {"api_key": "hunter2-secret-value", "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz012345"}}
    t.steps[2].tool_args = '{"password": "swordfish123"}'
    t.annotations.append(Annotation(mode="1.1", label=Label.PRESENT, annotator="x",
                                    rationale="saw sk-ant-ABCDEFGHIJKLMNOPQRSTUVWX"))
    with Store(db) as s:
        with s.transaction():
            s.write_traces([t])
        dump = " ".join(str(r) for r in s.fetchall("SELECT content, attributes, tool_args FROM steps"))
        dump += str(s.fetchall("SELECT rationale FROM annotations"))
    for secret in ("ABCDEFGHIJKLMNOPQRSTUV123", "hunter2-secret-value", "abcdefghijklmnopqrstuvwxyz012345",
                   "swordfish123", "sk-ant-ABCDEFGHIJKLMNOPQRSTUVWX"):
        assert secret not in dump
    assert "[REDACTED]" in dump


def test_columns_null_in_a_whole_batch_are_stored_null_and_the_others_still_redacted(db):
    # The store skips the redaction chain of a column that is NULL in every row of a
    # batch: the rows must come out exactly as with the chain (NULL stays NULL, no marker
    # counted), and a secret in a column that is NULL in all but one row is still caught.
    quiet = _trace(task="quiet")
    loud = _trace(task="loud")
    loud.steps[1].tool_args = '{"password": "swordfish123"}'
    loud.steps[2].content = "token ghp_" + "A1b2C3d4" * 5
    with Store(db) as s:
        with s.transaction():
            s.write_traces([quiet])  # tool_args, tool_name, span ids, status: NULL throughout
        with s.transaction():
            s.write_traces([loud])
        rows = s.fetchall("SELECT t.task, st.step, st.tool_args, st.tool_name, st.span_id, st.status, st.content, "
                          "st.redactions FROM steps st JOIN traces t USING (trace_id) ORDER BY t.task, st.step")
        totals = dict(s.fetchall("SELECT task, redactions FROM traces"))
    quiet_rows = [r for r in rows if r[0] == "quiet"]
    assert [r[2:6] for r in quiet_rows] == [(None, None, None, None)] * 3
    assert [r[6] for r in quiet_rows] == ["hello 0", "hello 1", "hello 2"] and {r[7] for r in quiet_rows} == {0}
    loud_rows = {r[1]: r for r in rows if r[0] == "loud"}
    assert "swordfish123" not in loud_rows[1][2] and "[REDACTED]" in loud_rows[1][2] and loud_rows[1][7] == 1
    assert "A1b2C3d4" not in loud_rows[2][6] and loud_rows[2][7] == 1
    assert loud_rows[0][2] is None and loud_rows[0][7] == 0
    assert totals == {"quiet": 0, "loud": 0}  # the trace row's own strings held nothing


def test_read_only_open_of_missing_store_is_clear(tmp_path):
    with pytest.raises(StoreMissing):
        Store(tmp_path / "nope.duckdb", read_only=True)


def test_second_writer_gets_store_in_use(db):
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from mast.store import Store; s=Store(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
         str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUse) as e:
            Store(db)
        assert "in use" in str(e.value)
    finally:
        holder.kill()
        holder.wait()


def test_memory_limit_is_set_for_the_job_and_restored(db):
    with Store(db) as s:
        before = s.fetchall("SELECT current_setting('memory_limit')")[0][0]
        with s.memory_limit("300MB"):
            during = s.fetchall("SELECT current_setting('memory_limit')")[0][0]
        after = s.fetchall("SELECT current_setting('memory_limit')")[0][0]
    assert during.replace(" ", "").upper().startswith(("286", "300"))
    # DuckDB reports the limit rounded ("18.8 GiB"), so the restored value may differ by that rounding
    assert abs(_bytes(after) - _bytes(before)) <= 0.01 * _bytes(before)


def _bytes(setting: str) -> float:
    num, unit = setting.split()
    return float(num) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


@pytest.mark.parametrize("err", [
    MastError("plain"), MastError("with a fix", "do this"), StoreInUse("busy"), StoreMissing("gone", "make one"),
    UsageError("bad option", "try -C x=1"), IngestError("a/b.json", 7, "bad record", "fix the record"),
    UnknownFormat("c.txt", None, "no importer"),
])
def test_errors_pickle_with_message_hint_and_fields(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert (str(back), back.hint, back.args) == (str(err), err.hint, err.args)
    assert back.__dict__ == err.__dict__
    if isinstance(err, IngestError):
        assert (back.path, back.record, back.reason) == (err.path, err.record, err.reason)

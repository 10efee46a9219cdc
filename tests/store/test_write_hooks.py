"""Write hooks: derived rows computed per batch, in the batch's transaction (mast.store.hooks)."""

from __future__ import annotations

import pytest

from mast.errors import StoreError
from mast.model import Step, Trace
from mast.store import Store, WrittenBatch


class CountSteps:
    """A toy hook: one row per new trace with its number of steps."""

    tables = ("derived",)

    def __init__(self):
        self.seen: list[int] = []

    def on_write(self, store, batch: WrittenBatch) -> None:
        self.seen.append(store.fetchall(f"SELECT count(*) FROM {batch.traces}")[0][0])
        store.execute(f"INSERT INTO {batch.into('derived')} SELECT t.trace_id, "
                      f"(SELECT count(*) FROM {batch.steps} s WHERE s.trace_id = t.trace_id) FROM {batch.traces} t")


def _traces(k: int) -> list[Trace]:
    return [Trace(system="S", framework="f", source_format="messages", source_path="x.json", source_index=i,
                  task=f"task {i}", steps=[Step(agent="a", content=f"{i}.{j}") for j in range(i)])
            for i in range(k)]


def _store(db) -> Store:
    st = Store(db)
    st.execute("CREATE TABLE IF NOT EXISTS derived (trace_id VARCHAR, n BIGINT)")
    return st


def derived(st: Store) -> list[tuple]:
    return st.fetchall("SELECT n FROM derived ORDER BY n")


def test_hook_sees_exactly_the_new_rows_in_the_same_transaction(db):
    hook = CountSteps()
    with _store(db) as st:
        with st.transaction():
            st.write_traces(_traces(3), [hook])
        assert derived(st) == [(0,), (1,), (2,)]
        with st.transaction():
            st.write_traces(_traces(4), [hook])  # three already stored: only the new one is shown
        assert hook.seen == [3, 1]
        assert derived(st) == [(0,), (1,), (2,), (3,)]
        with pytest.raises(RuntimeError):
            with st.transaction():
                st.write_traces(_traces(6), [hook])
                raise RuntimeError("the file failed after the batch")
        assert derived(st) == [(0,), (1,), (2,), (3,)]  # rolled back with the steps
        with st.transaction():
            st.write_traces(_traces(5))  # no hooks: nothing derived
        assert len(derived(st)) == 4


def test_staged_hook_rows_are_published_with_the_traces(db):
    hook = CountSteps()
    with _store(db) as st:
        st.begin_staging([hook])
        try:
            with st.transaction():
                st.write_traces(_traces(2), [hook])
            with st.transaction():
                st.write_traces(_traces(3), [hook])
            assert derived(st) == [] and st.fetchall("SELECT count(*) FROM traces") == [(0,)]
            with st.transaction():
                st.publish_staging()
        finally:
            st.end_staging()
        assert derived(st) == [(0,), (1,), (2,)]


def test_hook_table_not_staged_is_an_error(db):
    with _store(db) as st:
        st.begin_staging()  # the hook's table was not announced
        try:
            with pytest.raises(StoreError, match="not staged"):
                with st.transaction():
                    st.write_traces(_traces(2), [CountSteps()])
        finally:
            st.end_staging()
        assert st.fetchall("SELECT count(*) FROM traces") == [(0,)]


class CopySteps:
    """A hook that keeps what it is shown of the steps, with the types it is shown them in."""

    tables = ("shown",)

    def __init__(self):
        self.types: list[list[tuple]] = []

    def on_write(self, store, batch: WrittenBatch) -> None:
        self.types.append(store.fetchall(f"SELECT column_name, column_type FROM (DESCRIBE {batch.steps})"))
        store.execute(f"INSERT INTO {batch.into('shown')} SELECT * FROM {batch.steps}")


@pytest.mark.parametrize("secret", [False, True], ids=["casts-only", "redaction-chain"])
@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "lists"])
def test_hook_sees_the_steps_as_stored_with_or_without_the_chain(db, secret, arrow):
    # Without a hint in any column the steps reach the hooks as a view of their INSERT's
    # body; with one, through the redacted copy: either way the rows and the column types
    # are the stored ones (a secret shown unredacted, or a text timestamp, would differ).
    from mast.store.encode import encode_traces
    from mast.store.rows import encode_rows

    key = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    traces = [Trace(system="S", framework="f", source_format="messages", source_path="x.json", source_index=i,
                    task=f"task {i}", steps=[Step(agent=f"a{j}", content=f"step {j}" + (f" {key}" if secret else ""),
                                                  started_at="2026-01-02T03:04:05.123456+00:00", tokens_in=j,
                                                  attributes={"line": j, "ok": True}) for j in range(3)])
              for i in range(2)]
    hook = CopySteps()
    with Store(db) as st:
        st.execute("CREATE TABLE shown AS SELECT * FROM steps LIMIT 0")
        with st.transaction():
            st.write_tables((encode_traces if arrow else encode_rows)(traces), [hook])
        stored = st.fetchall("SELECT column_name, column_type FROM (DESCRIBE steps)")
        assert hook.types == [stored]
        rows = "SELECT * FROM {} ORDER BY trace_id, step"
        assert st.fetchall(rows.format("shown")) == st.fetchall(rows.format("steps"))
        [(marked, total)] = st.fetchall("SELECT count(*) FILTER (WHERE content LIKE '%[REDACTED]%'), "
                                        "sum(redactions) FROM shown")
        assert (marked, total) == ((6, 6) if secret else (0, 0))
        left = "SELECT count(*) FROM {}() WHERE table_name LIKE '\\_mast\\_%' ESCAPE '\\'"
        # the batch's copy or view is gone after the write
        assert st.fetchall(left.format("duckdb_tables")) == st.fetchall(left.format("duckdb_views")
                                                                       .replace("table_name", "view_name")) == [(0,)]

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

"""The small-job write path (mast/store/rows.py: lists, no pyarrow) stores what the Arrow path stores.

Every fixture file (framework runs, format samples, the sample traces) is ingested into
two real stores, once with every batch as Arrow tables and once as Python lists, with the
rules' feature hook; every table of the two stores must then hold the same rows (write
times aside).  Also the column layout itself, against mast/store/encode.py's schemas.
"""

from __future__ import annotations

import pytest

from conftest import ROOT
from mast.classify.hooks import ingest_hooks
from mast.ingest import pipeline
from mast.model import Step, StepKind, Trace
from mast.store import Store
from mast.store import encode, rows

FIXTURES = [ROOT / "tests/fixtures/frameworks", ROOT / "tests/fixtures/formats", ROOT / "traces"]
# Set when a row is written, not taken from the file.
WRITE_TIMES = {"ingested_at", "created_at", "applied_at"}

_ARROW_TYPES = {"string": "VARCHAR", "large_string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT",
                "double": "DOUBLE", "list<item: int32>": "INTEGER[]"}


@pytest.mark.parametrize("arrow, lists", [
    (encode.TRACE_SCHEMA, rows.TRACE_COLUMNS), (encode.STEP_SCHEMA, rows.STEP_COLUMNS),
    (encode.ANNOTATION_SCHEMA, rows.ANNOTATION_COLUMNS), (encode.ATTRIBUTION_SCHEMA, rows.ATTRIBUTION_COLUMNS)])
def test_the_list_columns_are_the_arrow_columns(arrow, lists):
    assert [(f.name, _ARROW_TYPES[str(f.type)]) for f in arrow] == list(lists)


def _ingest(db, small_job_bytes, monkeypatch):
    monkeypatch.setattr(pipeline, "SMALL_JOB_BYTES", small_job_bytes)
    with Store(db) as store:
        summary = pipeline.ingest_paths(store, FIXTURES, keep_going=True, hooks=ingest_hooks(), workers=0)
    return summary


def _contents(db) -> dict[str, list]:
    out = {}
    with Store(db, read_only=True) as store:
        tables = [r[0] for r in store.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY 1")]
        for t in tables:
            cols = [r[0] for r in store.fetchall(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [t]) if r[0] not in WRITE_TIMES]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = sorted(map(repr, store.fetchall(f'SELECT {sel} FROM "{t}"')))
    return out


def test_every_fixture_is_stored_the_same_either_way(tmp_path, monkeypatch):
    arrow = _ingest(tmp_path / "arrow.duckdb", -1, monkeypatch)
    lists = _ingest(tmp_path / "lists.duckdb", 10**12, monkeypatch)
    assert arrow.traces_new > 100 and arrow.steps > 1000  # the fixtures were read, not refused
    assert [(f.path, f.format, f.traces_new, str(f.error)) for f in lists.files] == \
        [(f.path, f.format, f.traces_new, str(f.error)) for f in arrow.files]
    a, b = _contents(tmp_path / "arrow.duckdb"), _contents(tmp_path / "lists.duckdb")
    assert a.keys() == b.keys()
    for t in a:
        assert a[t] == b[t], t
    assert a["steps"] and a["traces"]


def test_text_that_is_not_unicode_is_refused_as_arrow_refuses_it():
    # the caller scrubs and encodes again on UnicodeEncodeError (mast.ingest.faults.encode_safely)
    t = Trace(system="s", framework="f", source_format="x", source_path="p", source_index=0,
              steps=[Step(agent="a", content="bad \udc80 text", kind=StepKind.MESSAGE)])
    with pytest.raises(UnicodeEncodeError):
        encode.encode_traces([t])
    t.trace_id = None
    with pytest.raises(UnicodeEncodeError):
        rows.encode_rows([t])


def test_split_and_joined_batches_keep_their_rows():
    ts = [Trace(system="s", framework="f", source_format="x", source_path="p", source_index=i,
                steps=[Step(agent="a", content=f"c{i}-{k}", kind=StepKind.MESSAGE) for k in range(i + 1)])
          for i in range(3)]
    whole = rows.encode_rows(ts)
    parts = [whole.select(0, 1), whole.select(1, 2)]
    assert parts[1].steps.column("_seq").to_pylist() == [0, 0, 1, 1, 1]
    joined = rows.RowTables.concat(parts)
    for name in ("traces", "steps", "annotations", "attributions"):
        assert getattr(joined, name).data == getattr(whole, name).data
    arrow = encode.encode_traces(ts)
    assert arrow.select(1, 2).steps.column("_seq").to_pylist() == parts[1].steps.column("_seq").to_pylist()


def test_many_list_rows_go_through_arrow_once_it_is_imported_with_the_same_values(monkeypatch):
    import duckdb
    import pyarrow  # noqa: F401 - what a big job has imported

    n = rows.ARROW_ROWS + 5
    t = rows.Columns.of({"s": ("VARCHAR", [None if i % 7 == 0 else f"é{i}" for i in range(n)]),
                         "i": ("INTEGER", list(range(n))), "b": ("BIGINT", [2**40 + i for i in range(n)]),
                         "d": ("DOUBLE", [i / 3 for i in range(n)]), "f": ("BOOLEAN", [i % 2 == 0 for i in range(n)]),
                         "l": ("INTEGER[]", [[i, i + 1] for i in range(n)])})
    con = duckdb.connect()
    got = {}
    for limit in (10**9, rows.ARROW_ROWS):  # all through unnest, then through Arrow
        monkeypatch.setattr(rows, "ARROW_ROWS", limit)
        rows.attach(con, "_t", t)
        got[limit] = con.execute("SELECT *, typeof(COLUMNS(*)) FROM _t ORDER BY i").fetchall()
        rows.detach(con, "_t", t)
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_t'").fetchall()[0][0]
    a, b = got.values()
    assert a == b and len(a) == n

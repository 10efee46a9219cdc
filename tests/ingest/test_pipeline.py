"""The ingest write path: grouped commits, parser processes, streamed big files.

Every path must store the same thing as a plain file-by-file ingest; the speed itself is
measured by bench/ingest_bench.py, never here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_json
from mast.errors import IngestError
from mast.ingest import _util, pipeline, writer
from mast.ingest.pipeline import ingest_paths
from mast.store import Store


def _conv(i: int, n: int = 4) -> list[dict]:
    return [{"role": "user" if k % 2 == 0 else "assistant", "name": f"agent{k % 3}",
             "content": f"conversation {i} message {k} " + "lorem ipsum " * (k + 1)} for k in range(n)]


def _corpus(root: Path, files: int = 12) -> list[Path]:
    out = []
    for i in range(files):
        if i % 3 == 0:  # JSONL, one conversation per line
            p = root / f"f{i:02d}.jsonl"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("\n".join(json.dumps({"messages": _conv(i * 10 + j)}) for j in range(3)) + "\n")
        else:
            p = write_json(root / f"f{i:02d}.json", _conv(100 + i))
        out.append(p)
    return out


def _dump(db: Path) -> dict:
    with Store(db, read_only=True) as st:
        return {
            "traces": st.fetchall("SELECT trace_id, source_index, n_steps, n_agents FROM traces ORDER BY 1"),
            "steps": st.fetchall("SELECT trace_id, step, agent, content FROM steps ORDER BY 1, 2"),
            "files": st.fetchall("SELECT path, traces FROM ingested_files ORDER BY 1"),
        }


def _ingest(db: Path, paths, **kw):
    with Store(db) as st:
        return ingest_paths(st, paths, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_grouped_and_parallel_ingest_store_what_file_by_file_does(tmp_path, monkeypatch, workers):
    files = _corpus(tmp_path / "c")
    ref = tmp_path / "ref.duckdb"
    with Store(ref) as st:
        for f in files:
            pipeline.ingest_file(st, f)
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 3)  # several chunks and groups
    monkeypatch.setattr(writer, "GROUP_BYTES_FIRST", 1)
    db = tmp_path / "db.duckdb"
    s = _ingest(db, [tmp_path / "c"], workers=workers)
    assert not s.errors and s.traces_new == 4 * 3 + 8 and len(s.files) == 12
    assert [Path(f.path).name for f in s.files] == [f.name for f in files]  # reported in file order
    assert _dump(db) == _dump(ref)
    again = _ingest(db, [tmp_path / "c"], workers=workers)
    assert all(f.skipped for f in again.files) and again.traces_new == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_file_inside_a_chunk_keeps_good_neighbours_and_order(tmp_path, monkeypatch, workers):
    files = _corpus(tmp_path / "c", files=6)
    bad = tmp_path / "c" / "f02.json"
    bad.write_text('[{"role": "user", "content": "x"}, {"content": "no role"}]')
    s = _ingest(tmp_path / "db.duckdb", [tmp_path / "c"], workers=workers, keep_going=True)
    assert [Path(f.path).name for f in s.files] == [f.name for f in files]
    [err] = s.errors
    assert isinstance(err, IngestError) and err.path == str(bad) and "missing required field: role" in str(err)
    stored = {Path(p).name for p, _ in _dump(tmp_path / "db.duckdb")["files"]}
    assert stored == {f.name for f in files} - {"f02.json"}
    # Without keep_going: the files before the bad one are stored, none after it.
    s = _ingest(tmp_path / "db2.duckdb", [tmp_path / "c"], workers=workers)
    assert [Path(f.path).name for f in s.files] == ["f00.jsonl", "f01.json", "f02.json"]
    assert {Path(p).name for p, _ in _dump(tmp_path / "db2.duckdb")["files"]} == {"f00.jsonl", "f01.json"}


def test_big_file_is_streamed_in_batches_in_one_transaction(tmp_path, monkeypatch):
    p = tmp_path / "big.jsonl"
    # conversation 0 again at the end: a repeat of a trace staged by an earlier batch
    p.write_text("\n".join(json.dumps({"messages": _conv(i)}) for i in [*range(50), 0]) + "\n")
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 100)
    monkeypatch.setattr(pipeline, "BATCH_STEPS", 7)
    s = _ingest(tmp_path / "db.duckdb", [p])
    assert (s.traces_new, s.traces_present, s.steps) == (50, 1, 200)
    assert len(_dump(tmp_path / "db.duckdb")["steps"]) == 200
    with Store(tmp_path / "db.duckdb") as st:  # staging tables are private to the connection
        with st.transaction():
            assert st.write_traces([]).new == 0
        assert st.fetchall("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '_mast_stage%'") \
            == [(0,)]
    # A bad last line: nothing of the file is stored, although earlier batches were written.
    q = tmp_path / "big_bad.jsonl"
    q.write_text(p.read_text() + "{not json\n")
    s = _ingest(tmp_path / "db2.duckdb", [q], keep_going=True)
    assert len(s.errors) == 1 and "line 52" in str(s.errors[0])
    assert _dump(tmp_path / "db2.duckdb")["traces"] == []


def test_json_array_is_streamed_record_by_record(tmp_path, monkeypatch):
    monkeypatch.setattr(_util, "STREAM_JSON_BYTES", 10)
    recs = [{"i": i, "text": "é✓" * (i * 50_000)} for i in range(8)] + [3.25, {"last": True}]
    p = tmp_path / "a.json"
    p.write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    assert list(_util.iter_records(p)) == recs
    text = json.dumps(recs)
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index('"i": 5')])
    with pytest.raises(IngestError) as e:
        list(_util.iter_records(cut))
    assert e.value.record == 5 and "truncated" in str(e.value)
    extra = tmp_path / "extra.json"
    extra.write_text(text + " []")
    with pytest.raises(IngestError, match="extra data"):
        list(_util.iter_records(extra))


class _BlockingHook:
    """A write hook that holds the first group's transaction open until the ingest has
    handed a later chunk to the writer, and records whether it did (it waits at most
    ``patience`` s: a guard against a hang, not a timing)."""

    tables = ()

    def __init__(self, handed, patience: float = 30.0):
        self.handed, self.patience, self.overlapped = handed, patience, []

    def on_write(self, store, batch) -> None:
        if not self.overlapped:
            self.overlapped.append(self.handed.wait(self.patience))


def test_a_group_is_written_while_the_next_chunks_are_gathered(tmp_path, monkeypatch):
    import threading

    files = _corpus(tmp_path / "c")
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 3)
    monkeypatch.setattr(writer, "GROUP_BYTES_FIRST", 1)  # the first chunk fills a group
    handed, taken = threading.Event(), []
    real = pipeline._take_chunk

    def take(w, chunk, *a, **k):
        taken.append(chunk)
        if len(taken) >= 2:  # a chunk after the first group's
            handed.set()
        return real(w, chunk, *a, **k)

    monkeypatch.setattr(pipeline, "_take_chunk", take)
    hook = _BlockingHook(handed)
    s = _ingest(tmp_path / "db.duckdb", [tmp_path / "c"], workers=2, hooks=[hook])
    assert hook.overlapped == [True]  # the write of a group did not hold up the next chunks
    assert not s.errors and [Path(f.path).name for f in s.files] == [f.name for f in files]
    with Store(tmp_path / "db.duckdb", read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM ingested_files")[0][0] == len(files)


def test_an_interrupt_while_a_group_is_in_flight_leaves_whole_files_and_a_rerun_completes(tmp_path, monkeypatch):
    files = _corpus(tmp_path / "c")
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 3)
    monkeypatch.setattr(writer, "GROUP_BYTES_FIRST", 1)
    real, calls = pipeline._take_chunk, []

    def take(*a, **k):  # Ctrl-C in the caller's thread, while a group may be in flight
        calls.append(a)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "_take_chunk", take)
    db = tmp_path / "db.duckdb"
    with pytest.raises(KeyboardInterrupt):
        _ingest(db, [tmp_path / "c"], workers=2)
    with Store(db, read_only=True) as st:  # each stored file has all its traces
        done = st.fetchall("SELECT path, traces FROM ingested_files")
        assert 0 < len(done) < len(files)
        for path, n in done:
            assert st.fetchall("SELECT count(*) FROM ingested_file_traces JOIN traces USING (trace_id) "
                               "WHERE path = ?", [path])[0][0] == n
    monkeypatch.setattr(pipeline, "_take_chunk", real)
    s = _ingest(db, [tmp_path / "c"], workers=2)
    assert not s.errors and sum(f.skipped for f in s.files) == len(done)
    ref = tmp_path / "ref.duckdb"
    _ingest(ref, [tmp_path / "c"], workers=0)
    assert _dump(db) == _dump(ref)

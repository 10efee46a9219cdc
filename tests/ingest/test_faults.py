"""Faults a careless user meets: one bad file never loses the good ones, and running out
of disk or memory stops at once naming the input file, with the store left consistent.

Disk full is a real write failure at the OS boundary: the CLI runs in a subprocess whose
RLIMIT_FSIZE makes DuckDB's writes fail with EFBIG ("File too large"), the same path
(a failed write of the WAL or the database file) that ENOSPC takes on a full disk;
``bench/disk_full.py`` shows the ENOSPC form on a real tiny filesystem.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_json
from mast import ingest
from mast.ingest import registry
from mast.ingest.pipeline import ingest_paths
from mast.model import Step, StepKind, Trace
from mast.store import Store


def _chat(i: int, n: int = 2, words: int = 3) -> list[dict]:
    return [{"role": "user" if k % 2 == 0 else "assistant",
             "content": f"conversation {i} message {k} " + "lorem " * words} for k in range(n)]


def _errors(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]


def _flat(text: str) -> str:
    return " ".join(text.split())  # hints are wrapped at the terminal's width


def _paths(db: Path) -> set[str]:
    with Store(db, read_only=True) as st:
        return {Path(p).name for (p,) in st.fetchall("SELECT DISTINCT source_path FROM traces")}


def _whole(db: Path) -> None:
    """Every stored trace has all its steps, and no step is without its trace."""
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces t WHERE n_steps <> "
                           "(SELECT count(*) FROM steps s WHERE s.trace_id = t.trace_id)")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM steps WHERE trace_id NOT IN (SELECT trace_id FROM traces)")[0][0] == 0


# -- file names that are not UTF-8 ----------------------------------------------------------

def test_non_utf8_file_name_is_stored_printable_and_a_rerun_skips_it(tmp_path, mast, db):
    d = tmp_path / "names"
    write_json(d / "a_good.json", _chat(1))
    bad = Path(os.fsdecode(bytes(d) + b"/b_caf\xe9.json"))  # Latin-1 bytes: not a UTF-8 name
    write_json(bad, _chat(2))
    write_json(d / "c_good.json", _chat(3))
    out = json.loads(mast("ingest", d, "--keep-going", "--json").stdout)
    assert out["errors"] == [] and out["traces_new"] == 3
    with Store(db, read_only=True) as st:
        stored = {p for (p,) in st.fetchall("SELECT source_path FROM traces")}
        done = {p for (p,) in st.fetchall("SELECT path FROM ingested_files")}
    assert str(d / "b_caf\\xe9.json") in stored
    assert str(d.resolve() / "b_caf\\xe9.json") in done
    again = json.loads(mast("ingest", d, "--json").stdout)
    assert again["skipped_unchanged"] == 3 and again["traces_new"] == 0


def test_non_utf8_file_name_in_an_error_is_printable(tmp_path, mast, db):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/broken\xff.json"))
    bad.write_bytes(b"")
    res = mast("ingest", bad, "--json", expect=1)
    assert json.loads(res.stdout)["errors"] == [f"{tmp_path}/broken\\xff.json: file is empty"]


def test_text_that_is_not_valid_unicode_is_stored_replaced(tmp_path, mast, db):
    # JSON may spell a lone UTF-16 surrogate (a cut emoji); UTF-8 cannot hold it.
    f = tmp_path / "surrogate.json"
    f.write_text('[{"role": "user", "content": "cut emoji \\ud83d here"}, {"role": "assistant", "content": "ok"}]',
                 encoding="utf-8")
    write_json(tmp_path / "other.json", _chat(4))
    out = json.loads(mast("ingest", tmp_path, "--json").stdout)
    assert out["traces_new"] == 2 and out["errors"] == []
    with Store(db, read_only=True) as st:
        [(content,)] = st.fetchall("SELECT content FROM steps WHERE content LIKE 'cut emoji%'")
    assert content == "cut emoji \ufffd here"


# -- nesting ---------------------------------------------------------------------------------

def _deep(n: int) -> str:
    return "[" * n + "]" * n


def test_message_nested_100000_deep_is_that_files_error(tmp_path, mast, db):
    d = tmp_path / "deep"
    write_json(d / "a_good.json", _chat(1))
    jl = d / "b_deep.jsonl"
    jl.parent.mkdir(parents=True, exist_ok=True)
    jl.write_text(json.dumps({"role": "user", "content": "hi"}) + "\n"
                  + '{"role": "assistant", "content": ' + _deep(100_000) + "}\n", encoding="utf-8")
    arr = d / "c_deep.json"  # detected by its first record; the second one is read by load_json
    arr.write_text('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": '
                   + _deep(100_000) + "}]", encoding="utf-8")
    write_json(d / "d_good.json", _chat(2))
    res = mast("ingest", d, "--keep-going", "--json", expect=1)
    out = json.loads(res.stdout)
    deep = f"JSON nested too deeply (over about {sys.getrecursionlimit() - 100} levels)"
    assert out["errors"] == [f"{jl}, record line 2: {deep}", f"{arr}, record 1: {deep}"]
    assert _paths(db) == {"a_good.json", "d_good.json"}


@pytest.mark.parametrize("depth", [200, 800, 930, 960, 990, 1_200])
def test_any_nesting_depth_is_stored_or_refused_cleanly(tmp_path, mast, db, depth):
    """Near the parser's limit, JSON that parses may still be too deep for what reads it next."""
    f = tmp_path / "deep.jsonl"
    f.write_text(json.dumps({"role": "user", "content": "hi"}) + "\n"
                 + '{"role": "assistant", "content": "x", "extra": ' + _deep(depth) + "}\n", encoding="utf-8")
    res = mast("ingest", f, "--json", expect=None)
    out = json.loads(res.stdout)
    if res.exit_code == 0:
        assert out["traces_new"] == 1
        _whole(db)
    else:
        [e] = out["errors"]
        assert e.startswith(f"{f}") and "deep" in e


# -- an importer that fails in a way it did not foresee -----------------------------------

class _Fragile:
    """A plugin importer (the entry-point kind) with a bug: it fails on a record it does not expect."""

    name = "fragile"
    description = "test plugin: lines of 'agent: text'"
    before = "messages"

    def detect(self, path, head):
        return head.startswith(b"#fragile")

    def read(self, path):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:]):
            agent, text = line.split(": ", 1)  # ValueError on a line without ": "
            yield Trace(system="fragile", framework="test", source_format=self.name, source_path=str(path),
                        source_index=i, steps=[Step(agent=agent, content=text, kind=StepKind.MESSAGE)])


@pytest.fixture
def fragile(monkeypatch):
    ingest.importers()  # built-ins loaded, then a private copy of the registry for this test
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_order", None)
    ingest.register(_Fragile())
    monkeypatch.setenv("MAST_INGEST_WORKERS", "0")  # the plugin lives in this process only


def test_an_unexpected_exception_in_an_importer_is_that_files_error(tmp_path, mast, db, fragile):
    d = tmp_path / "plugin"
    write_json(d / "a_good.json", _chat(1))
    (d / "b_fragile.txt").write_text("#fragile\nplanner: step one\nno separator here\n", encoding="utf-8")
    (d / "c_fragile.txt").write_text("#fragile\nplanner: fine\n", encoding="utf-8")
    write_json(d / "d_good.json", _chat(2))
    res = mast("ingest", d, "--keep-going", expect=1)
    [line] = _errors(res)
    assert line.startswith(f"error: {d / 'b_fragile.txt'}, record trace 1: the fragile importer failed "
                           "unexpectedly: ValueError:")
    assert "Traceback" not in res.stderr and "please report it" in _flat(res.stderr)
    assert _paths(db) == {"a_good.json", "c_fragile.txt", "d_good.json"}
    # Without --keep-going: one message, and what was stored before it stays.
    db.unlink()
    res = mast("ingest", d, expect=1)
    assert len(_errors(res)) == 1 and "stopped after the first error; 2 file(s) not read" in _flat(res.stderr)
    assert _paths(db) == {"a_good.json"}


# -- size limits -----------------------------------------------------------------------------

def _big_line_file(path: Path, mb: float) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"role": "user", "content": "hi"}) + "\n")
        f.write('{"role": "assistant", "content": "')
        chunk = "y" * 1_000_000
        for _ in range(int(mb)):
            f.write(chunk)
        f.write("y" * int((mb % 1) * 1_000_000) + '"}\n')
    return path


def test_a_200_mb_message_is_refused_naming_file_and_line(tmp_path, mast, db):
    d = tmp_path / "huge"
    d.mkdir()
    write_json(d / "a_good.json", _chat(1))
    big = _big_line_file(d / "b_big.jsonl", 200)
    write_json(d / "c_good.json", _chat(2))
    res = mast("ingest", d, "--keep-going", expect=1)
    [line] = _errors(res)
    assert line == f"error: {big}, record line 2: the line is over the size limit (over 64 MB)"
    assert "MAST_INGEST_MAX_RECORD_MB" in res.stderr
    assert _paths(db) == {"a_good.json", "c_good.json"}


def test_the_record_limit_is_a_setting(tmp_path, mast, db, monkeypatch):
    big = _big_line_file(tmp_path / "big.jsonl", 2.5)
    monkeypatch.setenv("MAST_INGEST_MAX_RECORD_MB", "2")
    res = mast("ingest", big, expect=1)
    assert f"{big}, record line 2: the line is over the size limit (over 2 MB)" in res.stderr
    monkeypatch.setenv("MAST_INGEST_MAX_RECORD_MB", "3")
    assert json.loads(mast("ingest", big, "--json").stdout)["traces_new"] == 1
    monkeypatch.setenv("MAST_INGEST_MAX_RECORD_MB", "lots")
    res = mast("ingest", big, expect=1)
    assert "MAST_INGEST_MAX_RECORD_MB='lots' is not a positive number" in res.stderr


def test_a_string_over_the_limit_in_a_streamed_file_names_the_trace(tmp_path, monkeypatch):
    from mast.ingest import pipeline
    from mast.ingest.faults import IngestLimits
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 1_000)
    f = write_json(tmp_path / "chat.json", [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "z" * 3_000}])
    with Store(tmp_path / "db.duckdb") as st:
        s = ingest_paths(st, [f], limits=IngestLimits(max_record=2_000))
    [e] = s.errors
    assert str(e) == f"{f}, record 0: step 1's content is over the size limit (3,000 bytes > 2,000 bytes)"


# -- out of memory ---------------------------------------------------------------------------

def test_out_of_memory_stops_at_once_naming_the_input_file(tmp_path, mast, db, monkeypatch):
    d = tmp_path / "oom"
    write_json(d / "a_good.json", _chat(1))
    big = write_json(d / "b_big.json", [{"role": "user", "content": "q"},
                                         {"role": "assistant", "content": "m" * 12_000_000}])
    write_json(d / "c_good.json", _chat(2))
    monkeypatch.setenv("MAST_INGEST_MEMORY_LIMIT", "8MB")  # storing 12 MB needs more than that
    res = mast("ingest", d, "--keep-going", expect=1)
    [line] = _errors(res)
    assert line.startswith(f"error: {big}: out of memory while reading or storing this file, nothing of it was stored")
    assert "MAST_INGEST_MEMORY_LIMIT" in res.stderr and "split the file" in _flat(res.stderr)
    assert "stopped at once: 1 file(s) not read" in _flat(res.stderr)
    _whole(db)
    assert _paths(db) == {"a_good.json"}
    monkeypatch.setenv("MAST_INGEST_MEMORY_LIMIT", "512MB")
    out = json.loads(mast("ingest", d, "--json").stdout)
    assert out["skipped_unchanged"] == 1 and out["traces_new"] == 2 and out["errors"] == []
    assert _paths(db) == {"a_good.json", "b_big.json", "c_good.json"}


def test_out_of_memory_in_a_streamed_file_rolls_it_back(tmp_path, monkeypatch):
    from mast.errors import OutOfMemory
    from mast.ingest import pipeline
    from mast.ingest.faults import IngestLimits
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 1_000)
    monkeypatch.setattr(pipeline, "BATCH_STEPS", 2)
    f = write_json(tmp_path / "chat.json", [*_chat(1, n=6), {"role": "user", "content": "m" * 12_000_000}])
    g = write_json(tmp_path / "later.json", _chat(2, n=40))
    db = tmp_path / "db.duckdb"
    with Store(db) as st:
        s = ingest_paths(st, [f, g], keep_going=True, limits=IngestLimits(memory_limit="8MB"))
    assert isinstance(s.aborted, OutOfMemory) and str(s.aborted).startswith(f"{f}: out of memory")
    assert [r.path for r in s.files] == [str(f)]
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 0  # earlier batches were staged only


# -- disk full -------------------------------------------------------------------------------

def _corpus(root: Path, files: int = 40) -> Path:
    for i in range(files):
        write_json(root / f"f{i:02d}.json", _chat(i, n=30, words=400))
    return root


def _ingest_limited(db: Path, corpus: Path, fsize: int | None, *args: str) -> subprocess.CompletedProcess:
    def limit():  # in the child: writes past fsize fail with EFBIG instead of killing it (SIGXFSZ)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "mast", "-d", str(db), "ingest", str(corpus), *args],
                          preexec_fn=limit if fsize else None, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MAST_INGEST_WORKERS": "0"})


def test_disk_full_stops_at_once_naming_the_file_and_a_rerun_completes(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    db = tmp_path / "full.duckdb"
    res = _ingest_limited(db, corpus, 2_500_000, "--keep-going")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    [line] = _errors(res)  # one message, not one per file
    assert line.startswith(f"error: {corpus}/f") and "disk full while storing this file" in line, line
    assert "Free space on the disk" in _flat(res.stderr) and "stopped at once" in res.stderr
    named = line.split(": ", 1)[1].split(":", 1)[0]
    _whole(db)
    stored = _paths(db)
    assert 0 < len(stored) < 40 and Path(named).name not in stored
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM ingested_files")[0][0] == len(stored)
    rerun = _ingest_limited(db, corpus, None, "--json")
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    assert out["skipped_unchanged"] == len(stored) and out["traces_new"] == 40 - len(stored)
    _whole(db)
    assert len(_paths(db)) == 40


# -- a rerun after a partial ingest ----------------------------------------------------------

def test_rerun_with_unchanged_files_between_changed_ones(tmp_path, mast, db):
    d = tmp_path / "rerun"
    files = [write_json(d / f"f{i}.json", _chat(i)) for i in range(3)]
    mast("ingest", d)
    for f in (files[0], files[2]):  # touched: read again; the unchanged one between is skipped
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    write_json(d / "f3.json", _chat(3))
    out = json.loads(mast("ingest", d, "--json").stdout)
    assert out["skipped_unchanged"] == 1 and out["traces_present"] == 2 and out["traces_new"] == 1
    _whole(db)


_LIMITED_CHILD = """
import json, resource, sys
from pathlib import Path
from mast.ingest.faults import IngestLimits
from mast.ingest.pipeline import ingest_paths
from mast.store import Store
db, good, big = sys.argv[1:4]
lim = IngestLimits(max_record=1_000_000_000, memory_limit="2GB")
with Store(db) as st:
    first = ingest_paths(st, [good], workers=0, limits=lim)
    # From here on the OS refuses to map more than 100 MB beyond what is in use now.
    vm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 100_000_000, resource.RLIM_INFINITY))
    s = ingest_paths(st, [big, good], keep_going=True, workers=0, limits=lim)
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps({"first": first.traces_new, "errors": [str(e) for e in s.errors],
                  "aborted": type(s.aborted).__name__ if s.aborted else None, "reported": [r.path for r in s.files]}))
"""


def test_memory_refused_by_the_os_is_out_of_memory_naming_the_file(tmp_path):
    """Python's MemoryError (or DuckDB's, whichever asks first) when the OS refuses memory (RLIMIT_AS)."""
    good = write_json(tmp_path / "good.json", _chat(1))
    big = _big_line_file(tmp_path / "big.jsonl", 150)
    db = tmp_path / "db.duckdb"
    res = subprocess.run([sys.executable, "-c", _LIMITED_CHILD, str(db), str(good), str(big)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["first"] == 1 and out["aborted"] == "OutOfMemory"
    [e] = out["errors"]
    assert e.startswith(f"{big}") and "out of memory while reading or storing this file" in e
    assert out["reported"] == [str(big)]  # stopped at once: the good file after it was not read
    _whole(db)
    assert _paths(db) == {"good.json"}


def test_disk_full_while_a_streamed_file_is_published_rolls_it_back(tmp_path, monkeypatch):
    """The big-file path: batches staged, then one transaction that fails to write (EFBIG here)."""
    from mast.errors import DiskFull
    from mast.ingest import pipeline
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 100_000)
    monkeypatch.setattr(pipeline, "BATCH_STEPS", 50)
    small = write_json(tmp_path / "a_small.json", _chat(0))
    rng = random.Random(5)  # text that does not compress away
    big = write_json(tmp_path / "b_big.json", [
        {"role": "user" if k % 2 == 0 else "assistant",
         "content": " ".join(f"{rng.getrandbits(40):x}" for _ in range(300))} for k in range(400)])
    later = write_json(tmp_path / "c_later.json", _chat(99))
    db = tmp_path / "db.duckdb"
    with Store(db) as st:
        st.fetchall("CHECKPOINT")
        size = db.stat().st_size
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        # Room for the small file's commit, not for the big one's (~4 MB of text).
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 500_000, old_limit[1]))
        try:
            s = ingest_paths(st, [small, big, later], keep_going=True, workers=0)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        assert isinstance(s.aborted, DiskFull), [str(e) for e in s.errors]
        assert str(s.aborted).startswith(f"{big}: disk full while storing this file")
        assert [r.path for r in s.files] == [str(small), str(big)]
    _whole(db)
    assert _paths(db) == {"a_small.json"}
    with Store(db) as st:  # a rerun with room continues with the file that failed
        s = ingest_paths(st, [small, big, later], workers=0)
    assert not s.errors and s.files[0].skipped and s.traces_new == 2
    assert _paths(db) == {"a_small.json", "b_big.json", "c_later.json"}

"""`mast ingest` and `mast formats` end without the interpreter's teardown (mast/cli/__init__.py:
QUICK_EXIT), but only after what a normal exit does that matters: every store closed (its
checkpoint written), atexit handlers run, stdout and stderr flushed.  Real processes: the
console entry point in a fresh interpreter, output through pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

FIXTURE = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"

# A module-level object whose finaliser only the interpreter's teardown would run, an atexit
# handler, and a store opened and written but not closed by the code that opened it.
_PROBE = textwrap.dedent("""
    import atexit, sys
    from mast.store import Store
    import mast.cli

    class Teardown:
        def __del__(self):
            sys.stderr.write("teardown ran\\n")

    keep = Teardown()
    atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
    left_open = Store(sys.argv[1])
    left_open.execute("CREATE TABLE probe AS SELECT 42 AS x")
    sys.argv = ["mast", *sys.argv[2:]]
    mast.cli.main()
""")


def _run(db, *args):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-c", _PROBE, str(db), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_ingest_ends_quickly_with_store_closed_handlers_run_and_output_whole(tmp_path):
    db, other = tmp_path / "s.duckdb", tmp_path / "left_open.duckdb"
    run = _run(other, "-d", str(db), "ingest", "--json", str(FIXTURE))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["traces_new"] == 1  # stdout complete through the pipe
    assert "atexit ran" in run.stderr
    assert "teardown ran" not in run.stderr  # the quick path was taken
    # both stores closed: checkpointed (no WAL left behind), and their rows there
    assert not (db.parent / "s.duckdb.wal").exists() and not (tmp_path / "left_open.duckdb.wal").exists()
    from mast.store import Store
    with Store(other, read_only=True) as s:
        assert s.fetchall("SELECT x FROM probe") == [(42,)]
    with Store(db, read_only=True) as s:
        assert s.fetchall("SELECT count(*) FROM traces") == [(1,)]


def test_a_failing_ingest_keeps_its_exit_code_and_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [')
    run = _run(tmp_path / "o.duckdb", "-d", str(tmp_path / "s.duckdb"), "ingest", str(bad))
    assert run.returncode == 1
    assert "bad.json" in run.stderr and "atexit ran" in run.stderr


def test_other_commands_exit_the_usual_way(tmp_path):
    run = _run(tmp_path / "o.duckdb", "taxonomy")
    assert run.returncode == 0, run.stderr
    assert "teardown ran" in run.stderr

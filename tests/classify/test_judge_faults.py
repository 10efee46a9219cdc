"""Judge faults end to end: a real HTTP server on 127.0.0.1 that fails, stalls or asks for
a day's wait; a real store; the CLI in-process and, for Ctrl-C and a killed process, as a
real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer, Response  # noqa: E402
from test_judge import FAST, MODEL, make_store, plain, rows  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.store import Store  # noqa: E402

FASTC = ["-C", "base_wait=0.01", "-C", "max_wait=0.2"]


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def classify(mast, server, *extra, expect=0):
    return mast("classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url, *FASTC, *extra,
                expect=expect)


def wait_until(cond, what: str, limit: float = 60.0) -> None:
    """Poll for a condition a subprocess brings about (a wait, not a timed assertion)."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


# -- nothing classified is an error with its reasons; some is a warning ------------------------
def test_server_that_answers_500_to_everything_fails_the_run_with_reasons(db, server, mast):
    make_store(db, [plain(i) for i in range(3)])
    server.responder = lambda body: Response(500, {"error": {"message": "upstream exploded"}})
    res = classify(mast, server, "-C", "max_retries=1", expect=1)
    err = " ".join(res.stderr.split())
    assert "error: no trace classified" in err
    assert "3 unclassified: 3 call_failed" in err
    assert "500 server error: upstream exploded" in err and "(and 2 more like it)" in err
    assert rows(db, "SELECT count(*) FROM annotations") == [(0,)]
    assert rows(db, "SELECT status, traces_failed FROM runs") == [("finished", 3)]


def test_prose_replies_fail_the_run_and_json_still_goes_to_stdout(db, server, mast):
    make_store(db, [plain(0, "FAULT:OBEY"), plain(1, "FAULT:OBEY")])
    res = classify(mast, server, "--json", expect=1)
    summary = json.loads(res.stdout)
    assert summary["done"] == 0 and summary["failure_kinds"] == {"unclassified": 2}
    assert "2 unclassified: 2 unclassified" in res.stderr and "not valid JSON" in res.stderr


def test_partial_failure_exits_0_with_a_warning_and_the_count(db, server, mast):
    make_store(db, [plain(0, "FAULT:MISSING"), plain(1), plain(2)])
    res = classify(mast, server)
    err = " ".join(res.stderr.split())
    assert "warning: 1 of 3 trace(s) unclassified" in err
    assert "1 unclassified: 1 unclassified" in err and "lacks verdicts for modes 3.3" in err


def test_analyze_reports_why_the_judge_stage_failed(db, server, mast, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"system": "toy", "task": "t", "messages": [
        {"role": "user", "name": "planner", "content": "plan"},
        {"role": "assistant", "name": "coder", "content": "done"}]}))
    server.responder = lambda body: Response(500, {"error": {"message": "upstream exploded"}})
    res = mast("analyze", folder, "-o", tmp_path / "r.html", "--model", MODEL, "--base-url", server.base_url,
               "--json", expect=1)
    stage = next(s for s in json.loads(res.stdout)["stages"] if s["stage"] == "classify judge")
    assert not stage["ok"]
    assert "1 unclassified: 1 call_failed" in stage["result"] and "upstream exploded" in stage["result"]


def test_endpoint_that_fails_every_call_stops_the_run_early(db, server):
    make_store(db, [plain(i) for i in range(12)])
    server.responder = lambda body: Response(500, {"error": {"message": "down"}})
    clf = create("judge", model=MODEL, base_url=server.base_url, concurrency=2, max_retries=0,
                 stop_after_failures=3, **FAST)
    with Store(db) as st:
        res = run(st, clf, Selection())
    assert res.failed == 3 and res.done == 0    # no second wave once the first calls failed
    assert res.failed + clf.stats.skipped_failing == 12 and len(server.chat_bodies) == res.failed
    assert any("the first 3 trace(s) all failed their calls" in n for n in res.notes)


def test_failures_after_a_success_do_not_stop_the_run(db, server):
    ids = make_store(db, [plain(i, "" if i == 0 else "FAULT:500x99") for i in range(6)])
    clf = create("judge", model=MODEL, base_url=server.base_url, concurrency=1, max_retries=0,
                 stop_after_failures=2, **FAST)
    with Store(db) as st:
        res = run(st, clf, Selection(), trace_ids=ids)   # the good trace first
    assert res.done == 1 and res.failed == 5 and not clf.stats.failing_stopped


# -- waits and deadlines -------------------------------------------------------------------------
def test_retry_after_beyond_the_cap_fails_the_trace_instead_of_waiting(db, server):
    ids = make_store(db, [plain(0, "FAULT:429x99"), plain(1)])
    server.retry_after = "86400"
    clf = create("judge", model=MODEL, base_url=server.base_url, **FAST)
    with Store(db) as st:
        res = run(st, clf, Selection())
    assert res.done == 1 and res.failed == 1
    assert "rate limited: retry after 86400 s exceeds cap of 0.2 s" in res.failures[ids[0]]
    asked = sum("FAULT:429x99" in b["messages"][1]["content"] for b in server.chat_bodies)
    assert asked == 1   # no retry: the wait it asked for is beyond the cap


def test_trace_deadline_ends_a_request_that_is_never_answered(db, server):
    ids = make_store(db, [plain(0, "FAULT:HANG"), plain(1)])
    clf = create("judge", model=MODEL, base_url=server.base_url, timeout=600, trace_deadline=0.5, **FAST)
    with Store(db) as st:
        res = run(st, clf, Selection())
    assert res.done == 1 and res.failed == 1
    assert "trace deadline of 0.5 s reached" in res.failures[ids[0]]
    (kind, why), = rows(db, "SELECT kind, reason FROM judge_failures")
    assert kind == "call_failed" and "trace deadline of 0.5 s" in why


def test_run_deadline_stops_starting_traces_and_says_so(db, server, mast):
    make_store(db, [plain(i, "FAULT:HANG") for i in range(4)])
    res = classify(mast, server, "-C", "concurrency=1", "-C", "run_deadline=0.5", "-C", "trace_deadline=0",
                   "-C", "timeout=600", "--json", expect=1)
    summary = json.loads(res.stdout)
    assert summary["done"] == 0 and summary["failed"] == 1
    assert summary["judge"]["skipped_deadline"] == 3 and summary["judge"]["deadline_stopped"]
    assert "run deadline of 0.5 s reached" in next(iter(summary["failures"].values()))
    assert "run deadline of 0.5 s reached: 3 trace(s) not started" in " ".join(res.stderr.split())
    assert len(server.chat_bodies) == 1


def test_progress_is_printed_while_waiting(db, server, mast):
    make_store(db, [plain(0, "FAULT:HANG"), plain(1, "FAULT:500x1")])
    res = classify(mast, server, "-C", "progress_every=0.1", "-C", "trace_deadline=1.5", "-C", "timeout=600")
    err = " ".join(res.stderr.split())
    assert "judge: 1 done, 0 failed, waiting for 1 trace(s) in flight (0 queued)" in err
    assert "last retry after: 500 server error: scripted 500" in err


@pytest.mark.parametrize("bad", ["trace_deadline=-1", "grace=-2"])
def test_negative_deadline_is_a_usage_error(db, server, mast, bad):
    make_store(db, [plain(0)])
    res = classify(mast, server, "-C", bad, expect=1)
    assert "must be 0 or more seconds" in res.stderr
    assert server.chat_bodies == [] and rows(db, "SELECT count(*) FROM runs") == [(0,)]


# -- runs left "running" -------------------------------------------------------------------------
def cli(db: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mast", "-d", str(db), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_run_of_a_killed_process_is_marked_interrupted_on_next_open(db, server):
    make_store(db, [plain(0, "FAULT:HANG")])
    proc = cli(db, "classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url,
               "-C", "timeout=600", "-C", "trace_deadline=0")
    try:
        wait_until(lambda: server.active >= 1 or proc.poll() is not None, "the request to arrive")
        assert proc.poll() is None, proc.communicate()
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(db, read_only=True) as st:   # a read-only open changes nothing
        assert st.fetchall("SELECT status FROM runs") == [("running",)]
    with Store(db) as st:
        assert st.fetchall("SELECT status, pid FROM runs") == [("interrupted", proc.pid)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times are read from /proc")
def test_run_of_a_live_process_is_left_running_and_a_reused_pid_is_not_trusted(db):
    make_store(db, [plain(0)])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        wait_until(lambda: Path(f"/proc/{live.pid}/stat").exists(), "the child to start")
        from mast.store.process import _start_token, current   # here: the module is what is tested
        pid, host, _ = current()
        token = _start_token(live.pid)
        with Store(db) as st:
            for run_id, p, tok in [("live", live.pid, token), ("reused", live.pid, "other-boot:1"),
                                   ("self", pid, current()[2]), ("elsewhere", 1, None)]:
                st.execute("INSERT INTO runs (run_id, classifier, version, started_at, status, pid, host, "
                           "process_started) VALUES (?, 'judge', '1', now(), 'running', ?, ?, ?)",
                           [run_id, p, "another-host" if run_id == "elsewhere" else host, tok])
        with Store(db) as st:
            status = dict(st.fetchall("SELECT run_id, status FROM runs"))
        assert status == {"live": "running", "reused": "interrupted", "self": "running", "elsewhere": "running"}
    finally:
        live.kill()
        live.wait()
    with Store(db) as st:
        assert dict(st.fetchall("SELECT run_id, status FROM runs"))["live"] == "interrupted"


# -- Ctrl-C --------------------------------------------------------------------------------------
def test_ctrl_c_keeps_the_replies_in_flight_and_exits_130_quietly(db, server):
    ids = make_store(db, [plain(i) for i in range(6)])
    server.latency = 2.0
    proc = cli(db, "classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url,
               "-C", "concurrency=2", "-C", "grace=60")
    try:
        # active counts a request before its body is recorded: wait for both
        wait_until(lambda: (server.active >= 2 and len(server.chat_bodies) >= 2) or proc.poll() is not None,
                   "two requests in flight")
        assert proc.poll() is None, proc.communicate()
        sent = len(server.chat_bodies)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Task was destroyed" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert "interrupted: 2 trace(s) classified and stored" in " ".join(err.split())
    assert sent == 2 and len(server.chat_bodies) == 2      # nothing was sent after Ctrl-C
    asked = {t for t in ids for b in server.chat_bodies
             if f"plan number {ids.index(t)}\n" in b["messages"][1]["content"]}
    stored = {t for (t,) in rows(db, "SELECT DISTINCT trace_id FROM annotations")}
    assert stored == asked and len(stored) == 2             # the replies paid for are kept ...
    assert {t for (t,) in rows(db, "SELECT trace_id FROM judge_cache")} == asked   # ... and cached
    assert rows(db, "SELECT status, traces_done FROM runs") == [("interrupted", 2)]


def test_second_ctrl_c_stops_at_once_without_warnings(db, server):
    make_store(db, [plain(0, "FAULT:HANG"), plain(1, "FAULT:HANG")])
    proc = cli(db, "classify", "--with", "judge", "--model", MODEL, "--base-url", server.base_url,
               "-C", "concurrency=2", "-C", "grace=600", "-C", "timeout=600", "-C", "trace_deadline=0")
    try:
        wait_until(lambda: server.active >= 2 or proc.poll() is not None, "two requests in flight")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "interrupted: no new requests" in _peek(proc) or proc.poll() is not None,
                   "the first Ctrl-C to be noticed", limit=60)
        proc.send_signal(signal.SIGINT)
        os.set_blocking(proc.stderr.fileno(), True)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = _peeked.get(proc.pid, "") + (rest or "")
    assert proc.returncode == 130, err
    assert "Task was destroyed" not in err and "Traceback" not in err
    assert rows(db, "SELECT count(*) FROM annotations") == [(0,)]
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]


def test_ctrl_c_during_analyze_exits_130_and_marks_the_judge_run_interrupted(db, server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.json").write_text(json.dumps({"system": "toy", "task": f"t{i}", "messages": [
            {"role": "user", "name": "planner", "content": f"plan {i}"},
            {"role": "assistant", "name": "coder", "content": "done"}]}))
    server.latency = 2.0
    proc = cli(db, "analyze", str(folder), "-o", str(tmp_path / "r.html"), "--model", MODEL,
               "--base-url", server.base_url)
    try:
        wait_until(lambda: server.active >= 1 or proc.poll() is not None, "the judge's first request")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err and "Task was destroyed" not in err
    assert "rerun the same command to go on" in " ".join(err.split())
    assert rows(db, "SELECT classifier, status FROM runs WHERE classifier = 'judge'") == [("judge", "interrupted")]
    assert rows(db, "SELECT count(*) FROM traces") == [(3,)]    # the ingested files stay


_peeked: dict[int, str] = {}


def _peek(proc: subprocess.Popen) -> str:
    """What the child has written to stderr so far (non-blocking)."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        chunk = os.read(fd, 65536).decode("utf-8", "replace")
    except BlockingIOError:
        chunk = ""
    _peeked[proc.pid] = _peeked.get(proc.pid, "") + chunk
    return _peeked[proc.pid]

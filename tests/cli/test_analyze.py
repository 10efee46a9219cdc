"""`mast analyze`: ingest + classify + report in one command, on real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mast.store import Store
from tests.conftest import ROOT, write_json


def convo(task: str, repeat: bool = False) -> dict:
    msgs = [{"role": "user", "name": "planner", "content": task},
            {"role": "assistant", "name": "coder", "content": "def add(a, b): return a + b"},
            {"role": "assistant", "name": "tester", "content": "Traceback (most recent call last): AssertionError"},
            {"role": "assistant", "name": "coder", "content": "The task is complete. TERMINATE"}]
    if repeat:
        msgs[2:2] = [{"role": "assistant", "name": "coder", "content": "def add(a, b): return a + b"}] * 3
    return {"system": "toy", "task": task, "messages": msgs}


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "in"
    write_json(d / "a.json", convo("Write add(a, b) and test it.", repeat=True))
    write_json(d / "b.json", convo("Write sub(a, b) and test it."))
    return d


def test_analyze_writes_the_report_and_summarises(mast, folder, tmp_path, db):
    out = tmp_path / "rep" / "index.html"
    res = mast("analyze", folder, "-o", out)
    assert res.stdout.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert "<section id=\"exposure\">" in html and "toy" in html
    for stage in ("ingest", "classify rules", "classify learned", "classify judge", "report"):
        assert stage in res.stderr
    assert "skipped: no model configured" in res.stderr
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM traces")[0][0] == 2
        assert st.fetchall("SELECT count(*) FROM runs WHERE classifier = 'rules'")[0][0] == 1
    # a rerun: nothing new to ingest, rules replace their rows, same report numbers
    before = st_counts(db)
    res = mast("analyze", folder, "-o", out, "--json")
    summary = json.loads(res.stdout)
    assert [s["stage"] for s in summary["stages"]] == ["ingest", "classify rules", "classify learned", "classify judge", "report"]
    assert "0 new trace(s), 2 already stored" in summary["stages"][0]["result"] or \
        "0 new trace(s)" in summary["stages"][0]["result"]
    assert st_counts(db) == before


def st_counts(db):
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT annotator, label, count(*) FROM annotations GROUP BY ALL ORDER BY ALL")


def test_bad_file_stops_unless_keep_going(mast, folder, tmp_path):
    (folder / "bad.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "index.html"
    res = mast("analyze", folder, "-o", out, expect=1)
    assert not out.exists() and "bad.json" in res.stderr and "--keep-going" in res.stderr
    res = mast("analyze", folder, "-o", out, "--keep-going", expect=1)
    assert out.exists() and "toy" in out.read_text(encoding="utf-8")
    assert res.stdout.strip() == str(out)


def test_missing_path_is_a_clear_error(mast, tmp_path, db, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short path: the error panel is narrow
    res = mast("analyze", "nope", expect=1)
    assert "no such file or folder" in res.stderr and not Path(db).exists()


def test_judge_runs_when_a_model_and_endpoint_are_configured(mast, folder, tmp_path, monkeypatch):
    from tests._openai_server import OpenAIServer
    server = OpenAIServer().start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        out = tmp_path / "index.html"
        res = mast("analyze", folder, "-o", out, "--model", "gpt-4o-mini", "--base-url", server.base_url, "--json")
    finally:
        server.stop()
    stages = {s["stage"]: s for s in json.loads(res.stdout)["stages"]}
    assert stages["classify judge"]["ok"] and re.match(r"2 trace\(s\) classified, 0 failed", stages["classify judge"]["result"])
    html = out.read_text(encoding="utf-8")
    assert "judge:gpt-4o-mini" in html


def test_quickstart_on_the_sample_traces(tmp_path, monkeypatch):
    """The README's main job: `python3 dev.py analyze` runs mast.quickstart from the repo root."""
    if not (ROOT / "traces").is_dir():
        pytest.skip("no traces/ folder")
    from mast import quickstart
    monkeypatch.chdir(tmp_path)
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    assert quickstart.main([]) == 0
    html = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Trace explorer" in html and "Magentic-One" in html

    # The README's next commands name no store: they read the quick start's, and say so on stderr.
    from click.testing import CliRunner
    from mast.cli import cli
    runner = CliRunner()
    stats = runner.invoke(cli, ["stats", "--json"], catch_exceptions=False)
    assert stats.exit_code == 0, stats.stderr
    systems = {r["system"]: r["traces"] for r in json.loads(stats.stdout)}
    with Store(tmp_path / "reports" / "quickstart.duckdb", read_only=True) as st:
        assert systems == dict(st.fetchall("SELECT coalesce(system, '(unknown)'), count(*) FROM traces GROUP BY 1"))
    assert "reports/quickstart.duckdb" in stats.stderr
    listed = runner.invoke(cli, ["traces", "list", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == sum(systems.values())
    assert not (tmp_path / "mast.duckdb").exists()  # the quick start never makes or wipes ./mast.duckdb

    # A store of the user's own at the default path wins, silently; -d is always obeyed.
    with Store(tmp_path / "mast.duckdb"):
        pass
    own = runner.invoke(cli, ["stats", "--json"], catch_exceptions=False)
    assert own.exit_code == 0 and json.loads(own.stdout) == [] and "quickstart" not in own.stderr
    assert quickstart.main([]) == 0 and (tmp_path / "mast.duckdb").exists()
    missing = runner.invoke(cli, ["-d", "other.duckdb", "stats"], catch_exceptions=False)
    assert missing.exit_code == 1 and "no store at other.duckdb" in missing.stderr


def test_library_pipeline_reports_events_and_stages(folder, tmp_path, db):
    """The job the CLI renders is a library call: stages, events and the report, no printing."""
    from mast.analyze import Planned, analyze
    from mast.settings import Settings

    events = []
    with Store(db) as st:
        res = analyze(st, [folder], tmp_path / "r.html", settings=Settings(db=str(db)), on_event=events.append,
                      plan=[Planned("rules"), Planned("judge", skipped="not wanted here")])
    assert res.ok and res.report is not None and res.report.path.exists()
    assert [s.stage for s in res.stages] == ["ingest", "classify rules", "classify judge", "report"]
    assert res.stages[2].result == "skipped: not wanted here"
    started = [e.stage for e in events if e.total is not None]
    assert started == ["ingest", "classify rules", "report"]
    assert sum(e.advance for e in events if e.stage == "ingest") == sum(
        p.stat().st_size for p in folder.iterdir())


def test_out_of_memory_stops_the_job_even_with_keep_going(mast, folder, tmp_path, db, monkeypatch):
    # Classifying a store that could not take the rest of the input would report on a silent
    # subset: an aborted ingest (here: DuckDB out of memory on one big file) ends the job.
    write_json(folder / "c_big.json", [{"role": "user", "content": "q"},
                                       {"role": "assistant", "content": "m" * 12_000_000}])
    monkeypatch.setenv("MAST_INGEST_MEMORY_LIMIT", "8MB")
    out = tmp_path / "rep" / "index.html"
    res = mast("analyze", folder, "-o", out, "--keep-going", expect=1)
    assert "out of memory" in res.stderr
    assert "classify rules" not in res.stderr and not out.exists()
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM runs")[0][0] == 0

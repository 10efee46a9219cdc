"""`mast report` from the command line."""

from __future__ import annotations

from tests.report.conftest import build_small


def test_report_command_writes_the_file(mast, db, tmp_path):
    build_small(db)
    out = tmp_path / "r" / "index.html"
    res = mast("report", "-o", out, "--system", "alpha", "--annotator", "rules")
    assert res.stdout.strip() == str(out)
    assert "6 traces" not in res.stderr and "4 traces, 4 in the explorer" in res.stderr
    html = out.read_text(encoding="utf-8")
    assert 'data-view="rules"' in html and 'data-view="human"' not in html and ">beta<" not in html


def test_report_notes_unknown_selection(mast, db, tmp_path):
    build_small(db)
    res = mast("report", "-o", tmp_path / "x.html", "--system", "nope", "--annotator", "judge:x")
    assert "No traces for system(s): nope" in res.stderr and "judge:x" in res.stderr


def test_report_without_a_store_is_a_clear_error(mast, tmp_path):
    res = mast("report", "-o", tmp_path / "x.html", expect=1)
    assert "no store" in res.stderr and "mast ingest" in res.stderr and not (tmp_path / "x.html").exists()

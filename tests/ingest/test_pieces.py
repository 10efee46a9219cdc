"""Pieces of one trace in separate files (issue 13): pages saved one per file are ONE trace.

tests/fixtures/formats/split/ holds the committed real page exports (Langfuse v1 / v2
observation pages, Phoenix ``/spans`` and ``/spans/otlpv1`` pages, the Phoenix UI's OTLP
JSON download) split one page per file by ``split_pages.py`` there.  Read as one file of
pages they give the runs whole; before, the same pages as separate files were separate
artefacts of one trace id and run identity kept the one with the most steps, so a trace
cut by a page boundary lost the spans of its other pages (and a Langfuse page quoting a
CrewAI run's output was taken for a CrewOutput).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from fw_golden import summarise
from mast.ingest import detect
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "formats"
SPLIT = FIX / "split"
#: split folder -> the one file of pages it was split from
SETS = {
    "langfuse-v1": FIX / "langfuse" / "pages" / "observations-v1.pages.jsonl",
    "langfuse-v2": FIX / "langfuse" / "pages" / "observations-v2.pages.jsonl",
    "phoenix-subagent-otlpv1": FIX / "phoenix" / "otlpv1" / "pxi_turn_subagent_trace.otlpv1.jsonl",
    "phoenix-subagent-spans": FIX / "phoenix" / "otlpv1" / "pxi_turn_subagent_trace.spans.jsonl",
    "phoenix-turn-otlpv1": FIX / "phoenix" / "otlpv1" / "pxi_turn_trace.otlpv1.jsonl",
    "phoenix-turn-download": FIX / "phoenix" / "otlpv1" / "pxi_turn_trace.otlp.json",
    "phoenix-subagent-jsonl": FIX / "phoenix" / "pxi_turn_subagent_trace.json",
    "otel-requests": ROOT / "tests" / "fixtures" / "frameworks" / "otel" / "genai_latest.otlp.jsonl",
}


def _pages(name: str) -> list[Path]:
    return sorted(p for p in (SPLIT / name).iterdir() if p.suffix in (".json", ".jsonl"))


def _ingest(mast, *paths) -> dict:
    return json.loads(mast("ingest", "--json", *paths).stdout)


def _traces(db: Path) -> list[tuple[str, int]]:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT trace_id, n_steps FROM traces ORDER BY trace_id")


def _whole(mast, db: Path, name: str) -> tuple[list[tuple[str, int]], list[dict]]:
    """The traces (ids and steps) and summaries of the one file of pages, in a fresh store."""
    _ingest(mast, SETS[name])
    got = _traces(db), _facts(db)
    db.unlink()
    return got


def _facts(db: Path) -> list[dict]:
    # the system is the folder's name when no span names one: the split folders are other folders
    return sorted((json.dumps({k: v for k, v in s.items() if k not in ("system", "system_from")}, sort_keys=True)
                   for s in summarise(db)))


@pytest.mark.parametrize("name", [n for n in sorted(SETS) if SETS[n].suffix == ".jsonl"])
def test_the_split_pages_are_the_committed_pages(name):
    # byte for byte the lines of the file of pages, in files (their attribution is its)
    lines = [ln for ln in SETS[name].read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) >= 2
    got = [ln for p in sorted(_pages(name), key=lambda p: int(p.stem.split("-")[1]))
           for ln in p.read_text(encoding="utf-8").splitlines()]
    assert got == lines


@pytest.mark.parametrize("name", sorted(SETS))
def test_page_files_are_one_trace_with_all_steps(name, mast, db):
    want, facts = _whole(mast, db, name)
    out = _ingest(mast, SPLIT / name)
    assert out["errors"] == []
    assert set(out["formats"]) == {name.split("-")[0]}
    # the same traces, step for step (the id is a hash of every step), as the file of pages gives
    assert _traces(db) == want
    assert _facts(db) == facts
    assert out["pieces_joined"], out
    assert all(len(j["files"]) >= 2 for j in out["pieces_joined"])
    with Store(db, read_only=True) as st:
        # every page file is an artefact of the joined run; one is the one it was built from
        rows = st.fetchall("SELECT path, chosen, stored_trace_id FROM run_sources ORDER BY path")
        stored = {t for t, _ in want}
        assert {r[2] for r in rows} <= stored
        assert sum(r[1] for r in rows) == len(want)


@pytest.mark.parametrize("name", ["langfuse-v1", "phoenix-subagent-otlpv1", "otel-requests"])
def test_order_of_files_does_not_matter(name, mast, db):
    want, _ = _whole(mast, db, name)
    _ingest(mast, *reversed(_pages(name)))
    assert _traces(db) == want
    db.unlink()
    # one page per call, last page first: each later piece extends the stored trace
    for p in reversed(_pages(name)):
        _ingest(mast, p)
    assert _traces(db) == want


@pytest.mark.parametrize("name", ["langfuse-v2", "phoenix-subagent-spans"])
def test_a_later_piece_extends_the_stored_trace(name, mast, db):
    want, _ = _whole(mast, db, name)
    pages = _pages(name)
    first = _ingest(mast, pages[0])
    assert first["pieces_joined"] == []
    before = _traces(db)
    assert sum(n for _, n in before) < sum(n for _, n in want)  # one page alone misses steps
    out = _ingest(mast, *pages[1:])
    assert out["pieces_joined"]
    assert _traces(db) == want


def test_rerun_is_idempotent(mast, db):
    name = "phoenix-subagent-otlpv1"
    _ingest(mast, SPLIT / name)
    with Store(db, read_only=True) as st:
        sources = st.fetchall("SELECT * FROM run_sources ORDER BY path")
        files = st.fetchall("SELECT * FROM ingested_file_traces ORDER BY ALL")
    traces = _traces(db)
    out = _ingest(mast, SPLIT / name)
    assert out["traces_new"] == 0 and out["pieces_joined"] == [] and out["skipped_unchanged"] == len(_pages(name))
    assert _traces(db) == traces
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT * FROM run_sources ORDER BY path") == sources
        assert st.fetchall("SELECT * FROM ingested_file_traces ORDER BY ALL") == files


def test_overlapping_exports_stay_one_trace_without_repeats(mast, db, tmp_path):
    # the whole export beside its pages, a copy of a page under another name, and the v1
    # and v2 pages of the same runs: the same spans more than once, never a repeated step
    want, _ = _whole(mast, db, "langfuse-v1")
    copy = tmp_path / "again-page-1.json"
    shutil.copy(_pages("langfuse-v1")[0], copy)
    out = _ingest(mast, SETS["langfuse-v1"], SPLIT / "langfuse-v1", copy, SPLIT / "langfuse-v2")
    assert out["errors"] == []
    assert _traces(db) == want
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM (SELECT trace_id, span_id, kind, count(*) n FROM steps "
                           "WHERE span_id IS NOT NULL GROUP BY ALL HAVING n > 1 AND kind <> 'message')")[0][0] == 0


def test_copy_of_a_page_beside_the_others_is_joined_once(mast, db, tmp_path):
    want, _ = _whole(mast, db, "phoenix-turn-otlpv1")
    pages = _pages("phoenix-turn-otlpv1")
    for p in pages:
        shutil.copy(p, tmp_path / p.name)
    shutil.copy(pages[0], tmp_path / "page-1-again.json")
    _ingest(mast, tmp_path)
    assert _traces(db) == want


def test_a_piece_gone_is_named_and_the_run_keeps_a_trace(mast, db, tmp_path):
    pages = _pages("phoenix-subagent-otlpv1")
    for p in pages:
        shutil.copy(p, tmp_path / p.name)
    _ingest(mast, tmp_path / pages[0].name)
    (tmp_path / pages[0].name).unlink()
    res = mast("ingest", "--json", *(tmp_path / p.name for p in pages[1:]))
    out = json.loads(res.stdout)
    assert out["errors"] == [] and out["pieces_joined"] == []
    assert any(pages[0].name in n for n in out["pieces_notes"])
    assert len(_traces(db)) == 1  # run identity's choice, as before: one trace for the run


def test_a_langfuse_page_quoting_a_crewai_run_is_langfuse():
    # v1 page 2 begins with observations of a CrewAI run whose output holds "tasks_output"
    # and "raw": the CrewOutput detector took it on a substring
    for p in _pages("langfuse-v1") + _pages("langfuse-v2"):
        assert detect(p).name == "langfuse", p


def test_a_changed_piece_is_joined_again(mast, db, tmp_path):
    # the file is the unit of re-ingest: a piece that changed (here: touched) is read again,
    # and the run is still the union of its pieces, stored once
    want, _ = _whole(mast, db, "langfuse-v2")
    for p in _pages("langfuse-v2"):
        shutil.copy(p, tmp_path / p.name)
    _ingest(mast, tmp_path)
    page = tmp_path / "page-2.json"
    page.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    st = page.stat()
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    out = _ingest(mast, tmp_path)
    assert out["skipped_unchanged"] == 2
    assert _traces(db) == want


def test_labels_of_the_trace_a_union_replaces_are_counted(mast, db):
    # the stored trace of one page, classified, then the other pages come: the union
    # replaces it, and its labels go with it, counted (they described a trace with spans missing)
    pages = _pages("phoenix-turn-otlpv1")
    _ingest(mast, pages[0])
    mast("classify", "--with", "rules")
    with Store(db, read_only=True) as st:
        labels = st.fetchall("SELECT count(*) FROM annotations")[0][0]
    assert labels > 0
    out = _ingest(mast, *pages[1:])
    assert out["pieces_joined"] and out["pieces_replaced"] == 1 and out["pieces_labels_replaced"] == labels
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM annotations")[0][0] == 0
    res = mast("ingest", pages[0], pages[1])
    assert "joined" not in res.stderr  # unchanged files: nothing to do


@pytest.mark.parametrize("name,empty", [
    ("langfuse-v1", {"data": [], "meta": {"page": 4, "limit": 10, "totalItems": 30, "totalPages": 3}}),
    ("phoenix-subagent-otlpv1", {"data": [], "next_cursor": None}),
])
def test_an_empty_last_page_beside_the_others_is_skipped_not_an_error(name, empty, mast, db, tmp_path):
    # a script that pages until data is empty saves that page too: it was refused ("no
    # importer recognises this file; closest: … an empty page"), failing the whole ingest
    want, _ = _whole(mast, db, name)
    for p in _pages(name):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / f"page-{len(_pages(name)) + 1}.json").write_text(json.dumps(empty))
    out = _ingest(mast, tmp_path)
    assert out["errors"] == [] and len(out["skipped_companion"]) == 1
    assert "empty page" in out["skipped_companion"][0]["note"]
    assert _traces(db) == want

"""The report's unclassified-traces section: traces the judge could not classify, and why,
from a real judge run against a real HTTP server on 127.0.0.1; and the page in Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Step, Trace  # noqa: E402
from mast.report import build_context, write_report  # noqa: E402
from mast.report.html import render  # noqa: E402
from mast.store import Store  # noqa: E402
from tests.report.cdp import Browser, find_chromium  # noqa: E402

MODEL = "gpt-4o-mini"


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def _store(db, marks: list[str]) -> list[str]:
    traces = [Trace("toy", "test", "generic", "mem.json", i,
                    [Step("planner", f"plan {i}"), Step("coder", f"code {i} {m}".strip())], task=f"task {i}")
              for i, m in enumerate(marks)]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    return [t.finalise().trace_id for t in traces]


def _judge(db, server):
    clf = create("judge", model=MODEL, base_url=server.base_url, base_wait=0.01, max_wait=0.2, max_retries=1)
    with Store(db) as st:
        return run(st, clf, Selection())


def _section(html: str) -> str:
    s = html[html.index('<section id="unclassified">'):]
    return s[:s.index("</section>")]


def test_unclassified_traces_are_listed_with_why_until_a_rerun_classifies_them(db, server):
    ids = _store(db, ["FAULT:500x2", "FAULT:MISSING", "<b>FAULT:OBEY</b>", ""])
    res = _judge(db, server)
    assert res.done == 1 and res.failed == 3
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
    listed = {u["trace_id"]: u for u in ctx.unclassified}
    assert set(listed) == set(ids[:3]) and ctx.unclassified_total == 3
    assert listed[ids[0]]["kind"] == "call_failed" and "500 server error" in listed[ids[0]]["reason"]
    assert "lacks verdicts for modes 3.3" in listed[ids[1]]["reason"]
    assert {(s["annotator"], s["kind"], s["traces"]) for s in ctx.unclassified_summary} == {
        (f"judge:{MODEL}", "unclassified", 2), (f"judge:{MODEL}", "call_failed", 1)}
    html = render(ctx)
    section = _section(html)
    assert ids[0] in section and "lacks verdicts for modes 3.3" in section and ids[3] not in section
    assert "3 trace(s) could not be classified by the LLM judge" in html
    # the first trace's 500s were transient: a rerun classifies it and it leaves the list
    _judge(db, server)
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
    assert {u["trace_id"] for u in ctx.unclassified} == set(ids[1:3])


def test_no_failures_says_so(db, server):
    _store(db, [""])
    _judge(db, server)
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
    assert ctx.unclassified == [] and "None: every trace the judge was asked about" in _section(render(ctx))


@pytest.mark.browser
def test_section_shows_in_chromium(db, server, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium not found")
    ids = _store(db, ["FAULT:500x9", ""])
    _judge(db, server)
    with Store(db, read_only=True) as st:
        path = write_report(st, tmp_path / "index.html").path
    b = Browser(binary)
    try:
        b.navigate(path.resolve().as_uri())
        assert b.eval("document.documentElement.getAttribute('data-ready')") == "1", b.problems()
        text = b.eval("document.querySelector('#unclassified').innerText")
        assert ids[0] in text and "call_failed" in text and "500 server error" in text
        assert b.eval("!!document.querySelector('nav.toc a[href=\"#unclassified\"]')")
        assert b.problems() == []
    finally:
        b.close()

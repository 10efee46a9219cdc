"""The Annotators section: agreement intervals against people, and the judge's runs (cost and trust).

The judge runs for real against the scripted OpenAI-compatible server on 127.0.0.1
(tests/_openai_server.py): one run that classifies two traces and cannot classify a
third, then a rerun served from the cache.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.judge.prompt import load_template  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Annotation, Label, Step, Trace  # noqa: E402
from mast.report import build_context, write_report  # noqa: E402
from mast.report.sections.annotators import REPORT_BOOTSTRAP  # noqa: E402
from mast.store import Store  # noqa: E402
from tests.report.test_browser import browser, load  # noqa: E402,F401 - the module's Chromium fixture
from tests.report.test_html import parse  # noqa: E402

MODEL = "gpt-4o-mini"


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def judged_store(db: Path, server) -> list[str]:
    traces = [Trace("sys", "test", "generic", "mem.json", i,
                    [Step("planner", f"plan number {i}"), Step("coder", f"code for {i}"),
                     Step("tester", f"result {i}" + (" FAULT:MALFORMED" if i == 2 else ""))], task=f"task {i}")
              for i in range(3)]
    for t in traces[:2]:  # a person labelled the first two, so the judge has a reference
        t.annotations = [Annotation(mode=m, label=Label.PRESENT if m == "1.3" else Label.ABSENT, annotator="human")
                         for m in ("1.3", "3.3")]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    for _ in range(2):
        clf = create("judge", model=MODEL, base_url=server.base_url, base_wait=0.01, max_wait=0.2)
        with Store(db) as st:
            run(st, clf, Selection())
    return [t.finalise().trace_id for t in traces]


def test_judge_runs_show_cost_coverage_cache_hits_and_unclassified_reasons(db, server, tmp_path):
    ids = judged_store(db, server)
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
        stored = st.fetchall("SELECT run_id, tokens_in, tokens_out, cost_usd, traces_done, traces_failed, tokens_cached "
                             "FROM runs WHERE classifier = 'judge' ORDER BY started_at")
        res = write_report(st, tmp_path / "r.html")
    runs = ctx.judge_runs
    assert [r.run_id for r in runs] == [s[0] for s in stored]
    first, second = runs
    for r, s in zip(runs, stored):
        assert (r.model, r.prompt_version) == (MODEL, load_template().version)
        assert (r.tokens_in, r.tokens_out, r.cost_usd, r.traces_done, r.traces_failed, r.tokens_cached) == s[1:]
        assert r.failures_total == 1 and r.failures[0][0] == ids[2] and r.failures[0][1] == "unclassified"
        assert "not valid JSON" in r.failures[0][2]
    assert first.tokens_in > 0 and first.cost_usd > 0
    # the rerun replaced the first run's labels and was answered from its cache (hits); it paid only to ask
    # again about the trace that failed (failures are never cached)
    assert (first.labelled_traces, second.labelled_traces, second.cache_hits) == (0, 2, 2)
    assert 0 < second.tokens_in < first.tokens_in and second.coverage == pytest.approx(1.0)
    doc = parse(res.path.read_text(encoding="utf-8"))
    table = doc.find("table", cls="runs")
    rows = [re.sub(r"\s+", " ", tr.all_text()).strip() for tr in table.find_all("tr") if "data-run" in tr.attrs]
    assert len(rows) == 2 and MODEL in rows[1] and load_template().version in rows[1] and "2 of 2" in rows[1] and "100.0%" in rows[1]
    fails = [re.sub(r"\s+", " ", li.all_text()) for li in table.find_all("li")]
    assert len(fails) == 2 and all(ids[2][:15] in f and "not valid JSON" in f for f in fails)
    # the prompt tokens the server said it served from its prefix cache, and their share of the prompt tokens:
    # every request after the first shares the prompt's fixed part with an earlier one
    assert sum(server.cached_reported) == first.tokens_cached + second.tokens_cached and first.tokens_cached > 0
    cells = [re.sub(r"\s+", " ", td.all_text()).strip() for td in table.find_all("td", cls="prefix-cached")]
    assert cells == [f"{r.tokens_cached:,} ({100 * r.tokens_cached / r.tokens_in:.1f}%)" for r in runs]


def test_a_run_stored_before_cached_tokens_were_kept_says_not_recorded(db, server, tmp_path):
    judged_store(db, server)
    with Store(db) as st:
        st.execute("UPDATE runs SET tokens_cached = NULL")   # as migration m180 leaves older rows
    with Store(db, read_only=True) as st:
        res = write_report(st, tmp_path / "r.html")
    table = parse(res.path.read_text(encoding="utf-8")).find("table", cls="runs")
    cells = [td.all_text().strip() for td in table.find_all("td", cls="prefix-cached")]
    assert cells == ["not recorded", "not recorded"]


def test_agreement_with_a_person_carries_kappa_intervals(db, server):
    judged_store(db, server)
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
    pair = next(p for p in ctx.agreement if p.gold == "human" and p.pred.startswith("judge"))
    ci = ctx.agreement_ci[(pair.gold, pair.pred)]
    assert set(ci["modes"]) == {m.mode for m in pair.modes}
    for m in pair.modes:
        lo_hi = ci["modes"][m.mode]
        if m.kappa is not None and lo_hi is not None:
            assert lo_hi[0] <= m.kappa + 1e-9 and m.kappa - 1e-9 <= lo_hi[1]
    assert ctx.agreement_bootstrap == REPORT_BOOTSTRAP
    # a pair of classifiers is not a reference pair: no interval computed for it
    assert all(g in ("human",) or g.startswith(("human:", "community:")) for g, _ in ctx.agreement_ci)


@pytest.mark.browser
def test_an_unclassified_trace_opens_in_the_explorer(db, server, tmp_path, browser):  # noqa: F811
    ids = judged_store(db, server)
    with Store(db, read_only=True) as st:
        res = write_report(st, tmp_path / "r.html")
    load(browser, res.path)
    browser.eval("document.querySelectorAll('#annotators details.failures').forEach(d => d.open = true)")
    browser.click(f"#annotators a.trace-link[data-trace='{ids[2]}']")
    assert browser.eval("document.querySelector('#trace-detail h3').textContent").endswith(ids[2])
    assert browser.problems() == []

"""The exposure heat map in a real headless Chromium (1,400 px wide) with 50 systems:
no sideways scroll, headers that stay in view, and colour that carries the uncertainty.
Also the judge's cost/trust table and one click from a label to its rationale and evidence."""

from __future__ import annotations

import pytest

from mast.model import Annotation, Label
from mast.report import write_report
from mast.store import Store
from tests.report.conftest import MODES, build_small, make_trace
from tests.report.test_browser import ARTIFACTS, browser, load  # noqa: F401 - the module's Chromium fixture

pytestmark = pytest.mark.browser


def build_many(path, systems: int = 50) -> None:
    """``systems`` systems with long names; sys00 has 30 traces with 1.3 present on all
    (a rate we are sure of), every other system one trace with 1.3 present (1/1)."""
    traces, labels = [], []
    for s in range(systems):
        name = f"system-{s:02d}-with-a-rather-long-name-v{s}"
        for i in range(30 if s == 0 else 1):
            t = make_trace(name, 1000 * s + i)
            traces.append(t)
            labels += [Annotation(mode=m, label=Label.PRESENT if m == "1.3" else Label.ABSENT, annotator="rules",
                                  trace_id=t.trace_id, confidence=0.8, evidence_steps=[1] if m == "1.3" else [])
                       for m in MODES]
    with Store(path) as st:
        with st.transaction():
            st.write_traces(traces)
        st.write_annotations(labels)


def test_fifty_systems_fit_at_1400px_and_colour_follows_the_interval(browser, tmp_path):  # noqa: F811
    build_many(tmp_path / "m.duckdb")
    with Store(tmp_path / "m.duckdb", read_only=True) as st:
        res = write_report(st, tmp_path / "m.html")
    load(browser, res.path)
    assert browser.eval("window.innerWidth") == 1400
    assert browser.eval("document.querySelectorAll('#exposure .view:not([hidden]) table.modes tbody tr').length") == 50
    # no sideways scroll: neither the page nor the heat map's own box
    assert browser.eval("document.documentElement.scrollWidth") <= browser.eval("window.innerWidth")
    wraps = browser.eval("""[...document.querySelectorAll('#exposure .view:not([hidden]) .heat-wrap')]
        .map(w => [w.scrollWidth, w.clientWidth])""")
    assert wraps and all(sw <= cw for sw, cw in wraps), wraps
    # sticky headers: scroll the map down, the mode header row stays at the top of its box
    moved = browser.eval("""(() => { const w = document.querySelector('#exposure .view:not([hidden]) .heat-wrap');
        w.scrollIntoView({block: 'start', behavior: 'instant'}); w.scrollTop = 900;
        const head = w.querySelector('tr.mode-head th').getBoundingClientRect().top;
        const first = w.querySelector('tbody tr th.sys').getBoundingClientRect().top;
        return [w.scrollTop, head - w.getBoundingClientRect().top, first < w.getBoundingClientRect().top]; })()""")
    assert moved[0] > 0 and 0 <= moved[1] <= 40 and moved[2] is True
    # colour: 1/1 (interval 21–100%) is paler than 30/30 (89–100%), and faint for its small n
    cells = browser.eval("""[...document.querySelectorAll("#exposure .view:not([hidden]) table.modes a.cell-link[data-mode='1.3']")]
        .slice(0, 2).map(a => { const td = a.closest('td'); return [a.dataset.system, a.querySelector('b').textContent,
        td.className, getComputedStyle(td).backgroundColor, getComputedStyle(a).opacity]; })""")
    sure, once = cells[0], cells[1]
    assert sure[0].startswith("system-00") and sure[1] == "89–100%" and "h8" in sure[2] and "thin" not in sure[2]
    assert once[1] == "21–100%" and "h2" in once[2] and "thin" in once[2]
    assert sure[3] != once[3] and float(once[4]) < float(sure[4])
    browser.screenshot(ARTIFACTS / "report-exposure-50.png")
    assert browser.problems() == []


def test_a_chip_opens_its_rationale_and_evidence_in_one_click(browser, tmp_path):  # noqa: F811
    ids = build_small(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        res = write_report(st, tmp_path / "r.html")
    load(browser, res.path)
    browser.click(f"button.trace-item[data-trace='{ids['a0']}'] .chip[data-mode='3.3']")
    assert browser.eval("document.querySelector('#trace-detail h3').textContent").endswith(ids["a0"])
    active = browser.eval("document.querySelector('#trace-detail .tag.active a.tag-link').dataset.mode")
    assert active == "3.3"
    assert "rule saw 3.3 in trace 0" in browser.eval("document.querySelector('#trace-detail .tag.active').textContent")
    assert browser.eval("[...document.querySelectorAll('.step.highlight')].map(e => e.id)") == ["step-2", "step-3"]
    assert browser.problems() == []

"""The report in a real headless Chromium, driven over the DevTools protocol.

Skips when Chromium is absent, unless MAST_REQUIRE_BROWSER=1 (CI), which makes that a
failure.  A screenshot of the overview goes to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mast.report import Limits, write_report
from mast.store import Store
from tests.report.cdp import Browser, find_chromium
from tests.report.conftest import add_signal, build_small, build_xss

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        msg = "headless Chromium not found (/usr/bin/chromium; install Debian's chromium or set MAST_CHROMIUM)"
        if os.environ.get("MAST_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " and MAST_REQUIRE_BROWSER=1")
        pytest.skip(msg)
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def small_html(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("report")
    ids = build_small(d / "s.duckdb")
    with Store(d / "s.duckdb", read_only=True) as st:
        res = write_report(st, d / "index.html")
    return res.path, ids


def load(browser: Browser, path: Path) -> None:
    browser.navigate(path.resolve().as_uri())
    assert browser.eval("document.documentElement.getAttribute('data-ready')") == "1", browser.problems()


def visible_items(browser) -> int:
    return browser.eval("document.querySelectorAll('#trace-list button.trace-item').length")


def test_loads_without_console_errors_or_requests(browser, small_html):
    path, _ = small_html
    load(browser, path)
    assert browser.problems() == []
    assert browser.requests() == [path.resolve().as_uri()]
    assert browser.eval("document.title") == "Multi-agent failure report"
    assert visible_items(browser) == 6
    shot = browser.screenshot(ARTIFACTS / "report-overview.png")
    assert shot.stat().st_size > 10_000  # a real picture, not an empty canvas


def test_filtering_narrows_the_list(browser, small_html):
    path, ids = small_html
    load(browser, path)
    assert visible_items(browser) == 6
    browser.eval("(() => { const s = document.getElementById('f-system'); s.value = 'beta';"
                 " s.dispatchEvent(new Event('change')); })()")
    assert visible_items(browser) == 2
    assert browser.eval("document.getElementById('result-count').textContent").startswith("2 of 6")
    browser.eval("(() => { const s = document.getElementById('f-system'); s.value = '';"
                 " s.dispatchEvent(new Event('change')); const m = document.getElementById('f-mode');"
                 " m.value = '1.3'; m.dispatchEvent(new Event('change')); })()")
    assert visible_items(browser) == 2  # a0 (human, rules) and a1 (rules)
    browser.eval("(() => { const a = document.getElementById('f-annotator'); a.value = 'human';"
                 " a.dispatchEvent(new Event('change')); })()")
    assert visible_items(browser) == 1
    ids_shown = browser.eval("[...document.querySelectorAll('#trace-list button.trace-item')]"
                             ".map(b => b.getAttribute('data-trace'))")
    assert ids_shown == [ids["a0"]]
    # free text, typed like a user would
    browser.click("#f-reset")
    browser.eval("new Promise(r => setTimeout(r, 50))")
    browser.type_text("#f-text", ids["a3"][:14])
    browser.eval("new Promise(r => setTimeout(r, 400))")
    assert visible_items(browser) == 1
    browser.type_text("#f-text", " nosuchword")
    browser.eval("new Promise(r => setTimeout(r, 400))")
    assert visible_items(browser) == 0
    assert browser.problems() == []


def test_heatmap_cell_filters_the_explorer(browser, small_html):
    path, _ = small_html
    load(browser, path)
    browser.eval("(() => { const s = document.getElementById('view-select'); s.value = 'rules';"
                 " s.dispatchEvent(new Event('change')); })()")
    browser.click(".view[data-view='rules'] a.cell-link[data-mode='3.3']")
    assert browser.eval("document.getElementById('f-mode').value") == "3.3"
    assert browser.eval("document.getElementById('f-annotator').value") == "rules"
    assert visible_items(browser) == 1
    assert browser.problems() == []


def test_clicking_a_failure_tag_highlights_its_evidence(browser, small_html):
    path, ids = small_html
    load(browser, path)
    browser.click(f"button.trace-item[data-trace='{ids['a0']}']")
    assert browser.eval("document.querySelector('#trace-detail h3').textContent").endswith(ids["a0"])
    assert browser.eval("document.querySelectorAll('#trace-detail .step').length") == 6
    assert browser.eval("document.querySelectorAll('.step.highlight').length") == 0
    # rules' 1.3 tag cites steps 2 and 3
    tag = "#trace-detail .tag a.tag-link[data-mode='1.3'][href='#step-2']"
    browser.click(tag)
    hl = browser.eval("[...document.querySelectorAll('.step.highlight')].map(e => e.id)")
    assert hl == ["step-2", "step-3"]
    in_view = browser.eval("""(() => { const r = document.getElementById('step-2').getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight; })()""")
    assert in_view
    assert browser.eval("getComputedStyle(document.getElementById('step-2')).backgroundColor") != \
        browser.eval("getComputedStyle(document.getElementById('step-1')).backgroundColor")
    # the root cause (human: coder at step 2) highlights only step 2
    browser.click("#trace-detail .tag.root a.tag-link")
    assert browser.eval("[...document.querySelectorAll('.step.highlight')].map(e => e.id)") == ["step-2"]
    browser.screenshot(ARTIFACTS / "report-trace.png")
    assert browser.problems() == []


def test_a_signal_is_shown_as_a_signal_beside_the_failure_tags(browser, tmp_path):
    ids = build_small(tmp_path / "s.duckdb")
    add_signal(tmp_path / "s.duckdb", ids["a0"])
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        res = write_report(st, tmp_path / "r.html")
    load(browser, res.path)
    chips = browser.eval(f"[...document.querySelectorAll(\"button.trace-item[data-trace='{ids['a0']}'] .chip\")]"
                         ".map(c => [c.className, c.textContent])")
    assert ["chip chip-signal", "signal 1.5"] in chips and ["chip", "1.5"] not in chips
    browser.click(f"button.trace-item[data-trace='{ids['a0']}']")
    box = "#trace-detail .tag.signal"
    assert browser.eval(f"document.querySelectorAll('{box}').length") == 1
    text = browser.eval(f"document.querySelector('{box}').textContent")
    assert text.startswith("Signal: 1.5") and "not a failure label" in text and "rules:signal" in text
    # a signal is not a failure tag, and is styled apart from one
    assert browser.eval("document.querySelectorAll(\"#trace-detail .tag:not(.signal) a[data-mode='1.5']\").length") == 0
    assert browser.eval(f"getComputedStyle(document.querySelector('{box}')).borderStyle") == "dashed"
    assert browser.eval("getComputedStyle(document.querySelector('#trace-detail .tag:not(.signal):not(.root)'))"
                        ".borderStyle") == "solid"
    browser.click(f"{box} a.tag-link")
    assert browser.eval("[...document.querySelectorAll('.step.highlight')].map(e => e.id)") == ["step-4"]
    assert browser.problems() == []


def test_trace_without_detail_says_so(browser, tmp_path):
    ids = build_small(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        res = write_report(st, tmp_path / "r.html", limits=Limits(detail_bytes=1))
    load(browser, res.path)
    shown = browser.eval("[...document.querySelectorAll('button.trace-item')].map(b => b.getAttribute('data-trace'))")
    browser.click(f"button.trace-item[data-trace='{shown[-1]}']")
    assert "not included" in browser.eval("document.getElementById('trace-detail').textContent")
    assert len(ids) == 6 and browser.problems() == []


def test_xss_payloads_do_not_run_and_nothing_leaves_the_page(browser, tmp_path):
    tid = build_xss(tmp_path / "x.duckdb")
    with Store(tmp_path / "x.duckdb", read_only=True) as st:
        res = write_report(st, tmp_path / "x.html")
    load(browser, res.path)
    browser.click(f"button.trace-item[data-trace='{tid}']")
    for sel in ("#trace-detail .tag a.tag-link[data-mode='1.3']", "#trace-detail .tag a.tag-link[data-mode='3.3']",
                "#trace-detail .tag.root a.tag-link"):
        browser.click(sel)
    browser.eval("(() => { const s = document.getElementById('f-text'); s.value = 'script';"
                 " s.dispatchEvent(new Event('input')); })()")
    browser.eval("new Promise(r => setTimeout(r, 400))")
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert browser.eval("document.title") == "Multi-agent failure report"
    # the payload is on the page as text
    assert "<script>window.__pwned" in browser.eval("document.getElementById('trace-detail').textContent")
    assert browser.eval("document.querySelectorAll('iframe, img, object, embed, link[rel=stylesheet]').length") == 0
    assert browser.eval("document.querySelectorAll('script').length") == 2
    assert browser.eval("[...document.querySelectorAll('a[href]')].filter(a => !a.getAttribute('href')"
                        ".startsWith('#')).length") == 0
    assert browser.requests() == [res.path.resolve().as_uri()]
    assert browser.problems() == []

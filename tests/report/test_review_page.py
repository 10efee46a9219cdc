"""The review loop in a real headless Chromium: sample, open the page, label with the
keyboard, reload (nothing lost), export (a real download), import, evaluate.

Keystroke latency with 2,000 traces is measured over the DevTools protocol and written
to test-artifacts/review-keystrokes.json; the test asserts behaviour, not time.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import pytest

from mast.model import Annotation, Label
from mast.report import write_review
from mast.review import sample_for_review
from mast.store import Store
from tests.report.cdp import Browser
from tests.report.conftest import build_small, build_xss, make_trace
from tests.report.test_browser import ARTIFACTS, browser  # noqa: F401 - the module's Chromium fixture

pytestmark = pytest.mark.browser

KEYS = {"ArrowDown": 40, "ArrowUp": 38, "ArrowRight": 39, "ArrowLeft": 37, "Enter": 13, "Escape": 27}


def press(b: Browser, key: str) -> float:
    """One real key press (keyDown with its text, keyUp) through the DevTools protocol; the
    keyDown's round trip in ms (it returns once the page's handlers have run)."""
    down = {"type": "keyDown", "key": key}
    if key in KEYS:
        down["windowsVirtualKeyCode"] = KEYS[key]
        down["code"] = key
    else:
        down["text"] = key
        if key.isupper():
            down["modifiers"] = 8  # shift
    t0 = time.perf_counter()
    b.send("Input.dispatchKeyEvent", down)
    handled = (time.perf_counter() - t0) * 1000
    b.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, **({"windowsVirtualKeyCode": KEYS[key]} if key in KEYS else {})})
    return handled


def settle(b: Browser) -> None:
    b.eval("new Promise(r => requestAnimationFrame(() => r(1)))")


def open_page(b: Browser, path: Path) -> None:
    b.navigate(path.resolve().as_uri())
    assert b.eval("document.documentElement.getAttribute('data-ready')") == "1", b.problems()


def row_label(b: Browser, mode: str) -> str:
    return b.eval(f"document.querySelector('li.rv-mode[data-mode=\"{mode}\"]').getAttribute('data-label')")


def current_mode(b: Browser) -> str:
    return b.eval("document.querySelector('li.rv-mode.cur').getAttribute('data-mode')")


def allow_downloads(b: Browser, into: Path) -> None:
    params = {"behavior": "allow", "downloadPath": str(into), "eventsEnabled": True}
    try:
        b.send("Browser.setDownloadBehavior", params)
    except RuntimeError:  # older Chromium: the page-level command
        b.send("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(into)})


def wait_for_file(folder: Path, pattern: str, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done and done[0].stat().st_size:
            return done[0]
        time.sleep(0.1)
    raise TimeoutError(f"no download matching {pattern} in {folder}: {list(folder.iterdir())}")


def test_the_whole_review_loop_by_keyboard(browser, mast, db, tmp_path):  # noqa: F811
    ids = build_small(db)
    with Store(db) as st:  # a judge that disagrees with the rules on a2: the uncertain strategy puts it first
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="judge:m", trace_id=ids["a2"],
                                         confidence=0.6, evidence_steps=[4], rationale="the call repeats at step 4")])
    rs = json.loads(mast("sample", "--for-review", 3, "--system", "alpha", "--json").stdout)
    order = [t["trace_id"] for t in rs["traces"]]
    assert order[0] == ids["a2"]
    page = tmp_path / "review.html"
    res = mast("report", "--review", rs["review_set"], "-o", page)
    assert res.stdout.strip() == str(page)
    html = page.read_text(encoding="utf-8")
    assert "script-src &#39;sha256-" in html and "default-src &#39;none&#39;" in html  # the report's CSP
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)  # no inline event handlers

    open_page(browser, page)
    assert browser.problems() == []
    assert browser.eval("document.querySelector('#rv-trace-head h2').textContent") == "Trace 1 of 3 · alpha"
    # the classifiers' labels are hints on their mode's row, with evidence and rationale
    hint = browser.eval("document.querySelector('li.rv-mode[data-mode=\"1.3\"] .rv-hints').textContent")
    assert "judge:m: present 0.60" in hint and "steps 4" in hint and "the call repeats at step 4" in hint
    assert "absent: rules" in hint

    # trace 1 (a2): 1.1 present, 1.2 unsure, then evidence and a note on 1.3, then every other mode absent
    press(browser, "p")
    press(browser, "u")
    assert (row_label(browser, "1.1"), row_label(browser, "1.2"), current_mode(browser)) == ("present", "unsure", "1.3")
    press(browser, "p")
    press(browser, "ArrowUp")
    assert current_mode(browser) == "1.3"
    press(browser, "e")
    assert browser.eval("document.activeElement.classList.contains('rv-ev')")
    browser.send("Input.insertText", {"text": "4, 2-3"})
    press(browser, "Enter")
    assert browser.eval("[...document.querySelectorAll('.rv-steps .step.highlight')].map(e => e.dataset.step)") == \
        ["2", "3", "4"]
    press(browser, "n")
    browser.send("Input.insertText", {"text": "same call again; api_key=abcd1234efgh"})
    press(browser, "Escape")
    press(browser, "A")
    assert browser.eval("document.getElementById('rv-progress-text').textContent").startswith("1 of 3 traces done · 14 of 42")
    # a step can be clicked as evidence of the current mode; out-of-range evidence is refused
    press(browser, "ArrowUp")
    press(browser, "ArrowUp")  # A left the cursor on 1.3: two up is 1.1
    assert current_mode(browser) == "1.1"
    browser.click(".rv-steps .step[data-step='5']")
    assert browser.eval("document.querySelector('li.rv-mode[data-mode=\"1.1\"] .rv-ev').value") == "5"
    press(browser, "e")
    browser.eval("document.activeElement.value = '99'")
    press(browser, "Enter")
    assert "not a step of this trace (0–5): 99" in browser.eval(
        "document.querySelector('li.rv-mode[data-mode=\"1.1\"] .rv-err').textContent")

    # trace 2: only 1.3, present; trace 3: 1.3 absent; j/k move between traces
    press(browser, "j")
    assert browser.eval("document.querySelector('#rv-trace-head h2').textContent") == "Trace 2 of 3 · alpha"
    for _ in range(2):
        press(browser, "ArrowDown")
    press(browser, "p")
    press(browser, "j")
    press(browser, "ArrowDown")
    press(browser, "ArrowDown")
    press(browser, "a")
    press(browser, "k")
    assert row_label(browser, "1.3") == "present"
    press(browser, "?")
    assert browser.eval("document.getElementById('rv-help').hidden") is False
    press(browser, "?")

    # a closed tab loses nothing: reload, and everything is back (labels, evidence, note, position)
    open_page(browser, page)
    assert browser.eval("document.querySelector('#rv-trace-head h2').textContent") == "Trace 2 of 3 · alpha"
    assert browser.eval("document.getElementById('rv-progress-text').textContent").startswith("1 of 3 traces done · 16 of 42")
    press(browser, "k")
    assert row_label(browser, "1.3") == "present" and row_label(browser, "2.1") == "absent"
    assert browser.eval("document.querySelector('li.rv-mode[data-mode=\"1.3\"] .rv-ev').value") == "2, 3, 4"

    # export: the name is asked for first, then one file arrives as a download
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    allow_downloads(browser, downloads)
    press(browser, "S")
    assert "Give your name first" in browser.eval("document.getElementById('rv-message').textContent")
    assert browser.eval("document.activeElement.id") == "rv-reviewer"
    browser.send("Input.insertText", {"text": "alice"})
    press(browser, "Enter")
    press(browser, "S")
    got = wait_for_file(downloads, "labels-*.json")
    assert got.name == f"labels-{rs['review_set']}-alice.json"
    doc = json.loads(got.read_text(encoding="utf-8"))
    assert (doc["format"], doc["version"], doc["review_set"], doc["reviewer"], doc["taxonomy"]) == \
        ("mast-review-labels", 1, rs["review_set"], "alice", "mast-v1")
    assert len(doc["labels"]) == 16
    assert browser.requests() == [page.resolve().as_uri()]  # the download is a Blob URL, not a request
    assert browser.problems() == []

    # import (through `mast ingest`), then evaluate the reviewer against the rules
    res = mast("ingest", got, "--json")
    assert json.loads(res.stdout)["labels"][0]["labels"] == 16
    with Store(db, read_only=True) as st:
        note = st.fetchall("SELECT rationale, evidence_steps FROM annotations WHERE annotator = 'human:alice' "
                           "AND trace_id = ? AND mode = '1.3'", [ids["a2"]])[0]
        unsure = st.fetchall("SELECT label FROM annotations WHERE annotator = 'human:alice' AND mode = '1.2'")
    assert note[1] == [2, 3, 4] and "[REDACTED]" in note[0] and "abcd1234efgh" not in note[0]
    assert unsure == [("unknown",)]
    ev = json.loads(mast("evaluate", "--gold", "human:alice", "--pred", "rules", "--json").stdout)
    m13 = next(m for m in ev["modes"] if m["mode"] == "1.3")
    # alice: a2 present, order[1] present, order[2] absent; rules: 1.3 present on a0, a1 only
    rules_13 = {ids["a0"]: 1, ids["a1"]: 1, ids["a2"]: 0, ids["a3"]: 0}
    alice_13 = {order[0]: 1, order[1]: 1, order[2]: 0}
    tp = sum(1 for t in alice_13 if alice_13[t] and rules_13[t])
    assert (m13["traces"], m13["tp"]) == (3, tp) and m13["kappa_ci"] is not None

    # and the report's Annotators section shows the reviewer against the classifiers, with intervals
    report = tmp_path / "r.html"
    mast("report", "-o", report)
    open_page(browser, report)
    summary = browser.eval("[...document.querySelectorAll('#annotators details.pair summary')].map(s => s.textContent)")
    assert any("rules against human:alice" in " ".join(s.split()) for s in summary)
    assert browser.eval("document.querySelectorAll('#annotators table.agree td.ci').length") > 0


def test_keystrokes_stay_fast_with_2000_traces(browser, tmp_path):  # noqa: F811
    db = tmp_path / "big.duckdb"
    traces = [make_trace(f"sys{i % 20:02d}", i, n=8) for i in range(2000)]
    with Store(db) as st:
        with st.transaction():
            st.write_traces(traces)
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT if i % 3 else Label.ABSENT,
                                         annotator="rules", trace_id=t.trace_id, confidence=0.5 + (i % 5) / 10,
                                         evidence_steps=[1, 4], rationale=f"rule saw a repeat in {i}")
                              for i, t in enumerate(traces)])
        rs = sample_for_review(st, 2000, strategy="random")
        res = write_review(st, rs.review_set, tmp_path / "big.html")
    assert len(res.context.traces) == 2000
    open_page(browser, res.path)
    browser.eval("localStorage.clear()")
    open_page(browser, res.path)
    handled: dict[str, list[float]] = {"j": [], "p": [], "ArrowDown": [], "k": []}
    framed: dict[str, list[float]] = {k: [] for k in handled}
    for i in range(40):
        for key in ("p", "ArrowDown", "j") if i < 30 else ("k",):
            t0 = time.perf_counter()
            handled[key].append(press(browser, key))
            settle(browser)  # until the next frame: what a person would see
            framed[key].append((time.perf_counter() - t0) * 1000)
    assert browser.eval("document.querySelector('#rv-trace-head h2').textContent").startswith("Trace 21 of 2000")
    assert browser.eval("document.getElementById('rv-progress-text').textContent").startswith("0 of 2000 traces done · 30 of 28000")
    assert browser.problems() == []
    figures = {k: {"n": len(v), "handled_median_ms": round(statistics.median(v), 1),
                   "handled_max_ms": round(max(v), 1), "next_frame_median_ms": round(statistics.median(framed[k]), 1),
                   "next_frame_max_ms": round(max(framed[k]), 1)} for k, v in handled.items()}
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "review-keystrokes.json").write_text(json.dumps({"traces": 2000, "page_bytes": res.bytes,
                                                                  "load_average": load, "keys": figures}, indent=1))
    print("review page, 2000 traces:", json.dumps(figures), "load", load)


def test_trace_text_on_the_review_page_is_text_never_markup(browser, tmp_path):  # noqa: F811
    db = tmp_path / "x.duckdb"
    tid = build_xss(db)
    with Store(db) as st:
        rs = sample_for_review(st, 1, strategy="random")
        res = write_review(st, rs.review_set, tmp_path / "x.html")
    open_page(browser, res.path)
    for key in ("ArrowDown", "ArrowDown", "e"):
        press(browser, key)
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert browser.eval("document.title") == f"Review {rs.review_set}"
    assert "<script>window.__pwned" in browser.eval("document.getElementById('rv-steps').textContent")
    hint = browser.eval("document.querySelector('li.rv-mode[data-mode=\"1.3\"] .rv-hints').textContent")
    assert "<script>window.__pwned" in hint and "rules</script>" in hint  # rationale and annotator, as text
    # a person's label (human, 3.3) is not shown as a hint
    assert browser.eval("document.querySelector('li.rv-mode[data-mode=\"3.3\"] .rv-hints').textContent") == ""
    assert browser.eval("document.querySelectorAll('iframe, img, object, embed, link[rel=stylesheet]').length") == 0
    assert browser.eval("document.querySelectorAll('script').length") == 2
    assert browser.requests() == [res.path.resolve().as_uri()] and tid
    assert browser.problems() == []

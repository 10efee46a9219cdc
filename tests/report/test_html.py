"""The HTML file without a browser: structure, escaping, CSP (parsed with html.parser)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from mast.report import write_report
from mast.report.html import page_data, script_json
from mast.store import Store
from mast.taxonomy import load
from tests.report.conftest import XSS, build_xss

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []
        self.content: list = []  # strings and child nodes, in document order

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag=None, **attrs):
        cls = attrs.pop("cls", None)
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in (n.attrs.get("class") or "").split():
                continue
            if all(n.attrs.get(k) == v for k, v in attrs.items()):
                yield n

    def find(self, tag=None, **attrs):
        return next(self.find_all(tag, **attrs), None)

    def all_text(self):
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)


class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [])
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        self.cur.content.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.content.append(data)


def parse(html: str) -> Node:
    t = Tree()
    t.feed(html)
    t.close()
    return t.root


@pytest.fixture
def small_report(small_store, tmp_path):
    path, ids = small_store
    with Store(path, read_only=True) as st:
        res = write_report(st, tmp_path / "out" / "index.html")
    return res, res.path.read_text(encoding="utf-8"), ids


def test_sections_and_heatmap_structure(small_report):
    res, html, _ = small_report
    doc = parse(html)
    for sid in ("overview", "exposure", "explorer", "agents", "coordination", "annotators", "glossary"):
        assert doc.find("section", id=sid) is not None, sid
    views = list(doc.find_all("div", cls="view"))
    assert [v.attrs["data-view"] for v in views] == res.context.views
    assert "hidden" not in views[0].attrs and all("hidden" in v.attrs for v in views[1:])
    n_modes = len(load().modes)
    rules = next(v for v in views if v.attrs["data-view"] == "rules")
    mode_table = rules.find("table", cls="heatmap")
    cells = list(mode_table.find_all("td", cls="heat"))
    assert len(cells) == n_modes * 2  # 2 systems × 14 modes
    # systems are rows, modes columns: a row per system, a column header per mode
    assert [th.all_text().split()[0] for th in mode_table.find_all("th", cls="sys")] == ["alpha", "beta"]
    assert len(list(mode_table.find_all("th", cls="mode-col"))) == n_modes
    assessed = [c for c in cells if "na" not in c.attrs["class"].split()]
    assert len(assessed) == 2  # rules looked at 1.3 and 3.3 on alpha only
    assert all(c.all_text().strip() == "not assessed" for c in cells if c not in assessed)
    texts = sorted(re.sub(r"\s+", " ", c.all_text()).strip() for c in assessed)
    # the interval first (Wilson 95%: 1/4 -> 4.6–69.9%, 2/4 -> 15.0–85.0%), then count and rate
    assert texts == ["15–85% 2/4 · 50%", "5–70% 1/4 · 25%"]
    # the colour is the interval's lower end (8 buckets over 0–1), and n = 4 < 10 is drawn faint
    assert sorted(c.attrs["class"] for c in assessed) == ["heat h1 thin", "heat h2 thin"]
    link = assessed[0].find("a", cls="cell-link")
    assert link.attrs["data-system"] == "alpha" and link.attrs["data-annotator"] == "rules"
    assert "95% interval" in assessed[0].attrs["title"]


def test_overview_cards_and_included_note(small_report):
    _, html, _ = small_report
    doc = parse(html)
    cards = {c.attrs["data-system"]: c for c in doc.find("section", id="overview").find_all("article", cls="card")}
    assert set(cards) == {"alpha", "beta"}
    alpha = re.sub(r"\s+", " ", cards["alpha"].all_text())
    assert "75% failed (3 of 4 with a known outcome)" in alpha
    assert "50% (2 of 4 assessed traces)" in alpha
    assert "not assessed" in re.sub(r"\s+", " ", cards["beta"].all_text())
    assert "All 6 traces are included" in doc.find("p", id="included").all_text()


def test_json_block_round_trips_and_cannot_break_out(small_report):
    res, html, _ = small_report
    doc = parse(html)
    block = doc.find("script", id="mast-data")
    assert block.attrs["type"] == "application/json"
    raw = block.all_text()
    assert json.loads(raw) == json.loads(json.dumps(page_data(res.context), default=str))
    assert not re.search(r"[<>&\u2028\u2029]", raw)


def test_script_json_escapes_everything_dangerous():
    s = script_json({"a": "</script><!--<script>&\u2028\u2029"})
    assert not re.search(r"[<>&\u2028\u2029]", s)
    assert json.loads(s) == {"a": "</script><!--<script>&\u2028\u2029"}


def test_csp_allows_exactly_our_script_and_style(small_report):
    _, html, _ = small_report
    doc = parse(html)
    meta = doc.find("meta", **{"http-equiv": "Content-Security-Policy"})
    policy = dict(p.strip().split(" ", 1) for p in meta.attrs["content"].split(";") if p.strip())
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"

    def h(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    scripts = [s for s in doc.find_all("script") if s.attrs.get("type") != "application/json"]
    assert len(scripts) == 1 and policy["script-src"] == h(scripts[0].all_text())
    styles = list(doc.find_all("style"))
    assert len(styles) == 1 and policy["style-src"] == h(styles[0].all_text())


def _external_refs(doc):
    for n in doc.iter():
        for k, v in n.attrs.items():
            if k in ("src", "href", "action", "srcset", "poster", "data") and v and not (
                    v.startswith("#") or v.startswith("data:")):
                yield n.tag, k, v


def test_no_external_reference_anywhere(small_report):
    _, html, _ = small_report
    assert list(_external_refs(parse(html))) == []


def test_xss_payloads_are_inert_text(tmp_path):
    path = tmp_path / "xss.duckdb"
    build_xss(path)
    with Store(path, read_only=True) as st:
        res = write_report(st, tmp_path / "xss.html")
    html = res.path.read_text(encoding="utf-8")
    doc = parse(html)
    # exactly our two script elements, no handlers, no javascript: URLs, no foreign elements
    assert len(list(doc.find_all("script"))) == 2
    for n in doc.iter():
        assert not any(k.startswith("on") for k in n.attrs), (n.tag, n.attrs)
        assert not any("javascript:" in (v or "") for k, v in n.attrs.items() if k in ("href", "src")), n.attrs
        assert n.tag not in ("iframe", "img", "svg", "a") or n.attrs.get("href", "#").startswith("#") \
            or n.tag == "svg", (n.tag, n.attrs)
    assert list(_external_refs(doc)) == []
    # the payload is there, as text: the system name shows escaped in the overview card
    card = doc.find("article", cls="card")
    assert XSS[0] in card.find("h3").all_text()
    assert "&lt;script&gt;" in html and XSS[0] not in html
    # and the JSON block carries it intact
    data = json.loads(doc.find("script", id="mast-data").all_text())
    assert data["traces"][0]["task"].startswith(XSS[0][:20])


def test_glossary_says_which_classifiers_can_see_each_mode(small_report):
    from mast.classify import create
    _, html, _ = small_report
    doc = parse(html)
    gloss = doc.find("section", id="glossary")
    sees = create("rules").covers(load())
    for dt in gloss.find_all("dt"):
        mode = dt.attrs["id"].removeprefix("mode-")
        dd = dt.parent.content[dt.parent.content.index(dt) + 1:]
        cov = next(n for n in dd if not isinstance(n, str) and n.tag == "dd").find("span", cls="cov").all_text()
        assert ("rules" in cov) == (mode in sees), (mode, cov)

"""The report's Coordination section: its figures, and its pictures drawn in a real Chromium.

The store holds the known-answer OTLP traces of ``tests/coordination_otlp.py`` (read by the
real importer): a coordinator with two parallel workers, a pipeline, one agent.
"""

from __future__ import annotations

import os

import pytest

from mast.coordination import amdahl
from mast.ingest.pipeline import ingest_paths
from mast.model import Annotation, Label
from mast.report import build_context, write_report
from mast.store import Store
from tests.coordination_otlp import PARALLEL, PIPELINE, SINGLE, write
from tests.report.cdp import Browser, find_chromium
from tests.report.test_html import parse


@pytest.fixture(scope="module")
def otlp_db(tmp_path_factory):
    d = tmp_path_factory.mktemp("coord")
    files = [write(d / "parallel.otlp.json", PARALLEL, "par", 1), write(d / "pipeline.otlp.json", PIPELINE, "pipe", 2),
             write(d / "single.otlp.json", SINGLE, "solo", 3)]
    with Store(d / "s.duckdb") as st:
        ingest_paths(st, files)
        ids = {r[0]: r[1] for r in st.fetchall("SELECT system, trace_id FROM traces")}
        # the pipeline fails by the rules; the humans say the parallel team did not
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=ids["pipe"]),
                              Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=ids["par"]),
                              Annotation(mode="1.3", label=Label.ABSENT, annotator="human", trace_id=ids["par"])])
    return d / "s.duckdb"


def test_section_figures_and_geometry(otlp_db):
    with Store(otlp_db, read_only=True) as st:
        values = build_context(st).sections["coordination"]
    res = values["analytics"]
    par = next(s for s in res.systems if s.system == "par")
    assert (par.topology, par.hub, par.serial_fraction) == ("centralized", "coordinator", pytest.approx(3 / 7))
    # exposure per topology counts the page's best-available labels: the human's "absent" wins
    assert {x.topology: (x.labelled, x.failing) for x in res.exposure_of(None)} == {
        "single": (0, 0), "centralized": (1, 0), "pipeline": (1, 1)}
    g = values["pictures"]["par"]["graph"]
    hub = [n for n in g.nodes if n.hub]
    assert [n.name for n in hub] == ["coordinator"] and (hub[0].x, hub[0].y) == (g.width / 2, g.height / 2)
    assert len(g.arcs) == 4 and {a.width for a in g.arcs} == {6.0}  # one message each: all the widest
    assert values["pictures"]["solo"]["graph"] is None
    c = values["pictures"]["par"]["curve"]
    assert (c.n, c.speedup, c.s) == (3, pytest.approx(1.4), pytest.approx(3 / 7))
    assert c.asymptote is not None and c.asymptote_label == "1/s = 2.33×"
    assert c.py > _y_on(c.ceiling, c.px)  # below the ceiling on screen (SVG y grows downwards)


def _y_on(points: str, x: float) -> float:
    pts = [tuple(map(float, p.split(","))) for p in points.split()]
    for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
        if x1 <= x <= x2:
            return y1 + (y2 - y1) * (x - x1) / (x2 - x1 or 1)
    raise AssertionError(f"{x} outside the curve")


def test_partial_shows_the_figures_and_escapes_names(otlp_db):
    with Store(otlp_db, read_only=True) as st:
        html = write_report(st, otlp_db.parent / "r.html").path.read_text()
    doc = parse(html)
    sec = doc.find("section", id="coordination")
    rows = {r.find("th").all_text().strip(): [td.all_text().strip() for td in r.find_all("td")]
            for r in sec.find("table", id="coord-figures").find("tbody").find_all("tr")}
    assert rows["par"][1:3] == ["centralized", "coordinator"]
    assert rows["par"][4:8] == ["1.40", "0.43", "1.40×", f"{amdahl(3 / 7, 3):.2f}× (3)"]
    assert rows["solo"][1:3] == ["single", "–"]
    assert len(list(sec.find_all("svg", cls="topology"))) == 2  # solo has no messages to draw
    assert len(list(sec.find_all("svg", cls="amdahl"))) == 3


@pytest.mark.browser
def test_pictures_render_in_chromium(otlp_db):
    binary = find_chromium()
    if binary is None:
        if os.environ.get("MAST_REQUIRE_BROWSER") == "1":
            pytest.fail("headless Chromium not found and MAST_REQUIRE_BROWSER=1")
        pytest.skip("headless Chromium not found")
    with Store(otlp_db, read_only=True) as st:
        path = write_report(st, otlp_db.parent / "b.html").path
    b = Browser(binary)
    try:
        b.navigate(path.resolve().as_uri())
        assert b.eval("document.documentElement.getAttribute('data-ready')") == "1", b.problems()
        b.eval("document.getElementById('coord-pictures').scrollIntoView()")
        card = "[...document.querySelectorAll('#coord-pictures .coord-card')].find(c => c.querySelector('h3').textContent === 'par')"
        drawn = b.eval(f"""(() => {{ const c = {card}; const svg = c.querySelector('svg.topology');
            const box = e => {{ const r = e.getBoundingClientRect(); return [r.width, r.height]; }};
            return {{svg: box(svg), hub: c.querySelector('circle.hub title').textContent,
                     hubAt: [svg.querySelector('circle.hub').getBBox().x + 11, svg.querySelector('circle.hub').getBBox().y + 11],
                     edges: [...svg.querySelectorAll('path.edge')].map(p => [p.getTotalLength() > 20, p.getAttribute('stroke-width')]),
                     labels: [...svg.querySelectorAll('text')].map(t => t.textContent).sort()}}; }})()""")
        assert drawn["svg"][0] > 200 and drawn["svg"][1] > 100  # laid out, not collapsed
        assert drawn["hub"] == "coordinator (hub)" and drawn["hubAt"] == [160, 120]
        assert drawn["edges"] == [[True, "6.0"]] * 4
        assert drawn["labels"] == ["coordinator", "worker_a", "worker_b"]
        # the measured point sits under the rendered ceiling at its N
        under = b.eval(f"""(() => {{ const svg = {card}.querySelector('svg.amdahl');
            const pt = svg.querySelector('circle.measured'); const line = svg.querySelector('polyline.ceiling');
            const x = pt.cx.baseVal.value, y = pt.cy.baseVal.value;
            const ps = [...line.points]; for (let i = 1; i < ps.length; i++) {{
              if (ps[i - 1].x <= x && x <= ps[i].x) {{ const t = (x - ps[i - 1].x) / (ps[i].x - ps[i - 1].x);
                return [line.getTotalLength() > 100, y > ps[i - 1].y + t * (ps[i].y - ps[i - 1].y)]; }} }}
            return null; }})()""")
        assert under == [True, True]
        assert b.problems() == []
    finally:
        b.close()

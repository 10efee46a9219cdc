"""`mast compare` and `mast check` on a real store whose answer is known by construction:
two versions of one system, human labels counted by hand, costs and outcomes set."""

from __future__ import annotations

import itertools
import json

import pytest

from mast.compare import (GateError, SelectionError, compare, fisher_exact, newcombe, parse_gate, parse_selection,
                          wilson)
from mast.model import Annotation, Label, Outcome, Step, StepKind, Trace
from mast.store import Store

# system -> (start date, cost per trace, solved traces, traces with 1.3, traces with 3.3)
PLAN = {"crew-v1": ("2026-10-15T09:00:00", 0.10, 10, 1, 2), "crew-v2": ("2026-11-05T09:00:00", 0.60, 5, 8, 2)}
N = 10


def _trace(system: str, i: int) -> Trace:
    start, cost, solved, with13, with33 = PLAN[system]
    # v1: one message in four steps; v2: two in four
    kinds = [StepKind.MESSAGE, StepKind.TOOL_CALL, StepKind.TOOL_RESULT, StepKind.LLM_CALL] if system == "crew-v1" \
        else [StepKind.MESSAGE, StepKind.MESSAGE, StepKind.TOOL_CALL, StepKind.TOOL_RESULT]
    steps = [Step(agent="a", content=f"{system} {i} step {k}", kind=kind, started_at=start,
                  cost_usd=cost if k == 0 else None, tokens_in=100 if k == 0 else None)
             for k, kind in enumerate(kinds)]
    t = Trace(system=system, framework="test", source_format="test", source_path=f"{system}.json", source_index=i,
              steps=steps, outcome=Outcome.SUCCESS if i < solved else Outcome.FAILURE, started_at=start,
              metadata={"source_id": f"{system}-{i}", "version": system[-2:]})
    t.annotations = [Annotation(mode="1.3", label=Label.PRESENT if i < with13 else Label.ABSENT, annotator="human"),
                     Annotation(mode="3.3", label=Label.PRESENT if i < with33 else Label.ABSENT, annotator="human")]
    if system == "crew-v2":  # a judge run that saw 1.3 on 3 of them: counts only when selected by run
        t.annotations.append(Annotation(mode="1.3", label=Label.PRESENT if i < 3 else Label.ABSENT,
                                        annotator="judge", run_id="judge-run-1"))
    return t.finalise()


@pytest.fixture
def store_path(db):
    with Store(db) as st:
        with st.transaction():
            st.write_traces([_trace(s, i) for s in PLAN for i in range(N)])
    return db


def test_compare_counts_interval_and_fisher(store_path):
    with Store(store_path) as st:
        comp = compare(st, parse_selection("system=crew-v1"), parse_selection("system=crew-v2"), "mast-v1")
    d = {m.mode: m for m in comp.modes}
    r = d["1.3"]
    assert (r.baseline.count, r.baseline.n, r.candidate.count, r.candidate.n) == (1, 10, 8, 10)
    assert r.diff == pytest.approx(0.7)
    assert r.ci == newcombe(1, 10, 8, 10) and r.ci[0] > 0 and r.rises
    assert r.p == pytest.approx(fisher_exact(1, 10, 8, 10)) and r.p < 0.01
    same = d["3.3"]
    assert same.diff == 0 and same.p == pytest.approx(1.0) and not same.rises
    assert d["1.1"].baseline.n == 0 and d["1.1"].diff is None and d["1.1"].p is None  # not assessed: no figure
    # any mode: v1 traces 0, 1 have a mode (1.3 on 0; 3.3 on 0 and 1) -> 2/10; v2: 8/10
    assert (comp.any_mode.baseline.count, comp.any_mode.candidate.count) == (2, 8)
    fb, fc = comp.baseline.figures, comp.candidate.figures
    assert (fb.traces, fb.steps_per_trace, fb.tokens_per_trace, fb.message_share) == (10, 4, 100, 0.25)
    assert fc.message_share == 0.5 and fb.cost_per_trace == pytest.approx(0.10)
    assert (fc.solved, fc.outcome_known) == (5, 10) and fc.cost_per_solved_task == pytest.approx(6.0 / 5)
    # the coordination analytics: one agent per trace; steps carry a start but no end, so no timing (never a 0)
    assert fb.topologies == fc.topologies == {"single": 10}
    assert (fb.timed_traces, fb.concurrency, fb.serial_fraction) == (0, None, None)


def test_selections_by_time_version_and_run(store_path):
    with Store(store_path) as st:
        by_time = compare(st, parse_selection("until=2026-11-01"), parse_selection("since=2026-11-01"), "mast-v1")
        by_version = compare(st, parse_selection("version=v1"), parse_selection("version=v2"), "mast-v1")
        by_run = compare(st, parse_selection("system=crew-v2"), parse_selection("run=judge-run-1"), "mast-v1")
        either = compare(st, parse_selection("all"), parse_selection("system=crew-v1,system=crew-v2"), "mast-v1")
    for c in (by_time, by_version):
        m = next(x for x in c.modes if x.mode == "1.3")
        assert (m.baseline.count, m.baseline.n, m.candidate.count, m.candidate.n) == (1, 10, 8, 10)
    # the human label wins the best-available view; run= counts that run's labels only
    m = next(x for x in by_run.modes if x.mode == "1.3")
    assert (m.baseline.count, m.candidate.count, m.candidate.n) == (8, 3, 10)
    assert next(x for x in by_run.modes if x.mode == "3.3").candidate.n == 0
    assert either.baseline.figures.traces == either.candidate.figures.traces == 20


@pytest.mark.parametrize("text", ["system", "colour=red", "since=yesterday", "system="])
def test_bad_selection_names_the_term(text):
    with pytest.raises(SelectionError, match="selection"):
        parse_selection(text)


def test_fisher_and_newcombe_against_references():
    scipy_stats = pytest.importorskip("scipy.stats")  # scikit-learn's own dependency: a reference only
    for k1, n1, k2, n2 in itertools.product(range(0, 7, 2), (6, 9), range(0, 5), (4, 11)):
        if k1 <= n1 and k2 <= n2:
            ref = scipy_stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
            assert fisher_exact(k1, n1, k2, n2) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # Newcombe (1998), Table II example (56/70 vs 48/80), method 10: 0.0524 to 0.3339 for p1 - p2
    lo, hi = newcombe(48, 80, 56, 70)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    assert wilson(0, 0) is None and newcombe(1, 0, 1, 2) is None


@pytest.mark.parametrize("text", ["1.3 >> 10%", "1.3 > ten", "9.9 > 10%", "cost per banana > 1", "1.3 > 150",
                                  "nothing rises", ""])
def test_malformed_gate_is_an_error_naming_it(text):
    with pytest.raises(GateError) as e:
        parse_gate(text, "mast-v1")
    assert repr(text) in str(e.value)


def test_gate_forms_parse():
    assert parse_gate("1.3 > 10%", "mast-v1").value == pytest.approx(0.10)
    assert parse_gate("cost per task > $0.50", "mast-v1").subject == "cost per task"
    assert parse_gate("ds3 >= 5%", "distsys-v1").subject == "DS3"
    assert parse_gate("any mode rises", "mast-v1").needs_baseline


def test_cli_compare_json_and_table(store_path, mast):
    res = mast("compare", "--baseline", "system=crew-v1", "--candidate", "system=crew-v2", "--json")
    doc = json.loads(res.stdout)
    row = next(m for m in doc["modes"] if m["mode"] == "1.3")
    assert row["baseline"]["present"] == 1 and row["candidate"]["present"] == 8 and row["rises"] is True
    assert doc["candidate"]["figures"]["cost_per_solved_task"] == pytest.approx(1.2)
    text = mast("compare", "--baseline", "system=crew-v1", "--candidate", "system=crew-v2").stdout
    assert "+70.0pp" in text and "rises" in text and "not assessed in either selection: 1.1, 1.2" in text


def test_cli_check_breaches_ok_and_malformed(store_path, mast):
    bad = mast("check", "--candidate", "system=crew-v2", "--fail-on", "1.3 > 50%", "--fail-on", "cost per task > 0.50",
               "--fail-on", "3.3 > 50%", expect=1)
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2 and "1.3 Step Repetition is 80.0% (8/10)" in lines[0] and "cost per task is 0.6" in lines[1]
    ok = mast("check", "--candidate", "system=crew-v1", "--fail-on", "1.3 > 50%", "--fail-on", "cost per task > 0.50")
    assert ok.stdout.startswith("OK: 2 gate(s) hold") and ok.stderr == ""
    rise = mast("check", "--baseline", "system=crew-v1", "--candidate", "system=crew-v2", "--fail-on", "any mode rises",
                expect=1)
    assert "1.3 Step Repetition rose from 10.0% to 80.0%" in rise.stderr and "3.3" not in rise.stderr
    mast("check", "--baseline", "system=crew-v1", "--candidate", "system=crew-v2", "--fail-on", "3.3 rises")
    assert "Give --baseline" in mast("check", "--fail-on", "1.3 rises", expect=2).stderr  # rises needs a baseline
    malformed = mast("check", "--fail-on", "1.3 >> 10%", expect=2)
    assert "'1.3 >> 10%'" in malformed.stderr
    # a gate nobody can check fails CI rather than pass on a blank
    blank = mast("check", "--candidate", "system=crew-v1", "--fail-on", "1.1 > 10%", expect=1)
    assert "not assessed" in blank.stderr
    as_json = json.loads(mast("check", "--candidate", "system=crew-v1", "--fail-on", "exposure > 30%", "--json").stdout)
    assert as_json["ok"] is True and as_json["gates"][0]["reason"].endswith("20.0% (2/10)")


# -- the report's comparison view and the other taxonomies' block ------------------------

def _report(store_path, tmp_path, **kw):
    from mast.report import write_report
    with Store(store_path, read_only=True) as st:
        return write_report(st, tmp_path / "index.html", **kw)


def test_report_comparison_only_when_asked(store_path, tmp_path):
    plain = _report(store_path, tmp_path).path.read_text()
    assert 'id="compare"' not in plain and 'href="#compare"' not in plain
    res = _report(store_path, tmp_path, comparison=("system=crew-v1", "system=crew-v2"))
    html = res.path.read_text()
    assert 'href="#compare"' in html
    row = html[html.index('<tr data-mode="1.3">'):]
    row = row[:row.index("</tr>")]
    assert "10.0% (1/10)" in row and "80.0% (8/10)" in row and "+70.0 pp" in row and "rises" in row
    assert "Not assessed in either selection: 1.1, 1.2" in html


def test_report_keeps_a_second_taxonomy_apart(store_path, tmp_path):
    with Store(store_path) as st:
        ids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces WHERE system = 'crew-v2' ORDER BY trace_id")]
        st.write_annotations([Annotation(mode="DS3", label=Label.PRESENT if i < 4 else Label.ABSENT, annotator="human",
                                         taxonomy="distsys-v1", trace_id=t) for i, t in enumerate(ids)])
    html = _report(store_path, tmp_path).path.read_text()
    block = html[html.index('<section id="taxonomies">'):]
    block = block[:block.index("</section>")]
    assert 'data-mode="distsys-v1:DS3"' in block and "4/10 (40.0%)" in block
    # nowhere else: the exposure heat map, the explorer's data and filters know mast-v1 ids only
    rest = html.replace(block, "")
    assert "DS3" not in rest
    ds = _report(store_path, tmp_path, taxonomy="distsys-v1").path.read_text()
    assert 'id="taxonomies"' in ds and 'data-mode="mast-v1:1.3"' in ds  # and the other way round


def test_cli_report_needs_both_selections(store_path, mast, tmp_path):
    bad = mast("report", "-o", tmp_path / "r.html", "--baseline", "system=crew-v1", expect=1)
    assert "--baseline and --candidate go together" in bad.stderr
    bad = mast("report", "-o", tmp_path / "r.html", "--baseline", "colour=red", "--candidate", "all", expect=1)
    assert "colour=red" in bad.stderr and not (tmp_path / "r.html").exists()


@pytest.mark.browser
def test_comparison_view_in_chromium(store_path, tmp_path):
    from tests.report.cdp import Browser, find_chromium
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium not found")
    path = _report(store_path, tmp_path, comparison=("system=crew-v1", "system=crew-v2")).path
    b = Browser(binary)
    try:
        b.navigate(path.resolve().as_uri())
        assert b.eval("document.documentElement.getAttribute('data-ready')") == "1", b.problems()
        assert b.problems() == [] and b.requests() == [path.resolve().as_uri()]
        rises = b.eval("[...document.querySelectorAll('#compare-modes tr .rises')]"
                       ".map(e => e.closest('tr').dataset.mode)")
        assert rises == ["1.3", "any"]
        assert b.eval("document.querySelector('#compare').getBoundingClientRect().height") > 100
        assert b.eval("[...document.querySelectorAll('nav.toc a')].map(a => a.textContent)").count("Comparison") == 1
    finally:
        b.close()


def test_one_check_gates_two_taxonomies(store_path, mast):
    with Store(store_path) as st:
        ids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces WHERE system = 'crew-v2' ORDER BY trace_id")]
        st.write_annotations([Annotation(mode="DS3", label=Label.PRESENT if i < 4 else Label.ABSENT, annotator="human",
                                         taxonomy="distsys-v1", trace_id=t) for i, t in enumerate(ids)])
    res = mast("check", "--candidate", "system=crew-v2", "--fail-on", "distsys-v1:DS3 > 30%", "--fail-on", "1.3 > 90%",
               expect=1)
    assert res.stderr.strip().splitlines() == ["FAIL distsys-v1:DS3 > 30%: DS3 Thundering herd is 40.0% (4/10)"]
    assert "no taxonomy 'nope-v1'" in mast("check", "--fail-on", "nope-v1:DS3 > 1%", expect=2).stderr
    assert "is not a mode of distsys-v1" in mast("check", "--fail-on", "distsys-v1:1.3 > 1%", expect=2).stderr

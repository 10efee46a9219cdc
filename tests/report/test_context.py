"""The report context: numbers worked out by hand on a small real store."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from mast.model import Annotation, Label, Outcome
from mast.report import Limits, build_context
from mast.report.labels import BEST, wilson
from mast.report.jsonblock import script_json
from mast.store import Store
from tests.report.conftest import add_signal, build_small, make_trace


def ctx_of(path, **kw):
    with Store(path, read_only=True) as st:
        return build_context(st, **kw)


def test_exposure_counts_and_not_assessed(small_store):
    path, ids = small_store
    ctx = ctx_of(path)
    rules = ctx.exposure["rules"]["alpha"]
    assert (rules["1.3"].count, rules["1.3"].n) == (2, 4)
    assert (rules["3.3"].count, rules["3.3"].n) == (1, 4)
    # rules said "unknown" for 2.4 and nothing for 1.1: both are not assessed, never 0%
    assert "2.4" not in rules and "1.1" not in rules
    human = ctx.exposure["human"]["alpha"]
    assert (human["2.4"].count, human["2.4"].n) == (1, 2)
    assert (human["1.1"].count, human["1.1"].n) == (0, 2)
    # beta: nobody labelled anything
    assert not ctx.exposure[BEST].get("beta")


def test_best_view_prefers_the_most_authoritative_label(small_store):
    path, _ = small_store
    best = ctx_of(path).exposure[BEST]["alpha"]
    # 1.3: human on a0 (present), a1 (absent: overrides rules' present), rules on a2, a3 (absent)
    assert (best["1.3"].count, best["1.3"].n) == (1, 4)
    # 3.3: human absent on a0, a1 (overrides rules' present on a0); rules absent on a2, a3
    assert (best["3.3"].count, best["3.3"].n) == (0, 4)
    # 2.4: only human assessed it
    assert (best["2.4"].count, best["2.4"].n) == (1, 2)


def test_overview_and_categories(small_store):
    path, _ = small_store
    ctx = ctx_of(path)
    by = {s.system: s for s in ctx.systems}
    a, b = by["alpha"], by["beta"]
    assert (a.traces, a.failure, a.success, a.unknown_outcome) == (4, 3, 1, 0)
    assert a.outcome_failure_rate == pytest.approx(0.75)
    assert (a.flagged, a.assessed) == (2, 4)  # a0 (1.3) and a1 (2.4) in the best view
    assert a.top_modes[0].mode == "2.4" and a.top_modes[0].rate == pytest.approx(0.5)
    assert b.assessed == 0 and b.flagged_rate is None and b.outcome_failure_rate is None
    # tokens: 6-step traces: planner 15 + coder 2×120 + tester 60 = 315 per trace
    assert a.tokens == 4 * 315 and a.cost_usd == pytest.approx(4 * (0.001 + 0.02 + 0.005))
    fc2 = ctx.category_exposure["human"]["alpha"]["FC2"]
    assert (fc2.count, fc2.n) == (1, 2)
    fc1_rules = ctx.category_exposure["rules"]["alpha"]["FC1"]
    assert (fc1_rules.count, fc1_rules.n) == (2, 4)
    assert "FC2" not in ctx.category_exposure["rules"]["alpha"]  # rules assessed no FC2 mode


def test_wilson_matches_known_values():
    lo, hi = wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    assert wilson(0, 0) is None


def test_agreement_pairs_match_mast_evaluate(small_store):
    from mast.evaluate import agreement as evaluate_agreement
    path, _ = small_store
    ctx = ctx_of(path)
    pair = next(p for p in ctx.agreement if (p.gold, p.pred) == ("human", "rules"))
    assert pair.traces == 2 and [m.mode for m in pair.modes] == ["1.3", "3.3"]
    with Store(path, read_only=True) as st:
        ref = {s.mode: s for s in evaluate_agreement(st, "human", "rules").modes if s.assessed}
    for m in pair.modes:
        r = ref[m.mode]
        assert (m.tp, m.fp, m.fn, m.tn) == (r.tp, r.fp, r.fn, r.tn)
        assert (m.f1 is None) == (r.f1 is None) and (m.f1 is None or m.f1 == pytest.approx(r.f1))
        assert (m.kappa is None) == (r.kappa is None) and (m.kappa is None or m.kappa == pytest.approx(r.kappa))


def test_agents_point_at_evidence_and_root_causes(small_store):
    path, _ = small_store
    rows = {r.agent: r for r in ctx_of(path).agents["alpha"]}
    # best view: a0 1.3 present by human (no evidence); rules' 1.3 on a1 is overridden by human absent.
    assert rows["coder"].root_causes == {"human": 1}
    assert rows["coder"].evidence == 0
    ctx = ctx_of(path, annotators=["rules"])
    rows = {r.agent: r for r in ctx.agents["alpha"]}
    # rules only: 1.3 on a0, a1 and 3.3 on a0, each citing steps 2 (tool) and 3 (tester)
    assert rows["tool"].evidence == 3 and rows["tester"].evidence == 3
    assert "coder" not in rows  # the human root cause is filtered out with the annotator


def test_filters_by_system_and_annotator(small_store):
    path, _ = small_store
    ctx = ctx_of(path, systems=["beta"])
    assert [s.system for s in ctx.systems] == ["beta"] and ctx.explorer.total_traces == 2
    assert ctx.views == [BEST] and ctx.notes  # says nothing is labelled
    ctx = ctx_of(path, annotators=["human"])
    assert [a.name for a in ctx.annotators] == ["human"] and "rules" not in ctx.exposure
    assert ctx_of(path, systems=["nope"]).notes[-1].startswith("No traces for system")


def test_explorer_is_bounded_and_picks_labelled_examples_first(small_store):
    path, ids = small_store
    full = ctx_of(path)
    assert full.explorer.complete and full.explorer.listed == 6
    ctx = ctx_of(path, limits=Limits(max_traces=2, per_cell=1, per_annotator_cell=0, per_system_root_cause=0))
    e = ctx.explorer
    assert (e.total_traces, e.listed) == (6, 2) and not e.complete
    # one example per present cell of the best view: a0 (1.3) and a1 (2.4)
    assert {t["id"] for t in e.traces} == {ids["a0"], ids["a1"]}
    t0 = next(t for t in e.traces if t["id"] == ids["a0"])
    assert ["1.3", "human"] == t0["tags"][0][:2] and t0["roots"][0][1:3] == ["coder", 2]
    # summaries still cover everything
    assert sum(s.traces for s in ctx.systems) == 6


def test_detail_budget_and_long_trace_elision(tmp_path):
    path = tmp_path / "long.duckdb"
    long = make_trace("gamma", 0, Outcome.FAILURE, n=400)
    short = make_trace("gamma", 1, Outcome.FAILURE, n=4)
    with Store(path) as st:
        with st.transaction():
            st.write_traces([long, short])
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="rules",
                                         trace_id=long.trace_id, evidence_steps=[250])])
    ctx = ctx_of(path, limits=Limits(max_steps=100, head_steps=20, tail_steps=10, step_chars=10))
    d = ctx.explorer.details[long.trace_id]
    kept = [s[0] for s in d["steps"]]
    assert kept[:20] == list(range(20)) and kept[-10:] == list(range(390, 400))
    assert set(range(248, 253)) <= set(kept) and 100 not in kept and d["n"] == 400
    assert ctx.explorer.elided_traces == 1 and ctx.explorer.truncated_steps > 0
    assert all(len(s[5] or "") <= 10 for s in d["steps"])
    # a budget that fits only the first (labelled) trace: it keeps its steps, the other is listed only
    lim = Limits(max_steps=100, head_steps=20, tail_steps=10, step_chars=10)
    need = len(script_json(d).encode())
    small = ctx_of(path, limits=replace(lim, detail_bytes=need + 5))
    assert small.explorer.listed == 2 and small.explorer.detailed == 1
    assert [t["detail"] for t in small.explorer.traces] == [True, False]
    assert ctx_of(path, limits=replace(lim, detail_bytes=need - 1)).explorer.details.keys() == {short.trace_id}
    # the list has a budget too: rows beyond it are left out, least relevant first
    one = ctx_of(path, limits=replace(lim, list_bytes=len(script_json(ctx.explorer.traces[0]).encode()) + 1))
    assert [t["id"] for t in one.explorer.traces] == [long.trace_id] and one.explorer.detailed == 1


def test_empty_store_builds(tmp_path):
    path = tmp_path / "empty.duckdb"
    Store(path).close()
    ctx = ctx_of(path)
    assert ctx.systems == [] and ctx.explorer.listed == 0 and ctx.notes
    assert not math.isnan(ctx.totals["traces"])


def test_same_store_same_context(tmp_path):
    path = tmp_path / "s.duckdb"
    build_small(path)
    a, b = ctx_of(path), ctx_of(path)
    assert a.explorer.traces == b.explorer.traces and a.exposure == b.exposure


def test_the_newest_of_appended_labels_counts_once(small_store):
    path, ids = small_store
    with Store(path) as st:  # an `--action append` run: a second, newer row for (a2, 1.3, rules)
        st.write_annotations([Annotation(mode="1.3", label=Label.PRESENT, annotator="rules", trace_id=ids["a2"],
                                         evidence_steps=[4])])
    c = ctx_of(path).exposure["rules"]["alpha"]["1.3"]
    assert (c.count, c.n) == (3, 4)
    with Store(path) as st:  # and back: the newest says absent again
        st.write_annotations([Annotation(mode="1.3", label=Label.ABSENT, annotator="rules", trace_id=ids["a2"])])
    c = ctx_of(path).exposure["rules"]["alpha"]["1.3"]
    assert (c.count, c.n) == (2, 4)


def test_a_signal_is_shown_per_trace_and_counted_nowhere(small_store):
    path, ids = small_store
    with Store(path, read_only=True) as st:
        before = build_context(st)
    add_signal(path, ids["a2"])
    with Store(path, read_only=True) as st:
        ctx = build_context(st)
    row = next(t for t in ctx.explorer.traces if t["id"] == ids["a2"])
    assert row["signals"] == [["1.5", "rules:signal", 0.5, [4], "the task was declared done at step 4 "
                                                                  "[termination_unaware]"]]
    assert not [g for g in row["tags"] if g[0] == "1.5"]
    assert all(not t["signals"] for t in ctx.explorer.traces if t["id"] != ids["a2"])
    # exposure, annotators and agreement are those of the store without the signal
    assert ctx.exposure == before.exposure and ctx.views == before.views
    assert "rules:signal" not in [a.name for a in ctx.annotators]

"""Agreement metrics against hand-computed values on a tiny store."""

from __future__ import annotations

import pytest

from mast.errors import UsageError
from mast.evaluate import agreement, attribution_agreement
from mast.model import Annotation, Attribution, Label, Step, Trace
from mast.store import Store

P, A = Label.PRESENT, Label.ABSENT


def _trace(name, agents):
    return Trace(system="s", framework="f", source_format="test", source_path=name, source_index=0,
                 steps=[Step(agent=a, content=f"{name} {i}") for i, a in enumerate(agents)],
                 metadata={"source_id": name, "subset": "hc" if name != "t2" else "ag"})


@pytest.fixture
def store(db):
    ts = [_trace("t1", ["A", "B", "A", "B"]), _trace("t2", ["A", "B", "C", "A", "B"]),
          _trace("t3", ["A", "B"]), _trace("t4", ["A"]), _trace("t5", ["A"])]
    st = Store(db)
    with st.transaction():
        st.write_traces(ts)
    tid = {t.metadata["source_id"]: t.trace_id for t in ts}

    def ann(who, t, mode, lab, run=None):
        return Annotation(mode=mode, label=lab, annotator=who, trace_id=tid[t], run_id=run)

    gold = {"1.3": [P, P, A, A], "3.3": [P, A, A, A], "1.1": [P, A, P, A]}
    pred = {"1.3": [P, A, P, A], "3.3": [P, A, A, P]}
    rows = []
    for mode, labs in gold.items():
        rows += [ann("g", f"t{i + 1}", mode, lab) for i, lab in enumerate(labs)]
    rows.append(ann("g", "t5", "1.3", P))  # only gold labelled t5: not scored
    # an older pred row that the newer one (written later) supersedes
    st.write_annotations([ann("p", "t1", "1.3", A, run="r0")])
    for mode, labs in pred.items():
        rows += [ann("p", f"t{i + 1}", mode, lab, run="r1") for i, lab in enumerate(labs)]
    st.write_annotations(rows)
    st.write_attributions([
        Attribution("human", "A", 2, trace_id=tid["t1"]), Attribution("human", "B", 1, trace_id=tid["t2"]),
        Attribution("human", "A", 0, trace_id=tid["t3"]),
        Attribution("rules", "a", 2, trace_id=tid["t1"]), Attribution("rules", "C", 2, trace_id=tid["t2"]),
    ])
    yield st
    st.close()


def test_per_mode_metrics_match_hand_computation(store):
    res = agreement(store, "g", "p")
    assert res.traces == 4
    by = {m.mode: m for m in res.modes}
    m13 = by["1.3"]  # gold 1100, pred 1010: tp fp fn tn = 1 1 1 1
    assert (m13.tp, m13.fp, m13.fn, m13.tn, m13.support) == (1, 1, 1, 1, 2)
    assert m13.precision == pytest.approx(0.5) and m13.recall == pytest.approx(0.5)
    assert m13.f1 == pytest.approx(0.5) and m13.kappa == pytest.approx(0.0)
    m33 = by["3.3"]  # gold 1000, pred 1001: po .75, pe .25*.5+.75*.5 = .5, kappa .5
    assert m33.precision == pytest.approx(0.5) and m33.recall == pytest.approx(1.0)
    assert m33.f1 == pytest.approx(2 / 3) and m33.kappa == pytest.approx(0.5)
    assert not by["1.1"].assessed and "1.1" in res.not_assessed  # gold labelled it, pred did not
    assert res.macro["precision"] == pytest.approx(0.5)
    assert res.macro["recall"] == pytest.approx(0.75)
    assert res.macro["f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert res.macro["kappa"] == pytest.approx(0.25)


def test_unknown_annotator_is_a_usage_error(store):
    with pytest.raises(UsageError, match="nobody"):
        agreement(store, "g", "nobody")


def test_attribution_accuracy_and_random_baseline(store):
    res = attribution_agreement(store, "human", "rules", tolerance=1)
    o = res.overall
    assert (o.gold_traces, o.both) == (3, 2)
    assert o.coverage == pytest.approx(2 / 3)
    assert o.agent_accuracy == pytest.approx(0.5)      # t1 'a' == 'A' (case-insensitive), t2 C != B
    assert o.step_accuracy == pytest.approx(0.5)       # t1 2 == 2, t2 2 != 1
    assert o.step_accuracy_within_k == pytest.approx(1.0)
    assert o.agent_accuracy_all == pytest.approx(1 / 3) and o.step_accuracy_all == pytest.approx(1 / 3)
    assert o.random_agent == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert o.random_step == pytest.approx((1 / 4 + 1 / 5) / 2)
    assert o.random_step_within_k == pytest.approx((3 / 4 + 3 / 5) / 2)
    groups = {g.group: g for g in res.groups}
    assert groups["ag"].both == 1 and groups["ag"].agent_accuracy == 0.0
    assert groups["hc"].gold_traces == 2 and groups["hc"].agent_accuracy == 1.0
    exact = attribution_agreement(store, "human", "rules", tolerance=0).overall
    assert exact.step_accuracy_within_k == pytest.approx(0.5)

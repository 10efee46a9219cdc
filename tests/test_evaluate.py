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


def test_mode_baselines_beside_every_mode_and_the_macro(store):
    res = agreement(store, "g", "p")
    by = {m.mode: m for m in res.modes}
    b13 = by["1.3"].baselines  # gold 1100: base rate .5
    assert by["1.3"].base_rate == pytest.approx(0.5)
    assert b13["always_present"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "kappa": 0.0})
    assert b13["always_absent"]["precision"] is None
    assert (b13["always_absent"]["recall"], b13["always_absent"]["f1"], b13["always_absent"]["kappa"]) == (0, 0, 0)
    # random at the base rate, in expectation: P = R = F1 = base rate, kappa 0
    assert b13["random"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "kappa": 0.0})
    b33 = by["3.3"].baselines  # gold 1000: base rate .25
    assert b33["always_present"] == pytest.approx({"precision": 0.25, "recall": 1.0, "f1": 0.4, "kappa": 0.0})
    assert b33["random"] == pytest.approx({"precision": 0.25, "recall": 0.25, "f1": 0.25, "kappa": 0.0})
    assert by["1.1"].baselines == {}  # not assessed: no floor either
    mb = res.macro_baselines
    assert mb["always_present"]["f1"] == pytest.approx((2 / 3 + 0.4) / 2)
    assert mb["random"]["f1"] == pytest.approx((0.5 + 0.25) / 2)
    assert mb["always_absent"]["precision"] is None
    d = res.to_dict()
    assert d["modes"][0]["baselines"] == {} and set(d["macro_baselines"]) == {"always_present", "always_absent", "random"}


def test_random_baseline_is_the_expectation_of_random_labels(store):
    """The expected table's figures against labels really drawn at the base rate (many draws)."""
    import random
    m = {s.mode: s for s in agreement(store, "g", "p").modes}["3.3"]
    rng = random.Random(0)
    gold = [1, 0, 0, 0]
    tp = fp = 0
    draws = 20000
    for _ in range(draws):
        pred = [rng.random() < 0.25 for _ in gold]
        tp += sum(p and g for p, g in zip(pred, gold))
        fp += sum(p and not g for p, g in zip(pred, gold))
    assert tp / draws / 1 == pytest.approx(m.baselines["random"]["recall"], abs=0.01)  # expected recall
    assert tp / (tp + fp) == pytest.approx(m.baselines["random"]["precision"], abs=0.01)


def test_label_calibration_bins_brier_and_ece(store):
    tid = {r[1]: r[0] for r in store.fetchall("SELECT trace_id, json_extract_string(metadata, '$.source_id') FROM traces")}
    # (label, confidence) per trace on 1.3, gold 1100: P(present) .9 .8 .4 .7 against 1 1 0 0
    rows = [("t1", P, 0.9), ("t2", P, 0.8), ("t3", A, 0.6), ("t4", P, 0.7)]
    store.write_annotations([Annotation(mode="1.3", label=lab, annotator="c", trace_id=tid[t], confidence=c)
                             for t, lab, c in rows] + [Annotation(mode="3.3", label=A, annotator="c", trace_id=tid["t1"])])
    cal = agreement(store, "g", "c").calibration
    o = cal["overall"]
    assert o["n"] == 4 and cal["without_confidence"] == 1
    assert o["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.49) / 4)
    assert o["ece"] == pytest.approx((0.1 + 0.2 + 0.4 + 0.7) / 4)
    by_bin = {b["lo"]: b for b in o["bins"] if b["n"]}
    assert set(by_bin) == {0.4, 0.7, 0.8, 0.9} and by_bin[0.4]["observed"] == 0.0 and by_bin[0.9]["observed"] == 1.0
    assert len(o["bins"]) == 10 and sum(b["n"] for b in o["bins"]) == 4
    assert cal["modes"]["1.3"]["n"] == 4


def test_attribution_baselines_on_the_same_traces(store):
    o = attribution_agreement(store, "human", "rules").overall
    b = o.baselines
    assert set(b) == {"uniform_random", "majority_agent", "last_step", "first_error_step"}
    # gold t1 A@2, t2 B@1, t3 A@0; last steps B@3, B@4, B@1
    assert b["last_step"]["agent_accuracy_all"] == pytest.approx(1 / 3) and b["last_step"]["step_accuracy_all"] == 0
    assert b["last_step"]["agent_accuracy"] == pytest.approx(0.5)  # on t1, t2 (both attributed)
    # majority culprit of system s: A (2 of 3), at its first step (0)
    assert b["majority_agent"]["agent_accuracy_all"] == pytest.approx(2 / 3)
    assert b["majority_agent"]["step_accuracy_all"] == pytest.approx(1 / 3)
    assert b["first_error_step"]["agent_accuracy_all"] == 0  # no step flagged as an error: no prediction
    assert b["uniform_random"]["agent_accuracy"] == pytest.approx(o.random_agent)
    assert b["uniform_random"]["step_accuracy_all"] == pytest.approx((1 / 4 + 1 / 5 + 1 / 2) / 3)
    assert o.calibration["without_confidence"] == 2 and o.calibration["step"]["n"] == 0

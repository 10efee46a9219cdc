"""The one agreement module: the label that counts, and metrics from 2×2 counts (checked against scikit-learn)."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_recall_fscore_support

from mast.agreement import ModeAgreement, authority_rank, compare_all, compare_pair, latest_labels
from mast.model import Annotation, Label, Step, Trace
from mast.store import Store


def counts(gold, pred) -> ModeAgreement:
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum((not g) and p for g, p in zip(gold, pred))
    fn = sum(g and not p for g, p in zip(gold, pred))
    return ModeAgreement("g", "p", "1.1", len(gold), tp, fp, fn, len(gold) - tp - fp - fn)


@pytest.mark.parametrize("gold,pred", [
    ([1, 0, 1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1, 1, 0]),
    ([1, 1, 0, 0], [0, 0, 1, 1]),
    ([0, 0, 0, 1], [0, 0, 0, 0]),
])
def test_kappa_and_f1_equal_scikit_learn(gold, pred):
    a = counts(gold, pred)
    assert a.kappa == pytest.approx(cohen_kappa_score(gold, pred))
    assert a.f1 == pytest.approx(f1_score(gold, pred, zero_division=0))


@pytest.mark.parametrize("gold,pred", [
    ([1, 0, 1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1, 1, 0]),
    ([1, 1, 0, 0], [0, 0, 1, 1]),
    ([0, 0, 0, 1], [0, 0, 0, 0]),    # no predicted positive: precision undefined
    ([0, 0, 0, 0], [0, 1, 0, 0]),    # no gold positive: recall undefined
    ([1, 1, 1], [0, 0, 0]),          # both constant, opposite: κ is 0, as scikit-learn says
    ([0, 0, 0], [0, 0, 0]),          # both constant, the same: κ and F1 undefined
    ([1, 1], [1, 1]),
])
@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn warns on the undefined cases we test
def test_every_metric_is_scikit_learns_or_none_where_it_is_undefined(gold, pred):
    a = counts(gold, pred)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="binary", zero_division=math.nan)
    k = cohen_kappa_score(gold, pred)

    def same(ours, theirs):
        return ours is None if math.isnan(theirs) else ours == pytest.approx(theirs)

    assert same(a.precision, p) and same(a.recall, r) and same(a.kappa, k)
    assert (a.f1 is None) == (sum(gold) + sum(pred) == 0)
    assert a.f1 is None or a.f1 == pytest.approx(f1_score(gold, pred, zero_division=0))
    assert (a.support, a.predicted, a.assessed) == (sum(gold), sum(pred), True)


def test_authority_order():
    names = ["rules", "judge:gpt", "learned:attribution@la1-x", "human:ann_1", "x", "community:lint", "human",
             "cascade:gpt"]
    assert sorted(names, key=authority_rank) == ["human", "human:ann_1", "community:lint", "judge:gpt",
                                                 "cascade:gpt", "learned:attribution@la1-x", "rules", "x"]


@pytest.fixture
def store(db):
    ts = [Trace(system=sys_, framework="f", source_format="test", source_path=f"t{i}", source_index=0,
                steps=[Step(agent="a", content=f"t{i}")]) for i, sys_ in enumerate(["s", "s", None])]
    st = Store(db)
    with st.transaction():
        st.write_traces(ts)
    ids = [t.trace_id for t in ts]
    P, A, U = Label.PRESENT, Label.ABSENT, Label.UNKNOWN

    def ann(who, i, mode, lab):
        return Annotation(mode=mode, label=lab, annotator=who, trace_id=ids[i])

    st.write_annotations([ann("human", 0, "1.3", P), ann("human", 1, "1.3", A), ann("human", 2, "1.3", P),
                          ann("rules", 0, "1.3", A), ann("rules", 1, "1.3", A), ann("rules", 2, "1.3", U),
                          ann("human", 1, "2.1", P)])
    st.write_annotations([ann("rules", 0, "1.3", P)])  # appended later: the newest row counts
    yield st, ids
    st.close()


def test_latest_labels_keeps_the_newest_and_drops_unknown(store):
    st, ids = store
    sql, params = latest_labels(st, "mast-v1")
    rows = {(r[0], r[1], r[2]): r[3] for r in st.fetchall(f"SELECT trace_id, annotator, mode, present, system FROM ({sql})", params)}
    assert rows[(ids[0], "rules", "1.3")] is True
    assert (ids[2], "rules", "1.3") not in rows  # unknown is not an assessment
    sql, params = latest_labels(st, "mast-v1", systems=["(unknown)"], annotators=["human"])
    assert st.fetchall(f"SELECT trace_id, system FROM ({sql})", params) == [(ids[2], "(unknown)")]


def test_compare_pair_and_all_pairs(store):
    st, ids = store
    sql, params = latest_labels(st, "mast-v1")
    pair = compare_pair(st, sql, params, "human", "rules")
    assert pair.traces == 2 and [m.mode for m in pair.modes] == ["1.3"]
    m = pair.modes[0]
    assert (m.n, m.tp, m.fp, m.fn, m.tn) == (2, 1, 0, 0, 1) and m.kappa == pytest.approx(1.0)
    # reversed roles are allowed, and an annotator against itself agrees perfectly
    assert compare_pair(st, sql, params, "rules", "human").modes[0].fn == 0
    self_pair = compare_pair(st, sql, params, "human", "human")
    assert self_pair.traces == 3 and all(x.f1 in (None, 1.0) for x in self_pair.modes)
    # every pair: the more authoritative annotator is the reference
    assert [(a.gold, a.pred) for a in compare_all(st, sql, params)] == [("human", "rules")]

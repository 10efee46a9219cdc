"""The human review loop without a browser: review sets, labels files, import, evaluate.

Real stores in a temp dir (tests/report/conftest.py's ``build_small``, plus classifier
labels written through the Store API).  The browser half is tests/report/test_review_page.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from mast import evaluate as E
from mast.errors import IngestError, UsageError
from mast.evaluate import BOOTSTRAP, _BOOT_CHUNK, agreement
from mast.model import Annotation, Label
from mast.review import import_labels, is_labels_file, load_review_set, sample_for_review, seeded_order
from mast.store import Store
from mast.taxonomy import load
from tests.conftest import unwrapped
from tests.report.conftest import build_small, make_trace

MODES = load().mode_ids


def with_classifiers(path: Path) -> dict[str, str]:
    """build_small, plus a judge that disagrees with the rules on a2 (1.3) and is unsure on a3 (3.3)."""
    ids = build_small(path)
    with Store(path) as st:
        st.write_annotations([
            Annotation(mode="1.3", label=Label.PRESENT, annotator="judge:m", trace_id=ids["a2"], confidence=0.95),
            Annotation(mode="3.3", label=Label.ABSENT, annotator="judge:m", trace_id=ids["a3"], confidence=0.55),
            Annotation(mode="1.3", label=Label.PRESENT, annotator="judge:m", trace_id=ids["a0"], confidence=0.99),
        ])
    return ids


def labels_doc(rs_id: str, reviewer: str, labels: list[dict], **over) -> dict:
    return {"format": "mast-review-labels", "version": 1, "review_set": rs_id, "reviewer": reviewer,
            "taxonomy": "mast-v1", "labels": labels} | over


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def counts(path: Path) -> tuple[int, int]:
    with Store(path, read_only=True) as st:
        return st.fetchall("SELECT count(*), count(*) FILTER (WHERE annotator LIKE 'human:%') FROM annotations")[0]


# -- sampling ----------------------------------------------------------------------------
def test_uncertain_puts_disagreement_first_then_the_least_sure(tmp_path):
    ids = with_classifiers(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as st:
        rs = sample_for_review(st, 3, strategy="uncertain")
    got = [t.trace_id for t in rs.traces]
    # a2: rules say 1.3 absent, the judge present (1 + the judge's 0.95 -> 0.1); a3: 0.55 -> 0.9
    assert got[:2] == [ids["a2"], ids["a3"]]
    assert "disagree on 1 mode(s): 1.3" in rs.traces[0].reason
    assert "least sure on 3.3 (confidence 0.55)" in rs.traces[1].reason


def test_stratified_reaches_every_system_and_mode_before_repeating(tmp_path):
    ids = with_classifiers(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as st:
        rs = sample_for_review(st, 4, strategy="stratified")
    strata = [t.reason for t in rs.traces]
    # strata: alpha·1.3 (best available: the judge on a0, a2; rules on a1), alpha·3.3 (a0), alpha·none, beta·none
    assert strata == ["stratum alpha · mode 1.3 present", "stratum alpha · mode 3.3 present",
                      "stratum alpha · no mode present", "stratum beta · no mode present"]
    assert len({t.trace_id for t in rs.traces}) == 4
    assert {t.system for t in rs.traces} == {"alpha", "beta"}


def test_random_is_seeded_and_the_set_is_recorded_in_order(tmp_path):
    ids = build_small(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as st:
        a = sample_for_review(st, 3, strategy="random", seed=7)
        b = sample_for_review(st, 3, strategy="random", seed=7, include_reviewed=True)
        c = sample_for_review(st, 6, strategy="random", seed=8, systems=["beta"], include_reviewed=True)
        stored = load_review_set(st, a.review_set)
    assert a.review_set != b.review_set
    assert [t.trace_id for t in a.traces] == [t.trace_id for t in b.traces] == seeded_order(list(ids.values()), 7)[:3]
    assert [t.trace_id for t in stored.traces] == [t.trace_id for t in a.traces]
    assert (stored.strategy, stored.seed, stored.requested, stored.taxonomy) == ("random", 7, 3, "mast-v1")
    assert sorted(t.trace_id for t in c.traces) == sorted([ids["b0"], ids["b1"]])  # fewer than asked: all there are


def test_a_second_sample_goes_on_to_traces_not_yet_in_a_review_set(tmp_path):
    ids = build_small(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as st:
        first = sample_for_review(st, 4, strategy="random")
        second = sample_for_review(st, 4, strategy="random")
        with pytest.raises(UsageError, match="every trace is already in a review set") as e:
            sample_for_review(st, 1, strategy="random")
        assert "--include-reviewed" in e.value.hint
        again = sample_for_review(st, 6, strategy="uncertain", include_reviewed=True)
    a, b = {t.trace_id for t in first.traces}, {t.trace_id for t in second.traces}
    assert not a & b and a | b == set(ids.values()) and len(b) == 2
    assert {t.trace_id for t in again.traces} == set(ids.values())


def test_sample_refuses_what_it_cannot_do(tmp_path):
    build_small(tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as st:
        with pytest.raises(UsageError, match="unknown review strategy"):
            sample_for_review(st, 3, strategy="hardest")
        with pytest.raises(UsageError, match="no traces of system"):
            sample_for_review(st, 3, systems=["nope"])
        assert st.fetchall("SELECT count(*) FROM review_sets")[0][0] == 0


def test_sample_json_prints_the_review_set_and_its_traces(mast, db):
    ids = with_classifiers(db)
    res = mast("sample", "--for-review", 2, "--json")
    out = json.loads(res.stdout)
    assert out["review_set"].startswith("rs-")
    assert [t["trace_id"] for t in out["traces"]] == [ids["a2"], ids["a3"]]
    assert set(out["traces"][0]) >= {"trace_id", "system", "reason", "position"}
    sets = json.loads(mast("labels", "sets", "--json").stdout)
    assert [(s["review_set"], s["traces"]) for s in sets] == [(out["review_set"], 2)]


# -- labels files --------------------------------------------------------------------------
@pytest.fixture
def reviewed(tmp_path):
    """A store with a review set of the four alpha traces and a good labels file for it."""
    path = tmp_path / "s.duckdb"
    ids = with_classifiers(path)
    with Store(path) as st:
        rs = sample_for_review(st, 4, strategy="random", systems=["alpha"])
    labels = [{"trace_id": ids["a0"], "mode": "1.3", "label": "present", "evidence_steps": [2, 3],
               "note": "repeats the call; api_key=abcd1234efgh in the log"},
              {"trace_id": ids["a0"], "mode": "3.3", "label": "absent", "evidence_steps": [], "note": None},
              {"trace_id": ids["a1"], "mode": "1.3", "label": "unsure", "evidence_steps": [], "note": "hard to say"},
              {"trace_id": ids["a2"], "mode": "1.3", "label": "absent", "evidence_steps": [], "note": None},
              {"trace_id": ids["a3"], "mode": "1.3", "label": "absent"}]
    return path, ids, rs.review_set, labels


def test_a_labels_file_is_stored_as_the_reviewer_unsure_as_unknown_notes_redacted(reviewed, tmp_path):
    path, ids, rs_id, labels = reviewed
    f = write(tmp_path / "labels.json", labels_doc(rs_id, "alice", labels))
    assert is_labels_file(f)
    with Store(path) as st:
        res = import_labels(st, f)
        rows = st.fetchall("""SELECT trace_id, mode, label, evidence_steps, rationale, confidence FROM annotations
                              WHERE annotator = 'human:alice' ORDER BY trace_id, mode""")
    assert (res.labels, res.present, res.absent, res.unsure, res.replaced) == (5, 1, 3, 1, 0)
    by = {(r[0], r[1]): r[2:] for r in rows}
    assert by[(ids["a0"], "1.3")][:2] == ("present", [2, 3])
    assert "[REDACTED]" in by[(ids["a0"], "1.3")][2] and "abcd1234efgh" not in by[(ids["a0"], "1.3")][2]
    assert by[(ids["a1"], "1.3")][0] == "unknown" and by[(ids["a1"], "1.3")][2] == "hard to say"
    assert all(r[5] is None for r in rows)


def test_reimport_replaces_one_reviewer_and_keeps_another(reviewed, tmp_path):
    path, ids, rs_id, labels = reviewed
    with Store(path) as st:
        import_labels(st, write(tmp_path / "a.json", labels_doc(rs_id, "alice", labels)))
        flipped = [dict(r, label="present") if r["mode"] == "1.3" else r for r in labels]
        import_labels(st, write(tmp_path / "b.json", labels_doc(rs_id, "bob", flipped)))
        again = import_labels(st, write(tmp_path / "a2.json", labels_doc(rs_id, "alice", labels[:2])))
        rows = st.fetchall("SELECT annotator, count(*) FROM annotations WHERE annotator LIKE 'human:%' GROUP BY 1 ORDER BY 1")
    assert again.replaced == 5
    assert rows == [("human:alice", 2), ("human:bob", 5)]


BAD = {
    "truncated": (lambda d: json.dumps(d)[:-40], "truncated"),
    "not a labels file": (lambda d: {**d, "format": "something-else"}, "not a mast-review-labels file"),
    "future version": (lambda d: {**d, "version": 2}, "version 2"),
    "another store's review set": (lambda d: {**d, "review_set": "rs-000000000000"}, "is not in this store"),
    "another taxonomy": (lambda d: {**d, "taxonomy": "mast-draft"}, "is not the review set's"),
    "bad reviewer": (lambda d: {**d, "reviewer": "a b"}, "is not a name"),
    "unknown mode": (lambda d: {**d, "labels": d["labels"][:1] + [{**d["labels"][1], "mode": "9.9"}]},
                     "labels[1] (trace t1-"),
    "trace not in the set": (lambda d: {**d, "labels": [{**d["labels"][0], "trace_id": "t1-nope"}]},
                             "labels[0]: trace 't1-nope' is not in review set"),
    "evidence out of range": (lambda d: {**d, "labels": [{**d["labels"][0], "evidence_steps": [2, 6, 99]}]},
                              "evidence step(s) 6, 99 out of range: the trace has steps 0–5"),
    "duplicate": (lambda d: {**d, "labels": d["labels"] + [d["labels"][0]]}, "already labelled in labels[0]"),
    "bad label": (lambda d: {**d, "labels": [{**d["labels"][0], "label": "maybe"}]}, "label 'maybe' is not one of"),
    "unknown field": (lambda d: {**d, "labels": [{**d["labels"][0], "confidence": 1}]}, "unknown field(s): confidence"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_labels_file_names_the_record_and_stores_nothing(reviewed, tmp_path, case):
    path, ids, rs_id, labels = reviewed
    edit, expected = BAD[case]
    f = write(tmp_path / "bad.json", edit(labels_doc(rs_id, "alice", labels)))
    before = counts(path)
    with Store(path) as st:
        with pytest.raises(IngestError) as e:
            import_labels(st, f)
    assert str(f) in str(e.value) and expected in str(e.value)
    assert counts(path) == before


def test_mast_ingest_takes_a_labels_file_and_fails_cleanly_on_a_bad_one(reviewed, tmp_path, mast, db):
    path, ids, rs_id, labels = reviewed
    db.write_bytes(path.read_bytes())
    good = write(tmp_path / "good.json", labels_doc(rs_id, "carol", labels))
    res = mast("ingest", good, "--json")
    assert json.loads(res.stdout)["labels"][0] | {"path": None} == {
        "path": None, "review_set": rs_id, "reviewer": "carol", "annotator": "human:carol", "labels": 5,
        "present": 1, "absent": 3, "unsure": 1, "replaced": 0}
    bad = write(tmp_path / "bad.json", labels_doc(rs_id, "dave", labels + [labels[0]]))
    res = mast("ingest", bad, expect=1)
    said = "".join(unwrapped(res.stderr).split())  # the panel wraps anywhere: compare without spaces
    assert str(bad).replace(" ", "") in said and "recordlabels[5]" in said and "alreadylabelledinlabels[0]" in said
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM annotations WHERE annotator = 'human:dave'")[0][0] == 0
    res = mast("labels", "import", good)
    assert "replacing 5 from an earlier import" in res.stderr
    text = mast("evaluate", "--gold", "human:carol", "--pred", "rules").stdout
    assert "95% intervals: 1000 bootstrap resamples" in text


# -- evaluate -------------------------------------------------------------------------------
def test_evaluate_a_reviewer_against_a_classifier_with_bootstrap_intervals(reviewed, tmp_path):
    path, ids, rs_id, labels = reviewed
    with Store(path) as st:
        import_labels(st, write(tmp_path / "a.json", labels_doc(rs_id, "alice", labels)))
        res = agreement(st, "human:alice", "rules")
    m13 = next(m for m in res.modes if m.mode == "1.3")
    # 1.3 on a0 (present/present), a2 (absent/absent), a3 (absent/absent); a1 was "unsure": not assessed
    assert (m13.traces, m13.tp, m13.fp, m13.fn, m13.tn) == (3, 1, 0, 0, 2)
    # The interval is the percentile of κ over the same resamples, recomputed here with scikit-learn.
    both = sorted({ids["a0"], ids["a2"], ids["a3"]})  # traces shared on any mode (3.3 only on a0)
    y = {ids["a0"]: 1, ids["a2"]: 0, ids["a3"]: 0}
    rng = np.random.default_rng(0)
    ks = []
    for start in range(0, BOOTSTRAP, _BOOT_CHUNK):
        draws = rng.integers(0, len(both), size=(min(_BOOT_CHUNK, BOOTSTRAP - start), len(both)))
        for row in draws:
            g = [y[both[i]] for i in row]
            ks.append(np.nan if len(set(g)) == 1 else cohen_kappa_score(g, g))
    ks = np.array(ks)
    finite = ks[np.isfinite(ks)]
    assert m13.kappa == pytest.approx(1.0)
    assert m13.kappa_ci == [pytest.approx(float(np.percentile(finite, 2.5))),
                            pytest.approx(float(np.percentile(finite, 97.5)))]
    assert res.bootstrap == BOOTSTRAP and res.macro_ci["kappa"] is not None


def test_bootstrap_interval_matches_scikit_learn_where_annotators_disagree(tmp_path):
    path = tmp_path / "s.duckdb"
    ids = build_small(path)
    # human vs rules on 1.3: human labelled a0 (present) and a1 (absent); rules: a0, a1 present.
    with Store(path) as st:
        res = agreement(st, "human", "rules", bootstrap=200, seed=3)
    m = next(x for x in res.modes if x.mode == "1.3")
    shared = sorted({ids["a0"], ids["a1"]})
    gold = {ids["a0"]: 1, ids["a1"]: 0}
    pred = {ids["a0"]: 1, ids["a1"]: 1}
    rng = np.random.default_rng(3)
    ks = []
    for start in range(0, 200, _BOOT_CHUNK):
        for row in rng.integers(0, 2, size=(min(_BOOT_CHUNK, 200 - start), 2)):
            g, p = [gold[shared[i]] for i in row], [pred[shared[i]] for i in row]
            ks.append(np.nan if len(set(g)) == len(set(p)) == 1 and g == p else cohen_kappa_score(g, p))
    finite = np.array([k for k in ks if np.isfinite(k)])
    expected = [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] \
        if len(finite) >= 0.5 * len(ks) else None
    assert m.kappa_ci == (None if expected is None else [pytest.approx(expected[0], abs=1e-4),
                                                         pytest.approx(expected[1], abs=1e-4)])


def test_many_shared_traces_resample_each_mode_alone_with_the_same_interval(tmp_path, monkeypatch):
    """Past the joint limit each mode's table is drawn as a multinomial: the same
    distribution as drawing traces, so the two intervals agree up to resampling noise."""
    rng = random.Random(5)
    traces = [make_trace("sys", i) for i in range(300)]
    rows = []
    for t in traces:
        for m in ("1.3", "3.3"):
            g = rng.random() < 0.3
            p = g if rng.random() < 0.8 else not g
            rows += [Annotation(mode=m, label=Label.PRESENT if g else Label.ABSENT, annotator="human", trace_id=t.trace_id),
                     Annotation(mode=m, label=Label.PRESENT if p else Label.ABSENT, annotator="rules", trace_id=t.trace_id)]
    with Store(tmp_path / "s.duckdb") as st:
        with st.transaction():
            st.write_traces(traces)
        st.write_annotations(rows)
        joint = agreement(st, "human", "rules", bootstrap=2000)
        monkeypatch.setattr(E, "_JOINT_LIMIT", 0)
        alone = agreement(st, "human", "rules", bootstrap=2000)
    assert (joint.macro_ci["method"], alone.macro_ci["method"]) == ("joint", "independent modes")
    for a, b in zip(joint.modes, alone.modes):
        assert (a.kappa_ci is None) == (b.kappa_ci is None)
        if a.kappa_ci:
            assert a.kappa_ci[0] < a.kappa < a.kappa_ci[1]
            assert a.kappa_ci == [pytest.approx(b.kappa_ci[0], abs=0.03), pytest.approx(b.kappa_ci[1], abs=0.03)]

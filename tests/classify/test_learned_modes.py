"""The learned failure-mode models: training, grouped folds, model documents, bad input, applying them."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from mast.classify import create
from mast.classify.learned import modes_model as MM
from mast.classify.rules import default_rules_dir
from mast.classify.learned.model import ModelError
from mast.classify.learned.modes_train import folds, learn_modes
from mast.errors import UsageError
from mast.model import Annotation, Label, Outcome, Step, StepKind, Trace
from mast.store import Store
from mast.taxonomy import load as load_taxonomy
from tests.conftest import MAD_HUMAN, need, unwrapped

AGENTS = ["Planner", "Coder", "Reviewer"]
TRACEBACK = "exitcode: 1 (execution failed)\nTraceback (most recent call last):\n  KeyError: 'x'"


def _trace(i: int, rng: random.Random, *, bad: bool, noise: bool, labels: bool = True) -> Trace:
    """A run; in the bad ones a step's code fails with a traceback (learnable: mode 3.2 is
    labelled present exactly there).  Mode 1.1 is labelled at random (nothing to learn);
    mode 2.4 is never present (too few labels to learn)."""
    n = rng.randint(6, 10)
    err_at = rng.randint(2, n - 2) if bad else -1
    steps = [Step(agent="user", role="user", content=f"Task {i}: build the report")]
    for j in range(1, n):
        if j == err_at:
            steps.append(Step(agent="Executor", role="tool", kind=StepKind.TOOL_RESULT, content=TRACEBACK))
        else:
            steps.append(Step(agent=rng.choice(AGENTS), role="assistant",
                              content=f"Step {j} of run {i}: my contribution {rng.randint(0, 99)}."))
    anns = []
    if labels:
        for mode, present in (("3.2", bad), ("1.1", noise), ("2.4", False)):
            anns.append(Annotation(mode=mode, label=Label.PRESENT if present else Label.ABSENT, annotator="human"))
    return Trace(system="synthetic", framework="test", source_format="test", source_path=f"m{i}.json",
                 source_index=0, steps=steps, task=f"Task {i}", outcome=Outcome.FAILURE,
                 metadata={"source_id": f"m{i}", "batch": i % 4}, annotations=anns)


def _store(db, n: int = 40, extra: list[Trace] | None = None) -> list[Trace]:
    rng = random.Random(11)
    traces = [_trace(i, rng, bad=i % 2 == 0, noise=rng.random() < 0.3) for i in range(n)] + list(extra or [])
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    return traces


def test_a_learnable_mode_is_saved_and_the_others_say_why_not(db):
    _store(db)
    with Store(db) as st:
        res = learn_modes(st, "human", k=4, group="trace", bootstrap=200)
    m32 = res.modes["3.2"]
    assert m32["saved"] and m32["n"] == 40 and m32["support"] == 20
    assert m32["cv"]["kappa"] >= 0.8 and m32["cv"]["f1"] >= 0.9
    lo, hi = m32["cv"]["kappa_ci"]
    assert lo <= m32["cv"]["kappa"] <= hi
    # a majority label that flips between training parts can even anti-agree under CV
    assert (m32["baseline"]["constant"]["kappa"] or 0.0) <= 0.0
    assert not res.modes["2.4"]["saved"] and "too few labels" in res.modes["2.4"]["why"]
    assert "1.1" in res.modes and res.modes["1.3"]["why"].startswith("no labels")
    assert set(res.model.modes) == {m for m, e in res.modes.items() if e["saved"]}
    assert res.model.model_id.startswith("lm1-") and res.model.training["digest"].startswith("sha256:")
    assert res.macro["learned"]["kappa"] is not None


def test_training_is_deterministic(db):
    _store(db)
    with Store(db) as st:
        a = learn_modes(st, "human", k=4, group="trace", bootstrap=100)
        b = learn_modes(st, "human", k=4, group="trace", bootstrap=100)
    assert a.model.model_id == b.model.model_id and a.modes == b.modes


def test_label_groups_never_split_across_folds(db):
    _store(db)
    with Store(db) as st:
        from mast.classify.learned.modes_train import load_gold
        g = load_gold(st, "human", None, "mast-v1", "labels")
    fold = folds(g.groups, 3)
    by_group: dict[str, set[int]] = {}
    for grp, f in zip(g.groups, fold):
        by_group.setdefault(grp, set()).add(int(f))
    assert len(by_group) == 4  # (3.2, 1.1) present/absent: four distinct label vectors
    assert all(len(fs) == 1 for fs in by_group.values())
    meta = load_gold(Store(db, read_only=True), "human", None, "mast-v1", "meta:batch").groups
    assert len(set(meta)) == 4
    with pytest.raises(UsageError, match="--group"):
        load_gold(Store(db, read_only=True), "human", None, "mast-v1", "nonsense")


def test_cli_json_then_classify_labels_only_the_saved_modes(db, mast, tmp_path):
    empty = Trace(system="synthetic", framework="test", source_format="test", source_path="e.json", source_index=0,
                  steps=[], outcome=Outcome.FAILURE, metadata={"source_id": "empty"})
    traces = _store(db, extra=[empty])
    # The shipped 3.2 detector is a signal (it does not beat the base rate on human
    # labels); run it as a label here, so that the rules baseline shares a mode with gold.
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    p = rules / "no_verification.sql"
    p.write_text(p.read_text(encoding="utf-8").replace("-- role: signal", "-- role: label"), encoding="utf-8")
    mast("classify", "--with", "rules", "-C", f"rules_dir={rules}")
    res = json.loads(mast("learn", "modes", "--cv", "4", "--group", "trace", "--json").stdout)
    mid = res["model_id"]
    e = res["modes"]["3.2"]
    assert {"n", "support", "saved", "why", "cv", "baseline"} <= set(e)
    assert {"precision", "recall", "f1", "kappa", "kappa_ci"} <= set(e["cv"])
    assert {"constant", "rules"} <= set(e["baseline"])
    assert "kappa" in res["macro"]["learned"] and "learned_minus_this_kappa_ci" in res["macro"]["rules"]
    saved = {m for m, v in res["modes"].items() if v["saved"]}
    assert "3.2" in saved and "2.4" not in saved

    clf = create("learned-modes", model=mid, models_db=str(db))
    assert clf.covers(load_taxonomy("mast-v1")) == saved
    run = json.loads(mast("classify", "--with", "learned-modes", "-C", f"model={mid}", "--json").stdout)
    assert run["failed"] == 1 and run["annotations"] == 40 * len(saved)
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT trace_id, mode, label, confidence, evidence_steps FROM annotations "
                           "WHERE annotator = ?", [f"learned:modes@{mid}"])
        assert {r[1] for r in rows} == saved
        assert all(0.5 <= r[3] <= 1 for r in rows)
        by_id = {t.trace_id: t for t in traces}
        for tid, mode, label, _conf, ev in rows:
            if mode != "3.2":
                continue
            err = [j for j, s in enumerate(by_id[tid].steps) if s.content == TRACEBACK]
            assert label == ("present" if err else "absent")
            if label == "present":
                assert set(err) <= set(ev)  # the step that fired the error flag is the evidence
        assert st.fetchall("SELECT classifier, status FROM runs WHERE classifier = 'learned-modes'") == \
            [("learned-modes", "finished")]
    scored = json.loads(mast("evaluate", "--gold", "human", "--pred", f"learned:modes@{mid}", "--json").stdout)
    assert set(scored["not_assessed"]) == set(load_taxonomy("mast-v1").mode_ids) - saved


def test_too_few_labels_is_refused_with_counts(db, mast):
    _store(db, n=6)
    with Store(db) as st, pytest.raises(UsageError, match=r"6 labelled trace\(s\) with steps in 6 group\(s\)"):
        learn_modes(st, "human", k=5, group="trace")
    res = mast("learn", "modes", "--group", "trace", expect=1)
    assert "6 labelled" in res.stderr
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM learned_models")[0][0] == 0


def test_nothing_learnable_saves_no_model_and_says_so(db, mast):
    rng = random.Random(3)
    traces = [_trace(i, rng, bad=False, noise=i % 5 == 0) for i in range(20)]
    with Store(db) as st, st.transaction():
        st.write_traces(traces)
    res = mast("learn", "modes", "--group", "trace", "--json")
    doc = json.loads(res.stdout)
    assert doc["model_id"] is None and not any(v["saved"] for v in doc["modes"].values())
    assert "no model saved" in res.stderr and "1.1: not saved" in res.stderr
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM learned_models")[0][0] == 0


def _saved_doc(db) -> dict:
    _store(db)
    with Store(db) as st:
        m = learn_modes(st, "human", k=4, group="trace", bootstrap=50).model
    return json.loads(m.dumps())


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["modes"]["3.2"]["weights"].__setitem__(0, 9.0), "does not match its id"),
    (lambda d: d.__setitem__("features_version", "m0"), "features version 'm0'"),
    (lambda d: d.__setitem__("kind", "attribution"), "kind 'attribution'"),
    (lambda d: d["modes"].__setitem__("9.9", d["modes"]["3.2"]), "mode '9.9'"),
    (lambda d: d["scaler"].__setitem__("scale", d["scaler"]["scale"][:-1]), "scaler"),
])
def test_bad_model_is_refused_naming_it_and_nothing_is_stored(db, tmp_path, mast, edit, message):
    doc = _saved_doc(db)
    edit(doc)
    bad = tmp_path / "bad-modes.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=message):
        MM.load_file(bad)
    res = mast("classify", "--with", "learned-modes", "-C", f"model={bad}", expect=1)
    assert "bad-modes.json" in unwrapped(res.stderr)
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM runs")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM annotations WHERE annotator LIKE 'learned%'")[0][0] == 0


def test_model_round_trip_and_stored_lookup(db, tmp_path, mast):
    _store(db)
    with Store(db) as st:
        m = learn_modes(st, "human", k=4, group="trace", bootstrap=50).model
        MM.save(st, m)
        back = MM.load_stored(st, m.model_id[:8])
        latest = MM.load_stored(st, "latest")
    p = tmp_path / "m.json"
    p.write_text(m.dumps())
    for other in (back, latest, MM.load_file(p)):
        assert other.model_id == m.model_id and set(other.modes) == set(m.modes)
    assert json.loads(p.read_text())["libraries"]["scikit-learn"]
    res = mast("classify", "--with", "learned-modes", "-C", "model=lm1-nothere", expect=1)
    assert "no stored modes model 'lm1-nothere'" in res.stderr


def test_without_a_model_it_covers_nothing():
    assert create("learned-modes").covers(load_taxonomy("mast-v1")) == set()


@pytest.mark.slow
def test_mast_human_file_is_grouped_by_label_block(db, mast):
    """The MAST human file: 19 traces, 8 label blocks; folds must keep each block whole."""
    need(MAD_HUMAN)
    mast("ingest", MAD_HUMAN)
    mast("classify", "--with", "rules")
    res = json.loads(mast("learn", "modes", "--json").stdout)
    assert res["training"]["traces"] == 19 and res["training"]["groups"] == 8
    assert all(v["n"] == 19 for v in res["modes"].values())

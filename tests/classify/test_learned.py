"""The learned root-cause model: training, model files, bad input, and applying it."""

from __future__ import annotations

import json
import random

import pytest

from mast.classify.hooks import ingest_hooks
from mast.classify.learned import model as M
from mast.classify.learned.train import learn_attribution
from mast.errors import MastError, UsageError
from mast.model import Attribution, Outcome, Step, StepKind, Trace
from mast.store import Store
from tests.conftest import WHOWHEN, need, unwrapped

AGENTS = ["Planner", "Coder", "Searcher", "Reviewer"]


def _trace(i: int, rng: random.Random, with_gold: bool = True) -> Trace:
    """A failed run whose decisive step is the one whose code the executor ran into a
    traceback: learnable from "what consumed its output", never the last step."""
    n = rng.randint(8, 14)
    decisive = rng.randint(1, n - 4)
    steps = [Step(agent="user", content=f"Task {i}: compute the report", role="user")]
    for j in range(1, n):
        if j == decisive + 1:
            steps.append(Step(agent="Executor", role="tool", kind=StepKind.TOOL_RESULT,
                              content="exitcode: 1 (execution failed)\nTraceback (most recent call last):\n  KeyError"))
        else:
            steps.append(Step(agent=rng.choice(AGENTS), role="assistant",
                              content=f"Step {j} of run {i}: here is my contribution number {rng.randint(0, 99)}."))
    atts = [Attribution(annotator="human", agent=steps[decisive].agent, step=decisive)] if with_gold else []
    return Trace(system="synthetic", framework="test", source_format="test", source_path=f"s{i}.json", source_index=0,
                 steps=steps, task=f"Task {i}", outcome=Outcome.FAILURE, metadata={"source_id": f"s{i}"},
                 attributions=atts)


def _store(db, n: int = 40, extra: list[Trace] | None = None) -> list[str]:
    rng = random.Random(7)
    traces = [_trace(i, rng) for i in range(n)] + list(extra or [])
    with Store(db) as st, st.transaction():
        st.write_traces(traces, ingest_hooks())  # as ingest stores them: with the rules' step features
    return [t.trace_id for t in traces]


def test_learns_a_learnable_decisive_step_and_beats_last_step(db):
    _store(db)
    with Store(db) as st:
        res = learn_attribution(st, "human", k=4)
    f = res.cv["synthetic"]
    assert f["n"] == 40
    assert f["step_accuracy"] >= 0.8, f
    assert f["step_accuracy"] > f["baselines"]["last_step"]["step_accuracy"]
    assert f["step_accuracy"] > f["baselines"]["uniform_random"]["step_accuracy"]
    assert set(f["baselines"]) >= {"uniform_random", "majority_agent", "last_step", "first_error_step"}
    assert res.model.model_id.startswith("la1-")
    assert res.model.training["digest"].startswith("sha256:")
    # the reliability of the model's confidence on its held-out folds is kept with the CV figures
    for event in ("step", "agent"):
        cal = f["calibration"][event]
        assert cal["n"] == 40 and sum(b["n"] for b in cal["bins"]) == 40
        assert 0 <= cal["brier"] <= 1 and 0 <= cal["ece"] <= 1
    assert res.model.cv["synthetic"]["calibration"] == f["calibration"]


def test_model_round_trip_file_and_store(db, tmp_path):
    _store(db)
    with Store(db) as st:
        m = learn_attribution(st, "human", k=4).model
        M.save(st, m)
        back = M.load_stored(st, m.model_id[:8])
        latest = M.load_stored(st, "latest")
    path = tmp_path / "m.json"
    path.write_text(m.dumps())
    again = M.load_file(path)
    for other in (back, latest, again):
        assert other.model_id == m.model_id
        assert other.ranker.weights.tolist() == m.ranker.weights.tolist()
        assert other.training == m.training and other.cv == m.cv
    doc = json.loads(path.read_text())
    assert doc["features_version"] and doc["libraries"]["numpy"] and doc["taxonomy"] == "mast-v1"


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["ranker"]["weights"].__setitem__(0, 9.0), "does not match its id"),
    (lambda d: d.__setitem__("features_version", "0"), "features version '0'"),
    (lambda d: d["ranker"].__setitem__("mean", d["ranker"]["mean"][:-1]), "ranker.mean"),
    (lambda d: d.__setitem__("format", "pickle"), "not a mast-learned-model"),
])
def test_bad_model_file_is_refused_naming_it_and_nothing_is_stored(db, tmp_path, mast, edit, message):
    _store(db)
    doc = json.loads(M.default_path().read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(M.ModelError, match=message):
        M.load_file(bad)
    res = mast("classify", "--with", "learned", "-C", f"model={bad}", expect=1)
    assert "bad.json" in unwrapped(res.stderr) and message.split()[0] in res.stderr
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM runs")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM attributions WHERE annotator LIKE 'learned%'")[0][0] == 0


def test_not_json_is_refused(tmp_path):
    p = tmp_path / "m.json"
    p.write_bytes(b"\x80\x04\x95 pickle bytes")
    with pytest.raises(M.ModelError, match="not valid JSON"):
        M.load_file(p)


def test_too_few_labels_is_refused_with_counts(db, mast):
    _store(db, n=6)
    with Store(db) as st, pytest.raises(UsageError, match=r"6 usable \(synthetic: 6\); need at least 10"):
        learn_attribution(st, "human", k=5)
    res = mast("learn", "attribution", expect=1)
    assert "6 usable" in res.stderr
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM learned_models")[0][0] == 0


def test_learn_then_classify_with_learned_writes_attributions(db, mast):
    empty = Trace(system="synthetic", framework="test", source_format="test", source_path="e.json", source_index=0,
                  steps=[], outcome=Outcome.FAILURE, metadata={"source_id": "empty"})
    ids = _store(db, extra=[empty])
    res = json.loads(mast("learn", "attribution", "--cv", "4", "--json").stdout)
    mid = res["model_id"]
    f = res["cv"]["synthetic"]
    assert {"n", "agent_accuracy", "step_accuracy", "baselines"} <= set(f)
    assert set(f["baselines"]["last_step"]) == {"agent_accuracy", "step_accuracy"}
    run = json.loads(mast("classify", "--with", "learned", "-C", f"model={mid}", "--json").stdout)
    assert run["attributions"] == 40 and run["failed"] == 1
    assert run["failures"] == {ids[-1]: "no steps: nothing to rank"}
    with Store(db, read_only=True) as st:
        rows = st.fetchall("SELECT annotator, confidence, rationale FROM attributions WHERE annotator <> 'human'")
        assert {r[0] for r in rows} == {f"learned:attribution@{mid}"}
        assert all(0 < r[1] <= 1 and "top features" in r[2] for r in rows)
        assert st.fetchall("SELECT classifier, status FROM runs") == [("learned", "finished")]
    scored = json.loads(mast("evaluate", "--attribution", "--pred", f"learned:attribution@{mid}", "--by", "system",
                             "--json").stdout)
    assert scored["overall"]["step_accuracy"] >= 0.8


def test_shipped_default_model_loads_and_applies(db, mast):
    assert M.default_path().stat().st_size < 1_000_000
    from mast.classify import create
    clf = create("learned")
    shipped = M.load_file(M.default_path())
    assert clf.model.model_id == shipped.model_id
    assert shipped.training["gold"] == "human" and shipped.cv
    _store(db, n=5)
    run = json.loads(mast("classify", "--with", "learned", "--json").stdout)
    assert run["attributions"] == 5 and run["model_id"] == shipped.model_id


def test_unknown_stored_model_is_a_clear_error(db, mast):
    _store(db, n=3)
    res = mast("classify", "--with", "learned", "-C", "model=la1-nothere", expect=1)
    assert "no stored attribution model 'la1-nothere'" in res.stderr


@pytest.mark.slow
def test_default_model_is_reproduced_from_who_and_when(db, mast):
    """The shipped model is what the training recipe gives on Who&When (same id)."""
    need(WHOWHEN)
    mast("ingest", WHOWHEN.parent)
    mast("classify", "--with", "rules")
    res = json.loads(mast("learn", "attribution", "--json").stdout)
    assert res["model_id"] == M.load_file(M.default_path()).model_id
    for system, f in res["cv"].items():
        assert f["agent_accuracy"] > f["baselines"]["uniform_random"]["agent_accuracy"], system
        assert f["step_accuracy"] > f["baselines"]["last_step"]["step_accuracy"], system


def test_model_error_is_a_user_error():
    assert issubclass(M.ModelError, MastError)


def test_only_traces_that_failed_get_a_root_cause(db, mast):
    """Outcome failure, or a mode labelled present, is a failure; an unknown run with no
    sign of failure (or a success) gets no blamed step."""
    from mast.model import Annotation, Label

    rng = random.Random(3)
    unknown, flagged, success = (_trace(100 + i, rng, with_gold=False) for i in range(3))
    unknown.outcome = flagged.outcome = Outcome.UNKNOWN
    success.outcome = Outcome.SUCCESS
    flagged.annotations = [Annotation(mode="3.3", label=Label.PRESENT, annotator="human")]
    with Store(db) as st, st.transaction():
        st.write_traces([unknown, flagged, success], ingest_hooks())
    run = json.loads(mast("classify", "--with", "learned", "--json").stdout)
    assert run["attributions"] == 1
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT trace_id FROM attributions") == [(flagged.trace_id,)]


def test_batched_step_loading_equals_one_query_per_batch(db):
    """One query for every batch of a group gives exactly what a query per batch gives."""
    import numpy as np

    from mast.classify.learned import features as F
    ids = sorted(_store(db, n=12))  # as a selection is ordered
    batches = [ids[:5], [], ids[5:11], ["no-such-trace"]]
    with Store(db) as st:
        frame = F.read_batches(st, batches)
        assert sorted(set(frame.get_column("_b").to_list())) == [0, 2]  # no rows: no steps
        flat = [t for b in batches for t in b]
        for k, b in enumerate(batches):
            part = frame.filter(frame.get_column("_b") == k)
            want = F.load_steps(st, b)
            keys, offsets = F.spans(part)
            assert [flat[i] for i in keys] == list(want.spans)
            assert offsets.tolist() == [a for a, _ in want.spans.values()] + [len(want)]
            assert part.get_column("agent").to_list() == want.agent
            assert np.array_equal(F.frame_dense(part), F.dense(want))


def test_features_are_made_current_before_the_model_reads_them(db, mast):
    """A store written without the ingest hook has no rule features: the learned model
    computes them (as a rules run would) instead of reading every flag as false."""
    rng = random.Random(5)
    t = _trace(200, rng, with_gold=False)
    with Store(db) as st, st.transaction():
        st.write_traces([t])  # no hooks: no feature rows
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM rule_step_features")[0][0] == 0
    mast("classify", "--with", "learned", "--json")
    with Store(db, read_only=True) as st:
        assert st.fetchall("SELECT count(*) FROM rule_step_features WHERE trace_id = ?",
                           [t.trace_id])[0][0] == len(t.steps)


def test_grouped_passes_give_the_same_root_causes(db, monkeypatch):
    """A large selection is read in groups of batches (bounded memory): the answers are
    the same as one pass over everything."""
    from mast.classify import create
    from mast.classify.learned import classifier as C
    from mast.classify.runner import Selection, run
    from mast.classify.hooks import ingest_hooks

    rng = random.Random(9)
    traces = [_trace(300 + i, rng, with_gold=False) for i in range(9)]
    with Store(db) as st:
        with st.transaction():
            st.write_traces(traces, hooks=ingest_hooks())
        run(st, create("learned"), Selection())
        whole = st.fetchall("SELECT trace_id, agent, step, confidence FROM attributions ORDER BY trace_id")
        st.execute("DELETE FROM attributions")
        monkeypatch.setattr(C, "BATCH", 2)
        monkeypatch.setattr(C, "GROUP", 2)
        run(st, create("learned"), Selection())
        grouped = st.fetchall("SELECT trace_id, agent, step, confidence FROM attributions ORDER BY trace_id")
    assert len(whole) == 9 and grouped == whole

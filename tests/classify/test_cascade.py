"""The cascade end to end against a real HTTP server on 127.0.0.1 playing a teacher whose
labels are a learnable function of the trace text (tests/_teacher.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _openai_server import OpenAIServer, Response, completion  # noqa: E402
from _teacher import synthetic_traces, teacher_content  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.cascade.check import agreement, seeded_order  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.errors import UsageError  # noqa: E402
from mast.model import Trace  # noqa: E402
from mast.store import Store  # noqa: E402

import numpy as np  # noqa: E402

MODEL = "gpt-4o-mini"
FAST = dict(base_wait=0.01, max_wait=0.2)
CASCADE = f"cascade:{MODEL}"
JUDGE = f"judge:{MODEL}"


@pytest.fixture
def teacher():
    s = OpenAIServer()
    s.responder = s.teacher
    s.start()
    yield s
    s.stop()


def make_store(db: Path, n: int, *, empty: bool = False) -> list[str]:
    traces = synthetic_traces(n, seed=3)
    if empty:
        traces.append(Trace("teacher-mas", "synthetic", "generic", "teacher.jsonl", n, [], task="nothing happened"))
    with Store(db) as st, st.transaction():
        st.write_traces(traces, ingest_hooks())
    return [t.trace_id for t in traces]


def cascade(db, server, **kw):
    clf = create("cascade", model=MODEL, base_url=server.base_url, **{**FAST, **kw})
    with Store(db) as st:
        res = run(st, clf, Selection())
    return clf, res


def rows(db, sql, params=()):
    with Store(db) as st:
        return st.fetchall(sql, list(params))


def labels_of(db, annotator, where=""):
    out: dict[tuple[str, str], str] = {}
    for t, m, lab in rows(db, f"SELECT trace_id, mode, label FROM annotations WHERE annotator = ? {where}",
                          [annotator]):
        out[(t, m)] = lab
    return out


def test_the_judge_sees_few_traces_and_the_learned_tier_the_rest(db, teacher):
    ids = make_store(db, 600, empty=True)
    clf, res = cascade(db, teacher, judge_share=0.25, check_share=0.2, retrain_every=50)
    d = res.details["cascade"]
    assert res.status == "finished" and res.done == 600 and res.failed == 1
    assert "no steps" in res.failures[ids[-1]]
    # 150 judge calls: a random check sample of 30, then 120 chosen by uncertainty in rounds of 50
    assert len(teacher.chat_bodies) == 150
    assert d["traces"] == 600 and d["judged"] == 150 and d["learned_labelled"] == 450
    assert d["saved_share"] == 0.75 and d["check_sample"] == 30
    assert {k: v["judged"] for k, v in d["judge_calls"].items()} == {"check sample": 30, "random": 50, "uncertain": 70}
    assert d["cost_usd"] > 0 and res.cost_usd == pytest.approx(d["cost_usd"], abs=1e-5)
    # every trace with steps labelled on every mode by the cascade; the judge's own labels kept too
    casc = labels_of(db, CASCADE)
    assert len(casc) == 600 * 14 and not any(t == ids[-1] for t, _ in casc)
    judge = labels_of(db, JUDGE)
    assert len(judge) == 150 * 14
    assert all(casc[k] == v for k, v in judge.items())  # a judged trace carries the judge's labels
    tiers = dict(rows(db, "SELECT split_part(rationale, ':', 1), count(DISTINCT trace_id) FROM annotations "
                          "WHERE annotator = ? GROUP BY 1", [CASCADE]))
    assert tiers == {"judge tier (check sample)": 30, "judge tier (random)": 50, "judge tier (uncertain)": 70,
                     "learned tier": 450}
    # each round's retrained model is stored; the last one labelled the rest
    assert [m["trained_on"] for m in d["models"]] == [50, 100, 120]
    stored = {r[0]: json.loads(r[1]) for r in rows(db, "SELECT model_id, body FROM learned_models WHERE kind = 'modes'")}
    assert set(stored) == {m["model_id"] for m in d["models"]} and d["final_model"] in stored
    assert stored[d["final_model"]]["training"]["gold"] == JUDGE
    assert len(d["judge_runs"]) == 4
    assert rows(db, "SELECT count(*) FROM runs WHERE classifier = 'judge' AND status = 'finished'") == [(4,)]
    # agreement on the check sample, with an interval around it
    macro = d["agreement"]["macro"]
    lo, hi = macro["kappa_ci"]
    assert macro["kappa"] >= 0.7 and lo <= macro["kappa"] <= hi
    assert d["agreement"]["n"] == 30 and set(macro["modes"]) <= {"1.3", "1.5", "2.3", "3.1", "3.3"}
    assert any("check sample of 30" in n for n in res.notes)


def test_the_check_sample_is_random_and_never_trained_on(db, teacher):
    ids = make_store(db, 300)
    clf, res = cascade(db, teacher, judge_share=0.3, check_share=0.2, retrain_every=40, seed=7)
    d = res.details["cascade"]
    check = set(seeded_order(ids, 7)[:18])
    got = {t for t, n in rows(db, "SELECT trace_id, count(*) FROM annotations WHERE annotator = ? AND "
                                  "starts_with(rationale, 'judge tier (check sample)') GROUP BY 1", [CASCADE])}
    assert got == check
    # the models learn from the 72 uncertain traces only
    assert d["models"][-1]["trained_on"] == 72
    body = json.loads(rows(db, "SELECT body FROM learned_models WHERE model_id = ?", [d["final_model"]])[0][0])
    assert body["training"]["traces"] == 72


def test_a_rerun_costs_nothing_and_replaces_its_rows(db, teacher):
    make_store(db, 300)
    _, first = cascade(db, teacher, judge_share=0.3, retrain_every=40)
    sent = len(teacher.chat_bodies)
    _, again = cascade(db, teacher, judge_share=0.3, retrain_every=40)
    d = again.details["cascade"]
    assert len(teacher.chat_bodies) == sent  # every judge call a cache hit
    assert d["cost_usd"] == 0 and sum(k["cached"] for k in d["judge_calls"].values()) == 90
    assert d["agreement"] == first.details["cascade"]["agreement"]
    assert len(labels_of(db, CASCADE)) == 300 * 14
    assert rows(db, "SELECT count(*) FROM annotations WHERE annotator = ?", [CASCADE]) == [(300 * 14,)]
    assert rows(db, "SELECT count(*) FROM annotations WHERE annotator = ?", [JUDGE]) == [(90 * 14,)]


def test_learned_tier_labels_are_what_learned_modes_gives_with_the_final_model(db, teacher):
    make_store(db, 300)
    _, res = cascade(db, teacher, judge_share=0.3, retrain_every=40)
    final = res.details["cascade"]["final_model"]
    learned = {k: v for k, v in labels_of(db, CASCADE, "AND starts_with(rationale, 'learned tier')").items()}
    clf = create("learned-modes", model=final)
    with Store(db) as st:
        run(st, clf, Selection(trace_ids=tuple(sorted({t for t, _ in learned}))))
    again = labels_of(db, f"learned:modes@{final}")
    assert again == learned


def test_a_trace_the_judge_cannot_classify_is_labelled_by_the_learned_tier(db, teacher):
    make_store(db, 150)

    def flaky(body):
        if "Task 5:" in body["messages"][-1]["content"]:
            return Response(200, completion("not json at all", body))
        return Response(200, completion(teacher_content(body), body))

    teacher.responder = flaky
    _, res = cascade(db, teacher, judge_share=1.0, check_share=0.1, retrain_every=100)
    d = res.details["cascade"]
    assert sum(k["failed"] for k in d["judge_calls"].values()) == 1 and d["judged"] == 149
    tid = rows(db, "SELECT trace_id FROM traces WHERE task = 'Task 5'")[0][0]
    why = rows(db, "SELECT DISTINCT split_part(rationale, ':', 1) FROM annotations WHERE annotator = ? "
                   "AND trace_id = ?", [CASCADE, tid])
    assert why == [("learned tier",)]
    assert rows(db, "SELECT count(*) FROM judge_failures WHERE trace_id = ?", [tid]) == [(1,)]
    assert any("could not classify" in n for n in res.notes)


def test_a_budget_caps_the_judge_calls(db, teacher):
    make_store(db, 400)
    _, res = cascade(db, teacher, budget=0.05, retrain_every=40)
    d = res.details["cascade"]
    assert 40 < d["judged"] < 400 and d["cost_usd"] <= 0.05 * 1.1
    assert d["judged"] + d["learned_labelled"] == 400


def test_too_few_judge_calls_are_refused_before_anything_is_sent(db, teacher):
    make_store(db, 100)
    with pytest.raises(UsageError, match=r"10 judge call\(s\) for 100 trace\(s\)"):
        cascade(db, teacher, judge_share=0.1)
    assert not teacher.chat_bodies
    assert rows(db, "SELECT count(*) FROM annotations") == [(0,)]


def test_bad_shares_are_refused():
    with pytest.raises(UsageError, match="judge_share"):
        create("cascade", judge_share=1.5)
    with pytest.raises(UsageError, match="check_share"):
        create("cascade", check_share="0")
    with pytest.raises(UsageError, match="pick"):
        create("cascade", pick="smallest")


def test_cli_prints_the_cascade_summary(db, teacher, mast):
    make_store(db, 200)
    out = mast("classify", "--with", "cascade", "--model", MODEL, "--base-url", teacher.base_url,
               "-C", "judge_share=0.3", "-C", "retrain_every=30", "-C", "base_wait=0.01", "--json")
    summary = json.loads(out.stdout)
    assert summary["classifier"] == "cascade" and summary["done"] == 200
    c = summary["cascade"]
    assert c["saved_share"] == 0.7 and c["check_sample"] == 12 and c["agreement"]["macro"]["kappa"] is not None
    assert "macro kappa" in out.stderr


def test_agreement_interval_and_undefined_modes():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < 0.3).astype(int)
    p = y.copy()
    p[:20, 0] = 1 - p[:20, 0]           # mode a: 10% flipped
    y[:, 2] = 0
    p[:, 2] = 0                          # mode c: both constant -> undefined
    a = agreement(y, p, ["a", "b", "c"], bootstrap=300)
    assert a["modes"]["b"]["kappa"] == 1.0 and a["modes"]["c"]["kappa"] is None
    # no disagreement in the sample: the bootstrap interval collapses, the Wilson one does not
    assert a["modes"]["b"]["kappa_ci"] == [1.0, 1.0] and a["modes"]["b"]["disagree"] == 0
    assert a["modes"]["b"]["agreement_ci"] == [pytest.approx(0.9812, abs=1e-4), 1.0]
    assert a["modes"]["a"]["disagree"] == 20 and a["modes"]["a"]["agreement_ci"][1] < 0.95
    lo, hi = a["modes"]["a"]["kappa_ci"]
    assert lo < a["modes"]["a"]["kappa"] < hi < 1.0
    assert a["macro"]["modes"] == ["a", "b"]
    assert a["macro"]["kappa"] == pytest.approx((a["modes"]["a"]["kappa"] + 1.0) / 2, abs=1e-4)

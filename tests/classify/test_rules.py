"""Rule detectors on hand-made traces: each fires on its positive and not on the matched negative."""

from __future__ import annotations

import shutil

import pytest

from mast.classify import create
from mast.classify.rules import RulesClassifier, default_rules_dir, load_detectors, parse_detector
from mast.classify.runner import Selection, run
from mast.errors import UsageError
from mast.model import Outcome, StepKind
from mast.store import Store
from mast.taxonomy import load as load_taxonomy

from rules_helpers import CASES, TASK, step, trace, write


def labels(db, trace_id: str, annotator: str = "rules") -> dict[str, tuple[str, list[int]]]:
    with Store(db) as st:
        rows = st.fetchall("SELECT mode, label, evidence_steps FROM annotations WHERE trace_id = ? AND annotator = ?",
                           [trace_id, annotator])
    return {m: (lab, list(ev or [])) for m, lab, ev in rows}


def signals(db, trace_id: str) -> dict[str, tuple[str, list[int]]]:
    return labels(db, trace_id, "rules:signal")


ROLE = {d.mode: d.role for d in load_detectors() if not d.prelude}


@pytest.fixture
def case_store(db):
    traces = []
    for mode, (pos, neg) in CASES.items():
        traces.append(trace(f"pos-{mode}", pos, task=TASK))
        traces.append(trace(f"neg-{mode}", neg, task=TASK))
    ids = write(db, traces)
    with Store(db) as st:
        res = run(st, create("rules"), Selection())
    assert res.errors == {}
    return ids


@pytest.mark.parametrize("mode", sorted(CASES))
def test_detector_fires_on_positive_not_on_negative(db, case_store, mode):
    """A label detector gives present / absent; a signal detector an ``unknown`` row by
    ``rules:signal`` on the positive, nothing on the negative, and no label either way."""
    pos, neg = labels(db, case_store[f"pos-{mode}"]), labels(db, case_store[f"neg-{mode}"])
    if ROLE[mode] == "signal":
        assert mode not in pos and mode not in neg, "a signal is never a label"
        pos, neg = signals(db, case_store[f"pos-{mode}"]), signals(db, case_store[f"neg-{mode}"])
        assert pos[mode][0] == "unknown", pos
        assert mode not in neg, neg
    else:
        assert pos[mode][0] == "present", pos
        assert neg[mode][0] == "absent", neg
    assert pos[mode][1], "a finding carries evidence steps"
    n_steps = len(CASES[mode][0])
    assert all(0 <= s < n_steps for s in pos[mode][1])


def test_every_covered_mode_gets_a_label_on_every_trace(db, case_store):
    clf = create("rules")
    covered = clf.covers(load_taxonomy())
    with Store(db) as st:
        rows = st.fetchall("SELECT trace_id, count(DISTINCT mode), count(*) FROM annotations WHERE annotator = 'rules' "
                           "GROUP BY 1")
    assert len(rows) == len(case_store)
    assert all(n == len(covered) and m == len(covered) for _, m, n in rows)


def test_covers_lists_exactly_the_header_modes():
    dets = [d for d in load_detectors() if not d.prelude]
    clf = RulesClassifier()
    # Only label detectors assess a mode; a signal detector alone leaves it not assessed.
    assert clf.covers(load_taxonomy()) == {d.mode for d in dets if d.role == "label"}
    assert {"2.1", "3.3"} <= clf.covers(load_taxonomy())
    assert not {"1.3", "1.5", "3.2"} & clf.covers(load_taxonomy())  # signals (bench/RESULTS.md, "Rule precision")
    assert "1.1" not in clf.covers(load_taxonomy())  # no rule can see task-spec disobedience


def test_shipped_rule_files_have_headers():
    for p in sorted(default_rules_dir().glob("*.sql")):
        d = parse_detector(p)
        assert d.name and d.version and len(d.description) > 20, p
        if not p.name.startswith("_"):
            assert d.mode in load_taxonomy().mode_ids, p


def test_root_cause_is_earliest_evidence_step_of_a_label(db):
    # 2.1 (a label) at step 3; the repeated Coder message at steps 1 and 4 is a 1.3
    # signal, earlier, and must not be the root cause.
    steps = CASES["2.1"][0]
    ids = write(db, [trace("fail", steps, task=TASK, outcome=Outcome.FAILURE),
                     trace("ok", steps + [step("Coder", "fine")], task=TASK, outcome=Outcome.SUCCESS)])
    with Store(db) as st:
        run(st, create("rules"), Selection())
        att = st.fetchall("SELECT trace_id, agent, step FROM attributions WHERE annotator = 'rules'")
        ev = st.fetchall("SELECT min(list_min(evidence_steps)) FROM annotations WHERE annotator = 'rules' "
                         "AND label = 'present' AND trace_id = ?", [ids["fail"]])[0][0]
    # a successful trace gets no root cause; the failed one gets the earliest evidence step
    assert ev == 3
    assert signals(db, ids["fail"])["1.3"][1][0] == 1
    assert att == [(ids["fail"], "Planner", 3)]


def test_root_cause_of_a_failing_execution_is_the_step_that_asked_for_it(db):
    steps = CASES["3.3"][0]  # 1 Coder writes code, 2 terminal traceback, 3 Coder claims success
    ids = write(db, [trace("fail", steps, task=TASK, outcome=Outcome.FAILURE)])
    with Store(db) as st:
        run(st, create("rules"), Selection())
        att = st.fetchall("SELECT trace_id, agent, step, rationale FROM attributions WHERE annotator = 'rules'")
    assert [(t, a, s) for t, a, s, _ in att] == [(ids["fail"], "Coder", 1)]
    assert "step 2" in att[0][3] and "execution" in att[0][3]


def test_bad_input_no_steps_no_timestamps_huge_and_odd_text(db):
    huge = "x" * 3_000_000 + "\nTraceback (most recent call last):\nValueError: boom"
    odd = "\x00\x01 \u202e\ud7ff \U0001F600 ' \" \\ %s {} ``` \r\n" * 100
    ids = write(db, [
        trace("empty", [], task=None),
        trace("huge", [step("a", huge, kind=StepKind.TOOL_RESULT, role="tool"), step("b", "All tests passed.")]),
        trace("odd", [step(None, odd), step("", None), step("z", odd, kind=StepKind.TOOL_CALL, tool_name="t",
                                                               tool_args=odd)], task=odd),
    ])
    with Store(db) as st:
        res = run(st, create("rules"), Selection())
    assert res.errors == {} and res.done == 3
    n_modes = len(create("rules").covers(load_taxonomy()))
    empty = labels(db, ids["empty"])
    assert len(empty) == n_modes and {lab for lab, _ in empty.values()} == {"absent"}
    # the failure at the end of a 3 MB step is still seen
    assert labels(db, ids["huge"])["3.3"][0] == "present"


def test_broken_detector_is_reported_by_name_and_others_run(db, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    (rules / "broken.sql").write_text("-- mode: 2.2\n-- name: broken\n-- version: 1\n-- description: bad SQL on purpose\n"
                                      "SELECT trace_id, FROM nowhere_table WHERE", encoding="utf-8")
    (rules / "wrong_mode.sql").write_text("-- mode: 1.1\n-- name: wrong_mode\n-- version: 1\n-- description: returns "
                                          "another mode than its header\nSELECT trace_id, '1.2' AS mode, 0.5 AS confidence, "
                                          "[0] AS evidence_steps, 'x' AS rationale FROM sel", encoding="utf-8")
    ids = write(db, [trace("pos", CASES["3.3"][0], task=TASK)])
    clf = RulesClassifier(rules_dir=rules)
    with Store(db) as st:
        res = run(st, clf, Selection())
    assert set(res.errors) == {"broken", "wrong_mode"}
    assert "broken.sql" in res.errors["broken"]
    got = labels(db, ids["pos"])
    assert got["3.3"][0] == "present"
    assert "2.2" not in got and "1.1" not in got and "1.2" not in got  # not assessed, not "absent"


def test_header_without_mode_is_a_usage_error(tmp_path):
    (tmp_path / "x.sql").write_text("-- name: x\n-- version: 1\n-- description: d\nSELECT 1", encoding="utf-8")
    with pytest.raises(UsageError, match="x.sql"):
        load_detectors(tmp_path)


def test_rules_dir_from_environment(tmp_path, monkeypatch):
    d = tmp_path / "r"
    d.mkdir()
    (d / "only.sql").write_text("-- mode: 3.1\n-- name: only\n-- version: 7\n-- description: one rule\n"
                                "SELECT trace_id, '3.1' AS mode, 1.0 AS confidence, []::INTEGER[] AS evidence_steps, "
                                "'always' AS rationale FROM sel", encoding="utf-8")
    monkeypatch.setenv("MAST_RULES_DIR", str(d))
    clf = create("rules")
    assert clf.covers(load_taxonomy()) == {"3.1"}
    assert clf.arguments()["detectors"] == {"only": "7"}


def test_selection_restricts_the_batch(db):
    ids = write(db, [trace("a", CASES["3.3"][0], task=TASK, system="s1"),
                     trace("b", CASES["3.3"][0] + [step("x", "different")], task=TASK, system="s2")])
    with Store(db) as st:
        res = run(st, create("rules"), Selection(systems=("s1",)))
    assert res.traces == 1
    assert labels(db, ids["a"]) and not labels(db, ids["b"])

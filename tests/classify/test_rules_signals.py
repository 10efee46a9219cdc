"""Honest rules: a ``-- role: signal`` detector's findings are hints, never failure labels."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mast.agreement import latest_labels  # noqa: E402
from mast.classify.judge.storage import rule_hints  # noqa: E402
from mast.classify.rules import RulesClassifier, default_rules_dir, load_detectors  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.errors import UsageError  # noqa: E402
from mast.evaluate import agreement  # noqa: E402
from mast.model import Annotation, Label, Outcome  # noqa: E402
from mast.report.labels import Labels  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import load as load_taxonomy  # noqa: E402
from rules_helpers import CASES, TASK, trace, write  # noqa: E402


def _rules(tmp_path, roles: dict[str, str]) -> Path:
    """A copy of the shipped rules with the given detectors' roles set."""
    d = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), d)
    for name, role in roles.items():
        p = d / f"{name}.sql"
        lines = [x for x in p.read_text(encoding="utf-8").splitlines() if not x.startswith("-- role:")]
        lines.insert(1, f"-- role: {role}")
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.fixture
def signal_store(db, tmp_path):
    """1.5 (termination_unaware) is a signal; 3.3 a label.  The 1.5 positive case has a
    human label saying 1.5 present, so a signal counted as a label would score."""
    rules = _rules(tmp_path, {"termination_unaware": "signal", "incorrect_verification": "label"})
    ids = write(db, [trace("pos", CASES["1.5"][0], task=TASK, outcome=Outcome.FAILURE),
                     trace("neg", CASES["1.5"][1], task=TASK, outcome=Outcome.FAILURE)])
    with Store(db) as st:
        st.write_annotations([Annotation(mode=m, label=Label.PRESENT if (t == "pos" and m == "1.5") else Label.ABSENT,
                                         annotator="human", trace_id=ids[t])
                              for t in ids for m in ("1.5", "3.3")])
        clf = RulesClassifier(rules_dir=rules)
        res = run(st, clf, Selection())
    assert res.errors == {}
    return ids, clf, rules


def test_a_signal_is_stored_as_unknown_with_evidence_not_as_a_label(db, signal_store):
    ids, clf, _ = signal_store
    with Store(db) as st:
        rows = st.fetchall("SELECT trace_id, annotator, label, evidence_steps, rationale FROM annotations "
                           "WHERE mode = '1.5' AND starts_with(annotator, 'rules')")
        roots = st.fetchall("SELECT trace_id FROM attributions WHERE annotator = 'rules'")
    assert [(t, a, lab) for t, a, lab, _, _ in rows] == [(ids["pos"], "rules:signal", "unknown")]
    assert rows[0][3] == [2] and "termination_unaware" in rows[0][4]
    assert roots == []  # a signal is no failure: no root cause from it
    assert "1.5" not in clf.covers(load_taxonomy()) and "3.3" in clf.covers(load_taxonomy())


def test_evaluate_and_exposure_do_not_count_a_signal(db, signal_store):
    ids, _, _ = signal_store
    with Store(db) as st:
        res = agreement(st, "human", "rules")
        by_mode = {m.mode: m for m in res.modes}
        assert not by_mode["1.5"].assessed and "1.5" in res.not_assessed
        assert by_mode["3.3"].assessed and by_mode["3.3"].traces == 2
        sql, params = latest_labels(st, "mast-v1")
        assert not st.fetchall(f"SELECT * FROM ({sql}) WHERE annotator LIKE 'rules%' AND mode = '1.5'", params)
        with Labels(st, "mast-v1") as lab:
            cells = lab.cells()
    assert not [c for c in cells if c.mode == "1.5" and c.annotator.startswith("rules")]
    assert not [c for c in cells if c.annotator == "rules:signal"]
    assert {c.annotator for c in cells if c.mode == "3.3"} >= {"rules"}


def test_the_judge_sees_a_signal_as_a_hint_worded_as_a_signal(db, signal_store):
    ids, _, _ = signal_store
    with Store(db) as st:
        hints = rule_hints(st, [ids["pos"], ids["neg"]])
    assert ids["neg"] not in hints
    assert len(hints[ids["pos"]]) == 1
    assert hints[ids["pos"]][0].startswith("signal (not a failure label) 1.5 at steps 2:")


def test_a_rerun_replaces_signals_and_flipping_the_role_moves_the_detector(db, signal_store, tmp_path):
    ids, clf, rules = signal_store
    with Store(db) as st:
        run(st, clf, Selection())
        assert st.fetchall("SELECT count(*) FROM annotations WHERE annotator = 'rules:signal'")[0][0] == 1
        # the same file with role label: a new version, and 1.5 is a label again
        p = rules / "termination_unaware.sql"
        p.write_text(p.read_text(encoding="utf-8").replace("-- role: signal", "-- role: label"), encoding="utf-8")
        as_label = RulesClassifier(rules_dir=rules)
        assert as_label.version != clf.version and "1.5" in as_label.covers(load_taxonomy())
        run(st, as_label, Selection())
        got = dict(st.fetchall("SELECT trace_id, label FROM annotations WHERE annotator = 'rules' AND mode = '1.5' "
                               "AND run_id IN (SELECT run_id FROM runs WHERE version = ?)", [as_label.version]))
    assert got == {ids["pos"]: "present", ids["neg"]: "absent"}


def test_a_mode_with_a_label_and_a_signal_detector_is_assessed_by_the_label(db, tmp_path):
    rules = _rules(tmp_path, {"termination_unaware": "signal"})
    (rules / "limit_label.sql").write_text(
        "-- mode: 1.5\n-- name: limit_label\n-- version: 1\n-- description: a limit reached, as a label\n"
        "SELECT trace_id, '1.5' AS mode, 0.7 AS confidence, list(step) AS evidence_steps, 'limit' AS rationale "
        "FROM rule_steps WHERE hits_limit GROUP BY trace_id", encoding="utf-8")
    ids = write(db, [trace("pos", CASES["1.5"][0], task=TASK), trace("neg", CASES["1.5"][1], task=TASK)])
    clf = RulesClassifier(rules_dir=rules)
    assert "1.5" in clf.covers(load_taxonomy())
    with Store(db) as st:
        run(st, clf, Selection())
        rows = sorted(st.fetchall("SELECT trace_id, annotator, label FROM annotations WHERE mode = '1.5'"))
    assert rows == sorted([(ids["pos"], "rules", "present"), (ids["pos"], "rules:signal", "unknown"),
                           (ids["neg"], "rules", "absent")])


def test_an_unknown_role_is_a_usage_error(tmp_path):
    (tmp_path / "x.sql").write_text("-- mode: 1.5\n-- name: x\n-- version: 1\n-- role: hint\n-- description: d\n"
                                    "SELECT 1", encoding="utf-8")
    with pytest.raises(UsageError, match="role"):
        load_detectors(tmp_path)

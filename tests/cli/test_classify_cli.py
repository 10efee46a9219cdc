"""`mast classify` and `mast evaluate` end to end on a temp store."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "classify"))

from mast.classify.rules import default_rules_dir  # noqa: E402
from mast.store import Store  # noqa: E402
from rules_helpers import CASES, TASK, trace, write  # noqa: E402


def _store(db):
    return write(db, [trace("pos", CASES["3.3"][0], task=TASK, system="s1"),
                      trace("neg", CASES["3.3"][1], task=TASK, system="s2")])


def _count(db, sql, params=()):
    with Store(db, read_only=True) as st:
        return st.fetchall(sql, list(params))[0][0]


def test_classify_json_summary_and_replace_then_append(db, mast):
    _store(db)
    first = json.loads(mast("classify", "--with", "rules", "--json").stdout)
    assert first["traces"] == 2 and first["errors"] == {} and first["status"] == "finished"
    assert first["present_by_mode"]["3.3"] == 1
    n = _count(db, "SELECT count(*) FROM annotations WHERE annotator = 'rules'")
    assert n == first["annotations"] > 0
    mast("classify", "--with", "rules", "--json")  # same version again: replaces
    assert _count(db, "SELECT count(*) FROM annotations WHERE annotator = 'rules'") == n
    assert _count(db, "SELECT count(*) FROM runs") == 2
    mast("classify", "--with", "rules", "--action", "append", "--json")
    assert _count(db, "SELECT count(*) FROM annotations WHERE annotator = 'rules'") == 2 * n


def test_classify_where_and_system_select_traces(db, mast):
    _store(db)
    out = json.loads(mast("classify", "--system", "s1", "--json").stdout)
    assert out["traces"] == 1
    out = json.loads(mast("classify", "--where", "system = 's2'", "--json").stdout)
    assert out["traces"] == 1 and out["present_by_mode"].get("3.3", 0) == 0


def test_broken_detector_named_on_stderr_and_in_json(db, mast, tmp_path):
    _store(db)
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    (rules / "broken.sql").write_text("-- mode: 2.2\n-- name: broken\n-- version: 1\n-- description: bad\nSELEC oops",
                                      encoding="utf-8")
    res = mast("classify", "-C", f"rules_dir={rules}", "--json", expect=1)
    out = json.loads(res.stdout)
    assert list(out["errors"]) == ["broken"]
    assert "broken" in res.stderr
    assert out["present_by_mode"]["3.3"] == 1  # the other detectors ran and were stored


def test_evaluate_cli_json_and_table(db, mast):
    _store(db)
    mast("classify", "--json")
    res = json.loads(mast("evaluate", "--gold", "rules", "--pred", "rules", "--json").stdout)
    assessed = [m for m in res["modes"] if m["assessed"]]
    assert assessed and all(m["kappa"] in (None, 1.0) for m in assessed)
    assert res["macro"]["f1"] == 1.0
    assert res["macro_baselines"]["always_present"]["recall"] in (None, 1.0)
    assert "overall" in res["calibration"] and res["calibration"]["event"] == "mode present"
    text = mast("evaluate", "--gold", "rules", "--pred", "rules").stdout
    assert "not assessed" in text and "macro" in text
    assert "always +" in text and "always -" in text and "random" in text
    assert "reliability" not in text
    text = mast("evaluate", "--gold", "rules", "--pred", "rules", "--calibration").stdout
    assert "reliability of rules's confidence" in text and "expected calibration error" in text


def test_evaluate_unknown_annotator_exits_nonzero(db, mast):
    _store(db)
    mast("classify", "--json")
    res = mast("evaluate", "--gold", "human", "--pred", "rules", expect=1)
    assert "human" in res.stderr


def test_taxonomy_shows_rule_coverage(mast):
    res = json.loads(mast("taxonomy", "--json").stdout)
    cov = {m["id"]: m["covered_by"] for m in res["modes"]}
    assert "rules" in cov["3.3"] and "rules" not in cov["1.1"]

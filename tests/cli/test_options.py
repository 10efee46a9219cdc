"""The CLI's shared options, classifier options (-C), settings and the generated reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "classify"))

from mast import settings  # noqa: E402
from mast.classify import create, options_of, parse_assignments  # noqa: E402
from mast.errors import UsageError  # noqa: E402
from rules_helpers import CASES, TASK, trace, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_reference_is_up_to_date(mast):
    """docs/cli.md is what `mast reference` prints: regenerate it when a command changes."""
    expected = mast("reference").stdout
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/cli.md is stale: run `python3 dev.py mast reference > docs/cli.md`"
    for command in ("analyze", "classify", "ingest", "report", "evaluate", "export", "traces list"):
        assert f"`mast {command}`" in expected
    for name in ("rules", "judge"):
        assert all(f"`{o.name}`" in expected for o in options_of(name))


def test_unknown_classifier_option_names_the_known_ones(db, mast):
    write(db, [trace("pos", CASES["3.3"][0], task=TASK)])
    res = mast("classify", "--with", "rules", "-C", "budget=5", expect=1)
    assert "budget" in res.stderr and "rules_dir" in res.stderr
    res = mast("classify", "--with", "rules", "--model", "gpt-x", expect=1)
    assert "no option model" in res.stderr


def test_option_values_are_parsed_and_bad_ones_named():
    clf = create("judge", **parse_assignments(["concurrency=3", "budget=2.5", "batch=no", "model=m"]))
    assert (clf.concurrency, clf.budget, clf.batch, clf.model) == (3, 2.5, False, "m")
    with pytest.raises(UsageError, match="concurrency='many'"):
        create("judge", concurrency="many")
    with pytest.raises(UsageError, match="key=value"):
        parse_assignments(["budget"])


def test_repeated_assignments_make_a_list(db, mast):
    write(db, [trace("pos", CASES["3.3"][0], task=TASK)])
    assert parse_assignments(["only=a", "only=b,c"]) == {"only": ["a", "b,c"]}
    dets = [o for o in options_of("rules") if o.name == "only"][0].convert(["a", "b,c"])
    assert dets == ["a", "b", "c"]
    res = mast("classify", "-C", "only=nope", expect=1)
    assert "unknown detector" in res.stderr


def test_settings_come_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("MAST_JUDGE_MODEL", "m-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "")  # empty counts as unset
    s = settings.current()
    assert s.judge_model == "m-env" and s.base_url is None and s.db == settings.DEFAULT_DB
    assert s.replace(judge_model=None, base_url="http://x").judge_model == "m-env"
    clf = create("judge", settings=s.replace(base_url="http://x"))
    assert (clf.model, clf.base_url) == ("m-env", "http://x")
    # An explicit option beats the setting; without settings the environment is not consulted.
    assert create("judge", settings=s, model="m-opt").model == "m-opt"
    assert create("judge").model is None


def test_every_env_lookup_is_in_settings():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "mast").rglob("*.py")
                 if p.name != "settings.py" and ("os.environ" in p.read_text() or "getenv(" in p.read_text())]
    assert offenders == []


def test_classifiers_lists_options(mast):
    rows = {r["name"]: r for r in json.loads(mast("classifiers", "--json").stdout)}
    assert {"rules", "judge"} <= set(rows)
    judge_opts = {o["name"]: o for o in rows["judge"]["options"]}
    assert judge_opts["model"]["setting"] == "judge_model" and "MAST_JUDGE_MODEL" in judge_opts["model"]["help"]


def test_estimate_of_a_free_classifier_says_so(db, mast):
    write(db, [trace("pos", CASES["3.3"][0], task=TASK)])
    res = mast("classify", "--with", "rules", "--estimate")
    assert "nothing to estimate" in res.stderr


def test_system_is_a_repeatable_filter_everywhere(db, mast):
    write(db, [trace("a", CASES["3.3"][0], task=TASK, system="s1"),
               trace("b", CASES["3.3"][1], task=TASK, system="s2"),
               trace("c", CASES["3.3"][1], task=TASK + " again", system="s3")])
    listed = json.loads(mast("traces", "list", "--system", "s1", "--system", "s3", "--json").stdout)
    assert sorted(r["system"] for r in listed) == ["s1", "s3"]
    run = json.loads(mast("classify", "--system", "s1", "--system", "s2", "--json").stdout)
    assert run["traces"] == 2
    scored = json.loads(mast("evaluate", "--gold", "rules", "--pred", "rules", "--system", "s2", "--system", "s1",
                             "--json").stdout)
    assert scored["traces"] == 2 and scored["systems"] == ["s2", "s1"]

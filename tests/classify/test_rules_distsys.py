"""The distsys-v1 detectors on hand-made traces with a known answer: each fires on its
positive with exactly the evidence steps worked out by hand, and not on the matched
negative; rule files of a taxonomy run only for that taxonomy."""

from __future__ import annotations

import json

import pytest

from mast.classify.rules import RulesClassifier, load_detectors
from mast.classify.runner import Selection, run
from mast.errors import UsageError
from mast.model import Outcome, StepKind
from mast.store import Store
from mast.taxonomy import load as load_taxonomy

from rules_helpers import step, trace, write

DS = "distsys-v1"
TC, TR, HO = StepKind.TOOL_CALL, StepKind.TOOL_RESULT, StepKind.HANDOFF
TASK = "Estimate the population density of the city and write a short report."


def at(seconds: float) -> str:
    return f"2026-11-02T12:00:{seconds:06.3f}"


def call(agent, tool, args="{}", **kw):
    return step(agent, None, kind=TC, role="assistant", tool_name=tool, tool_args=args, **kw)


def result(agent, tool, content, status="ok", **kw):
    return step(agent, content, kind=TR, role="tool", tool_name=tool, status=status, **kw)


ASK = "Coder, please write the parser for the ISO dates as we discussed."
WAIT = "Planner, I need the exact format specification before I can start."
POST = '{"method": "POST", "url": "https://api.example.com/orders", "body": {"item": 7}}'

# mode -> (positive steps, the evidence steps it must give, negative steps)
CASES = {
    "DS1": (  # the researcher's failed search is built on by the analyst and the writer
        [step("user", TASK, role="user"), call("Researcher", "search"),
         result("Researcher", "search", "Error: connection reset by peer", status="error"),
         step("Researcher", "The search gave nothing, but the population is about 12 million."),
         step("Analyst", "Using the researcher's 12 million, the density is 2000 people per km2."),
         step("Writer", "Report: the city has 12 million people, 2000 per km2.")],
        [2, 4, 5],
        [step("user", TASK, role="user"), call("Researcher", "search"),
         result("Researcher", "search", "Error: connection reset by peer", status="error"),
         call("Researcher", "search"), result("Researcher", "search", "Population: 9.7 million (2025 census)"),
         step("Analyst", "With 9.7 million people the density is 1600 people per km2."),
         step("Writer", "Report: the city has 9.7 million people, 1600 per km2.")],
    ),
    "DS2": (  # ping-pong: both repeat themselves and nothing is run in between
        [step("user", TASK, role="user"), step("Planner", ASK), step("Coder", WAIT), step("Planner", ASK),
         step("Coder", WAIT), step("Planner", ASK)],
        [1, 2, 3, 4, 5],
        [step("user", TASK, role="user"), step("Planner", ASK), step("Coder", WAIT),
         call("Coder", "read_spec"), result("Coder", "read_spec", "ISO 8601 with offsets, e.g. 2026-11-02T12:00:00+01:00"),
         step("Planner", ASK), step("Coder", "The parser is written and handles offsets and the Z suffix.")],
    ),
    "DS3": (  # three workers hit the same API within one second
        [step("user", TASK, role="user"), step("Coordinator", "Fanning out to three workers now.", started_at=at(0)),
         call("w1", "search", started_at=at(0.1)), call("w2", "search", started_at=at(0.2)),
         call("w3", "search", started_at=at(0.3)),
         result("w1", "search", "Error code: 429 - Too Many Requests", status="error", started_at=at(0.6)),
         result("w2", "search", "RateLimitError: rate limit exceeded for this key", status="error", started_at=at(0.7)),
         result("w3", "search", "overloaded_error: Overloaded", status="error", started_at=at(0.9))],
        [5, 6, 7],
        # the same failures, one worker at a time, a minute apart: no herd
        [step("user", TASK, role="user"), step("Coordinator", "Asking the workers one by one.", started_at=at(0)),
         call("w1", "search", started_at=at(0.1)),
         result("w1", "search", "Error code: 429 - Too Many Requests", status="error", started_at=at(0.6)),
         call("w2", "search", started_at="2026-11-02T12:01:00.000"),
         result("w2", "search", "RateLimitError: rate limit exceeded", status="error", started_at="2026-11-02T12:01:00.500"),
         call("w3", "search", started_at="2026-11-02T12:02:00.000"),
         result("w3", "search", "overloaded_error: Overloaded", status="error", started_at="2026-11-02T12:02:00.500")],
    ),
    "DS4": (  # w3 takes 10 s while w1 and w2 are done in 1 and 1.5 s
        [step("Coordinator", "Split the work three ways.", span_id="c0", started_at=at(0), ended_at=at(12)),
         step("Coordinator", None, kind=HO, target_agent="w1", span_id="h1", parent_span_id="c0",
              started_at=at(0), ended_at=at(1)),
         step("Coordinator", None, kind=HO, target_agent="w2", span_id="h2", parent_span_id="c0",
              started_at=at(0), ended_at=at(1.5)),
         step("Coordinator", None, kind=HO, target_agent="w3", span_id="h3", parent_span_id="c0",
              started_at=at(0), ended_at=at(10)),
         step("Coordinator", "All three parts are in.", span_id="c1", started_at=at(11), ended_at=at(12))],
        [1, 2, 3],
        [step("Coordinator", "Split the work three ways.", span_id="c0", started_at=at(0), ended_at=at(3)),
         step("Coordinator", None, kind=HO, target_agent="w1", span_id="h1", parent_span_id="c0",
              started_at=at(0), ended_at=at(1)),
         step("Coordinator", None, kind=HO, target_agent="w2", span_id="h2", parent_span_id="c0",
              started_at=at(0), ended_at=at(1.5)),
         step("Coordinator", None, kind=HO, target_agent="w3", span_id="h3", parent_span_id="c0",
              started_at=at(0), ended_at=at(2)),
         step("Coordinator", "All three parts are in.", span_id="c1", started_at=at(2.5), ended_at=at(3))],
    ),
    "DS5": (  # the script failed and the coder says the task completed
        [step("user", TASK, role="user"), call("Coder", "run_script"),
         result("Coder", "run_script", "Traceback (most recent call last):\n  ValueError: bad date", status="error"),
         step("Coder", "The task completed successfully.")],
        [2, 3],
        [step("user", TASK, role="user"), call("Coder", "run_script"),
         result("Coder", "run_script", "Traceback (most recent call last):\n  ValueError: bad date", status="error"),
         call("Coder", "run_script"), result("Coder", "run_script", "exitcode: 0\n3 dates parsed"),
         step("Coder", "The task completed successfully.")],
    ),
    "DS6": (  # an order POSTed again after a 503
        [step("user", TASK, role="user"), call("Buyer", "http_request", POST),
         result("Buyer", "http_request", "503 Service Unavailable", status="error"),
         call("Buyer", "http_request", POST), result("Buyer", "http_request", '{"order_id": 41}')],
        [1, 2, 3],
        # the same retry of a read (GET) is harmless
        [step("user", TASK, role="user"), call("Buyer", "http_request", POST.replace("POST", "GET")),
         result("Buyer", "http_request", "503 Service Unavailable", status="error"),
         call("Buyer", "http_request", POST.replace("POST", "GET")), result("Buyer", "http_request", '{"order_id": 41}')],
    ),
}


ROLE = {d.mode: d.role for d in load_detectors(taxonomy=DS) if not d.prelude}


def distsys_labels(db, trace_id: str) -> dict[str, tuple[str, list[int]]]:
    """mode -> (label, evidence) of the distsys rules run: a label detector's present or
    absent by ``rules``, a signal detector's ``unknown`` hint by ``rules:signal``."""
    with Store(db) as st:
        rows = st.fetchall("SELECT mode, label, evidence_steps, annotator FROM annotations WHERE trace_id = ? "
                           "AND annotator LIKE 'rules%' AND taxonomy = ?", [trace_id, DS])
    out = {m: (lab, list(ev or [])) for m, lab, ev, who in rows if who == ("rules:signal" if ROLE[m] == "signal"
                                                                           else "rules")}
    # a signal's mode stays not assessed: never a label by `rules`
    assert not {m for m, _, _, who in rows if who == "rules" and ROLE[m] == "signal"}
    return out


def found(mode: str, evidence: list[int]) -> tuple[str, list[int]]:
    return ("unknown" if ROLE[mode] == "signal" else "present", evidence)


def not_found(labels: dict, mode: str) -> bool:
    """A label detector says absent; a signal detector says nothing."""
    return labels.get(mode) == ("absent", []) if ROLE[mode] == "label" else mode not in labels


@pytest.fixture
def case_store(db):
    traces = []
    for mode, (pos, _, neg) in CASES.items():
        traces.append(trace(f"pos-{mode}", pos, task=TASK, outcome=Outcome.FAILURE))
        traces.append(trace(f"neg-{mode}", neg, task=TASK))
    ids = write(db, traces)
    with Store(db) as st:
        res = run(st, RulesClassifier(taxonomy=DS), Selection(), taxonomy=DS)
    assert res.errors == {}
    return ids


@pytest.mark.parametrize("mode", sorted(CASES))
def test_detector_fires_with_exact_evidence_and_not_on_negative(db, case_store, mode):
    pos, neg = distsys_labels(db, case_store[f"pos-{mode}"]), distsys_labels(db, case_store[f"neg-{mode}"])
    assert pos[mode] == found(mode, CASES[mode][1])
    assert not_found(neg, mode), neg


def test_handoffs_back_and_forth_are_a_livelock(db):
    hand = [step("user", TASK, role="user"), step("A", None, kind=HO, target_agent="B"),
            step("B", None, kind=HO, target_agent="A"), step("A", None, kind=HO, target_agent="B")]
    once = hand[:3] + [step("B", "Done: the report is written.")]
    ids = write(db, [trace("bounce", hand), trace("once", once)])
    with Store(db) as st:
        run(st, RulesClassifier(taxonomy=DS), Selection(), taxonomy=DS)
    assert distsys_labels(db, ids["bounce"])["DS2"] == found("DS2", [1, 2, 3])
    assert not_found(distsys_labels(db, ids["once"]), "DS2")


def test_herd_needs_rate_limit_errors(db):
    pos, _, _ = CASES["DS3"]
    other = [s for s in pos]
    other[5:8] = [result(f"w{i}", "search", "Error: no such file or directory", status="error", started_at=at(0.6 + i / 10))
                  for i in (1, 2, 3)]
    ids = write(db, [trace("not-a-herd", other)])
    with Store(db) as st:
        run(st, RulesClassifier(taxonomy=DS), Selection(), taxonomy=DS)
    assert not_found(distsys_labels(db, ids["not-a-herd"]), "DS3")


def test_each_taxonomy_runs_only_its_own_detectors(db, case_store):
    mast_rules, ds_rules = RulesClassifier(), RulesClassifier(taxonomy=DS)
    assert {d.taxonomy for d in mast_rules.detectors if not d.prelude} == {"mast-v1"}
    assert {d.mode for d in ds_rules.detectors if not d.prelude} == {"DS1", "DS2", "DS3", "DS4", "DS5", "DS6"}
    # both share the feature pass
    assert [d.name for d in ds_rules.detectors if d.prelude] == ["_features"]
    ds, mast = load_taxonomy(DS), load_taxonomy("mast-v1")
    # covers() answers per taxonomy, whichever taxonomy the instance was built for
    assert mast_rules.covers(ds) == ds_rules.covers(ds) == ds_rules.label_modes() == {m for m, r in ROLE.items()
                                                                                        if r == "label"}
    assert ds_rules.covers(mast) == mast_rules.covers(mast) and not (ds_rules.covers(mast) & set(ds.mode_ids))
    assert mast_rules.version != ds_rules.version
    with Store(db) as st:
        run(st, mast_rules, Selection())
        # a run of the distsys rules records its own taxonomy even when the caller names none
        again = run(st, RulesClassifier(taxonomy=DS), Selection(trace_ids=(case_store["pos-DS1"],)))
        assert st.fetchall("SELECT taxonomy FROM runs WHERE run_id = ?", [again.run_id]) == [(DS,)]
        by_tax = dict(st.fetchall("SELECT taxonomy, list(DISTINCT mode ORDER BY mode) FROM annotations "
                                  "WHERE annotator LIKE 'rules%' GROUP BY taxonomy"))
        # a second taxonomy's run leaves the root causes to the default one's
        roots = st.fetchall("SELECT count(*) FROM attributions a JOIN runs r USING (run_id) "
                            "WHERE r.taxonomy = ?", [DS])[0][0]
    assert set(by_tax[DS]) <= set(ds.mode_ids) and not set(by_tax["mast-v1"]) & set(ds.mode_ids)
    assert roots == 0


def test_unknown_taxonomy_is_refused():
    with pytest.raises(UsageError, match="unknown taxonomy 'nope'"):
        RulesClassifier(taxonomy="nope")


def test_cli_classify_and_taxonomy_listing(db, mast):
    pos, evidence, _ = CASES["DS1"]
    ids = write(db, [trace("pos", pos, task=TASK)])
    res = mast("classify", "--with", "rules", "-t", DS, "--json")
    summary = json.loads(res.stdout)
    assert summary["present_by_mode"].get("DS1", 0) == (ROLE["DS1"] == "label")
    assert distsys_labels(db, ids["pos"])["DS1"] == found("DS1", evidence)
    with Store(db) as st:
        assert st.fetchall("SELECT taxonomy FROM runs WHERE run_id = ?", [summary["run_id"]]) == [(DS,)]
    listing = json.loads(mast("taxonomy", "-t", DS, "--json").stdout)
    names = {m["id"]: m["name"] for m in listing["modes"]}
    assert names["DS2"] == "Livelock or deadlock" and names["DS3"] == "Thundering herd" and len(names) == 8
    covered = {m["id"] for m in listing["modes"] if "rules" in m["covered_by"]}
    roles = {d.mode: d.role for d in load_detectors(taxonomy=DS) if not d.prelude}
    assert covered == {m for m, r in roles.items() if r == "label"}
    assert not {"DS7", "DS8"} & covered
    bad = mast("classify", "--with", "rules", "-t", DS, "-C", "taxonomy=mast-v1", expect=None)
    assert bad.exit_code != 0 and "disagrees with -t" in bad.stderr


def test_judge_assesses_split_brain_through_the_openai_client(db, mast):
    """DS7/DS8 have no detector: the judge renders distsys-v1 into its prompt and its
    verdicts are stored under that taxonomy (official client, real HTTP server)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _openai_server import OpenAIServer, Response, completion

    seen: list[list[str]] = []

    def responder(body):
        # the modes the judge asks about are those its reply schema requires
        schema = body["response_format"]["json_schema"]["schema"]
        ids = schema["properties"]["verdicts"]["required"]
        seen.append(ids)
        split = "I own the deploy step" in body["messages"][1]["content"]
        verdicts = {m: {"verdict": "present" if split and m == "DS7" else "absent", "confidence": 0.8,
                        "evidence_steps": [1, 2] if split and m == "DS7" else [], "rationale": "scripted"}
                    for m in ids}
        return Response(200, completion(json.dumps({"verdicts": verdicts, "root_cause": None}), body))

    server = OpenAIServer().start()
    server.responder = responder
    try:
        steps = [step("user", TASK, role="user"), step("A", "I own the deploy step and will run it now."),
                 step("B", "I own the deploy step too; starting it.")]
        ids = write(db, [trace("split", steps, task=TASK)])
        mast("classify", "--with", "judge", "-t", DS, "--model", "gpt-4o-mini", "--base-url", server.base_url)
    finally:
        server.stop()
    assert seen and set(seen[0]) == set(load_taxonomy(DS).mode_ids)
    with Store(db) as st:
        rows = dict(st.fetchall("SELECT mode, label FROM annotations WHERE trace_id = ? AND taxonomy = ? "
                                "AND annotator LIKE 'judge%'", [ids["split"], DS]))
    assert rows["DS7"] == "present" and rows["DS8"] == "absent" and len(rows) == 8

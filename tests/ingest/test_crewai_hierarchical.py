"""CrewAI hierarchical delegation is a handoff, in every artefact, with the right agents (issue 12, item 4).

``crewai/hierarchical/`` comes from one real ``Process.hierarchical`` crew per artefact
(tests/fixtures/frameworks/generators/gen_crewai.py): CrewAI's "Crew Manager" delegates to
the Researcher (who calls ``web_search``), then to the Writer, then answers.
``facts.json`` holds what CrewAI itself reported: the delegation tool's start events
(delegator, coworker), the tools that ran and the usage the stand-in served.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from mast.store import Store

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "crewai"
FACTS = json.loads((FIX / "facts.json").read_text())["scenarios"]["hierarchical"]
ARTEFACTS = ["event_bus.jsonl", "crewai_native.otlp.json", "openinference_wrappers.otlp.json",
             "openinference_events.otlp.json"]


def _steps(db):
    with Store(db, read_only=True) as st:
        [(tin, tout)] = st.fetchall("SELECT tokens_in, tokens_out FROM traces")
        rows = st.fetchall("SELECT step, agent, kind, tool_name, target_agent, status FROM steps "
                           "WHERE kind <> 'event' ORDER BY step")
    return (tin, tout), rows


@pytest.mark.parametrize("name", ARTEFACTS)
def test_delegation_is_a_handoff_from_the_manager_in_order(name, mast, db):
    mast("ingest", FIX / "hierarchical" / name)
    _, rows = _steps(db)
    assert [[a, t] for _, a, k, _, t, _ in rows if k == "handoff"] == FACTS["delegations"]
    assert not [r for r in rows if r[2] == "tool_call" and "coworker" in (r[3] or "").lower()]


@pytest.mark.parametrize("name", ARTEFACTS)
def test_each_step_belongs_to_the_agent_that_did_it(name, mast, db):
    mast("ingest", FIX / "hierarchical" / name)
    tokens, rows = _steps(db)
    assert list(tokens) == [FACTS["tokens_in"], FACTS["tokens_out"]]
    # the Researcher's own tool call is the Researcher's, not the manager's
    searches = [(a, k) for _, a, k, tool, _, _ in rows if tool == "web_search"]
    assert searches == [("Researcher", "tool_call"), ("Researcher", "tool_result")] * len(FACTS["tools"])
    assert {a for _, a, k, *_ in rows if k == "llm_call"} == set(FACTS["agents"])
    # the run ends with the manager's answer
    assert rows[-1][2] == "termination" and rows[-1][1] == "Crew Manager"


@pytest.mark.parametrize("name", ARTEFACTS)
def test_delegation_result_comes_after_the_delegates_work(name, mast, db):
    mast("ingest", FIX / "hierarchical" / name)
    _, rows = _steps(db)
    for (_, target), h in zip(FACTS["delegations"], [r for r in rows if r[2] == "handoff"]):
        result = next(r for r in rows if r[0] > h[0] and r[2] == "tool_result" and r[1] == "Crew Manager")
        between = [r for r in rows if h[0] < r[0] < result[0]]
        assert between and {r[1] for r in between} == {target}, between
        assert result[5] == "ok"


def test_every_artefact_finds_the_crews_task(mast, db):
    # OpenInference keeps the task as CrewAI's template plus the kickoff inputs; the
    # event bus and CrewAI's own spans carry it filled in
    for name in ARTEFACTS:
        mast("ingest", FIX / "hierarchical" / name)
    with Store(db, read_only=True) as st:
        tasks = {fmt: task for fmt, task in st.fetchall("SELECT source_path, task FROM traces")}
    assert len(set(tasks.values())) == 1, tasks
    assert "LangGraph and CrewAI" in next(iter(tasks.values()))

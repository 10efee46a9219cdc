"""Coordination metrics on a real store, numbers worked out by hand."""

from __future__ import annotations

import pytest

from mast.coordination import coordination
from mast.model import Outcome, Step, StepKind, Trace
from mast.store import Store
from tests.report.conftest import build_small


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.duckdb"
    build_small(path)  # alpha: 4 traces, beta: 2; each 6 steps (see tests/report/conftest.py)
    with Store(path) as st:
        empty = Trace(system="gamma", framework=None, source_format="messages", source_path="/e.json",
                      source_index=0, steps=[], outcome=Outcome.UNKNOWN).finalise()
        chat = Trace(system="delta", framework=None, source_format="messages", source_path="/c.json", source_index=0,
                     steps=[Step(agent="a", content="hi"), Step(agent="b", content="hello"),
                            Step(agent="a", content="hi"), Step(agent="b", content="Hi"), Step(agent=None, content=None, kind=StepKind.TERMINATION)],
                     outcome=Outcome.UNKNOWN).finalise()
        with st.transaction():
            st.write_traces([empty, chat])
        yield st


def test_steps_by_kind_and_repeats(store):
    c = {s.system: s for s in coordination(store).systems}
    a = c["alpha"]
    # per trace: 2 messages (planner, tester), 4 work steps (2 tool calls, 2 tool results)
    assert (a.traces, a.steps, a.message_steps, a.work_steps, a.other_steps) == (4, 24, 8, 16, 0)
    assert a.message_share == pytest.approx(1 / 3) and a.work_share == pytest.approx(2 / 3)
    assert a.addressed_messages == 8  # both messages name a recipient
    # the tool says "Traceback: AssertionError" twice in every trace
    assert (a.repeated_steps, a.looping_traces, a.looping_share) == (4, 4, 1.0)
    assert a.tokens == 4 * 315 and a.cost_usd == pytest.approx(4 * 0.026)
    d = c["delta"]
    # a's second "hi" repeats; b's "Hi" is not b's repeat; the termination step is "other"
    assert (d.steps, d.message_steps, d.other_steps, d.repeated_steps, d.looping_traces) == (5, 4, 1, 1, 1)
    assert d.tokens is None and d.cost_usd is None  # not recorded is not zero
    g = c["gamma"]
    assert (g.traces, g.steps, g.message_share, g.tokens) == (1, 0, None, None)


def test_tokens_per_agent(store):
    agents = {a.agent: a for a in coordination(store, ["alpha"]).agents}
    assert set(agents) == {"planner", "coder", "tool", "tester"}
    assert (agents["coder"].tokens, agents["coder"].work_steps) == (4 * 240, 8)
    assert (agents["planner"].tokens, agents["planner"].message_steps) == (4 * 15, 4)
    assert agents["tool"].tokens is None and agents["tool"].steps == 8
    # sorted by tokens: the coder first
    assert coordination(store, ["alpha"]).agents_of("alpha")[0].agent == "coder"


def test_system_filter(store):
    res = coordination(store, ["beta", "delta"])
    assert [s.system for s in res.systems] == ["beta", "delta"]
    assert {a.system for a in res.agents} == {"beta", "delta"}

"""The root-cause model's features and step choice, checked against values worked out by
hand (the columns are built by sorts and segment reductions over many traces at once, so
a slip at a trace boundary would shift values between traces)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mast.classify.hooks import ingest_hooks
from mast.classify.learned import features as F
from mast.classify.learned.train import agent_codes, choose
from mast.model import Outcome, Step, StepKind, Trace
from mast.store import Store


def _run(name: str, agents: list[str | None], error_at: int | None) -> Trace:
    steps = []
    for j, ag in enumerate(agents):
        if j == error_at:
            steps.append(Step(agent=ag, role="tool", kind=StepKind.TOOL_RESULT,
                              content="exitcode: 1 (execution failed)\nTraceback (most recent call last):\n  KeyError"))
        else:
            steps.append(Step(agent=ag, role="user" if j == 0 else "assistant",
                              content=f"{name}: step {j} says something different each time ({j * 7})."))
    return Trace(system="hand", framework="test", source_format="test", source_path=f"{name}.json", source_index=0,
                 steps=steps, task="Do the thing", outcome=Outcome.FAILURE, metadata={"source_id": name})


#: (agents, error step) of three runs read together: the middle one is the worked example
RUNS = {
    "a": (["user", "Coder", "Coder"], None),
    "b": (["user", "Coder", "Executor", "Coder", "Reviewer", "Coder"], 2),
    "c": (["Reviewer", None, None, "Reviewer"], 0),
}


@pytest.fixture
def frame(db):
    traces = {k: _run(k, *v) for k, v in RUNS.items()}
    with Store(db) as st:
        with st.transaction():
            st.write_traces(list(traces.values()), ingest_hooks())
        ids = [traces[k].trace_id for k in "abc"]
        order = sorted(range(3), key=lambda i: ids[i])  # a selection is read in trace-id order
        batches = [[ids[i]] for i in order]
        fr = F.read_batches(st, batches)
    X = F.frame_dense(fr)
    keys, offsets = F.spans(fr)
    rows = {"abc"[order[int(k)]]: (int(a), int(b)) for k, a, b in zip(keys, offsets[:-1], offsets[1:])}
    return X, rows


def col(X, rows, run: str, name: str) -> list[float]:
    a, b = rows[run]
    return [round(float(v), 6) for v in X[a:b, F.DENSE.index(name)]]


L = [round(math.log1p(k), 6) for k in range(4)]

# run b: user, Coder, Executor (error), Coder, Reviewer, Coder
EXPECTED_B = {
    "agent_share": [1 / 6, 3 / 6, 1 / 6, 3 / 6, 1 / 6, 3 / 6],
    "agent_first_turn": [1, 1, 1, 0, 1, 0],
    "agent_last_turn": [1, 0, 1, 0, 1, 1],
    "agent_ordinal_log": [0, 0, 0, L[1], 0, L[2]],
    "agent_is_top": [0, 1, 0, 1, 0, 1],
    "agent_is_opener": [1, 0, 0, 0, 0, 0],
    "agent_changes": [0, 1, 1, 1, 1, 1],
    "next_same_agent": [0, 0, 0, 0, 0, 0],
    "is_first_error": [0, 0, 1, 0, 0, 0],
    "before_first_error": [1, 1, 0, 0, 0, 0],
    "just_before_first_error": [0, 1, 0, 0, 0, 0],
    "after_first_error": [0, 0, 0, 1, 1, 1],
    "trace_has_error": [1] * 6,
    "next_is_error": [0, 1, 0, 0, 0, 0],
    "next_is_exec": [0, 1, 0, 0, 0, 0],
    "prev_is_error": [0, 0, 0, 1, 0, 0],
    "errors_after_log": [L[1], L[1], 0, 0, 0, 0],
    "first_of_agent_after_error": [0, 0, 0, 1, 1, 0],
    "is_last": [0, 0, 0, 0, 0, 1],
    "pos_rel": [0, 0.2, 0.4, 0.6, 0.8, 1.0],
    # agent-level
    "agent_is_last_speaker": [0, 1, 0, 1, 0, 1],
    "agent_turns_left_log": [0, L[2], 0, L[1], 0, 0],
    "agent_is_second_speaker": [0, 1, 0, 1, 0, 1],
    "agent_errors_after_share": [0, 1 / 3, 0, 1 / 3, 0, 1 / 3],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_B))
def test_worked_example(frame, name):
    X, rows = frame
    assert col(X, rows, "b", name) == [round(float(v), 6) for v in EXPECTED_B[name]]


def test_nothing_leaks_across_trace_boundaries(frame):
    X, rows = frame
    # a: no error anywhere, whatever its neighbours in the frame hold
    for name in ("trace_has_error", "next_is_error", "prev_is_error", "after_first_error", "errors_after_log"):
        assert col(X, rows, "a", name) == [0, 0, 0]
    assert col(X, rows, "a", "next_same_agent") == [0, 1, 0]
    assert col(X, rows, "a", "agent_is_last_speaker") == [0, 1, 1]
    # c: the error is its first step; steps without an agent are one agent of their own
    assert col(X, rows, "c", "is_first_error") == [1, 0, 0, 0]
    assert col(X, rows, "c", "prev_is_error") == [0, 1, 0, 0]
    assert col(X, rows, "c", "agent_share") == [0.5] * 4
    assert col(X, rows, "c", "next_same_agent") == [0, 1, 0, 0]
    assert col(X, rows, "c", "first_of_agent_after_error") == [0, 1, 0, 1]
    assert col(X, rows, "c", "agent_is_opener") == [1, 0, 0, 1]


def _choose_by_hand(s, offsets, agents, rule):
    """The documented choice, one trace at a time."""
    out = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        e = np.exp(s[a:b] - s[a:b].max())
        p = e / e.sum()
        best = max(range(b - a), key=lambda j: (s[a + j], -j))
        if rule == "step":
            out.append((a + best, p[best]))
            continue
        mass: dict = {}
        for j in range(b - a):
            mass[agents[a + j]] = mass.get(agents[a + j], 0.0) + p[j]
        top = max(mass, key=lambda k: mass[k])  # the first agent seen wins a tie
        j = max((j for j in range(b - a) if agents[a + j] == top), key=lambda j: (s[a + j], -j))
        out.append((a + j, mass[top]))
    return out


@pytest.mark.parametrize("rule", ["step", "mass"])
def test_choose_equals_the_choice_made_trace_by_trace(rule):
    rng = random.Random(3)
    for trial in range(60):
        sizes = [rng.randint(1, 9) for _ in range(25)]
        offsets = np.cumsum([0, *sizes])
        # few distinct scores: ties inside a trace are common
        s = np.array([float(rng.randint(0, 2 + trial % 3)) for _ in range(offsets[-1])])
        agents = [rng.choice([None, "A", "B", "C"]) for _ in range(offsets[-1])]
        rows, conf = choose(s, offsets, agent_codes(agents), rule)
        want = _choose_by_hand(s, offsets, agents, rule)
        assert rows.tolist() == [r for r, _ in want]
        assert np.allclose(conf, [c for _, c in want])

"""The column-wise encoder and the one-text trace id against the row-wise recipe they replaced.

``_reference_id`` and ``_reference_steps`` are the first versions (hash every field
piecewise; one tuple per step), kept here as the specification: the fast versions must
give the same ids and the same Arrow tables, including for the values fixtures rarely
hold (tokens and costs on some steps only, a non-text value, equal-but-different JSON
values such as ``1`` and ``True``, lone surrogates).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from mast.ingest.faults import encode_safely
from mast.model import Attribution, Outcome, Step, StepKind, Trace
from mast.store.encode import STEP_SCHEMA, encode_traces


def _reference_id(t: Trace) -> str:
    h = hashlib.sha256()
    h.update(t.source_format.encode())
    h.update(b"\x00")
    h.update((t.task or "").encode("utf-8", "surrogatepass"))
    for s in t.steps:
        h.update(b"\x1e")
        for v in (s.agent, s.kind.value, s.role, s.tool_name, s.tool_args, s.target_agent,
                  s.span_id, s.started_at, s.content):
            h.update(b"\x1f")
            if v is not None:
                h.update(str(v).encode("utf-8", "surrogatepass"))
    ident = t.metadata.get("source_id")
    if ident is not None:
        h.update(b"\x1d" + json.dumps(ident, sort_keys=True, default=str).encode())
    return f"t1-{h.hexdigest()[:32]}"


def _reference_steps(traces: list[Trace]) -> pa.Table:
    rows = []
    for seq, t in enumerate(traces):
        for i, s in enumerate(t.steps):
            a = s.attributes
            rows.append((seq, t.trace_id, i, s.span_id, s.parent_span_id, s.agent, s.role, s.kind.value,
                         s.content, s.tool_name, s.tool_args, s.target_agent, s.started_at, s.ended_at,
                         s.tokens_in, s.tokens_out, s.cost_usd, s.status,
                         json.dumps(a, ensure_ascii=False, default=str) if a else None))
    cols = list(zip(*rows)) if rows else [[] for _ in STEP_SCHEMA]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, STEP_SCHEMA)], schema=STEP_SCHEMA)


def _traces() -> list[Trace]:
    steps = [
        Step("planner", "Plan: ask the coder.", role="assistant", attributes={"flag": 1}),
        Step("planner", None, StepKind.TOOL_CALL, role="assistant", tool_name="search", tool_args='{"q": "x"}',
             span_id="c1", started_at="2026-01-01T00:00:00+00:00", tokens_in=10, tokens_out=3, cost_usd=0.25,
             attributes={"flag": True}),
        Step("planner", "result", StepKind.TOOL_RESULT, role="tool", parent_span_id="c1", status="ok",
             ended_at="2026-01-01T00:00:02+00:00", cost_usd=0.5, attributes={"flag": "1"}),
        Step("coder", "", StepKind.HANDOFF, target_agent="planner", tokens_out=7,
             attributes={"nested": {"a": [1, 2.5, None]}, "text": "é\n\"\u2028"}),
        Step(None, "   ", StepKind.TERMINATION, status="completed", attributes={}),
    ]
    return [
        Trace("sys", "fw", "messages", "a.json", 0, steps=steps, task="Fix the bug", outcome=Outcome.FAILURE,
              metadata={"source_id": ["run", 7]}, attributions=[Attribution("human", "coder", 1)]),
        Trace(None, None, "messages", "a.json", 1, steps=[], task=None),  # no steps at all
        Trace("sys", None, "messages", "a.json", 2, steps=[Step("solo", "only step")], task="t",
              started_at="2026-01-02T00:00:00+00:00", metadata={"k": {"z": 1}}),
    ]


def test_ids_are_the_piecewise_recipe():
    for t in _traces():
        assert t.compute_id() == _reference_id(t)
    tables = encode_traces(_traces())
    assert tables.traces.column("trace_id").to_pylist() == [_reference_id(t) for t in _traces()]


def test_id_of_a_value_that_is_not_text_is_its_str():
    # an importer that leaves an int in a text field still gets the id it always had
    t = Trace(None, None, "messages", "a.json", 0, steps=[Step(42, "x", role=7)], task="t")
    assert t.compute_id() == _reference_id(t)


def test_steps_table_equals_the_row_wise_one():
    traces = _traces()
    tables = encode_traces(traces)
    want = _reference_steps(traces)
    assert tables.steps.equals(want), (tables.steps.to_pylist(), want.to_pylist())
    # 1, True and "1" are equal dict keys but three different JSON values
    assert tables.steps.column("attributes").to_pylist()[:3] == ['{"flag": 1}', '{"flag": true}', '{"flag": "1"}']


def test_totals_equal_trace_totals():
    traces = _traces()
    t = encode_traces(traces).traces
    for i, tr in enumerate(traces):
        tt = tr.totals()
        got = {c: t.column(c)[i].as_py() for c in ("n_steps", "n_agents", "tokens_in", "tokens_out", "cost_usd",
                                                    "started_at", "ended_at")}
        assert got == {"n_steps": tt.n_steps, "n_agents": tt.n_agents, "tokens_in": tt.tokens_in,
                       "tokens_out": tt.tokens_out, "cost_usd": tt.cost_usd, "started_at": tt.started_at,
                       "ended_at": tt.ended_at}
    assert t.column("cost_usd")[0].as_py() == pytest.approx(0.75)
    assert t.column("tokens_in")[1].as_py() is None


def test_lone_surrogate_keeps_the_id_of_the_text_as_read():
    t = Trace(None, None, "messages", "a.json", 0, steps=[Step("a", "half an emoji \ud83d")], task="t")
    want = _reference_id(t)
    tables = encode_safely([t])  # pyarrow refuses the surrogate; the retry scrubs it
    assert tables.traces.column("trace_id").to_pylist() == [want]
    assert tables.steps.column("content").to_pylist() == ["half an emoji \ufffd"]


def test_an_attributes_dict_shared_by_steps_is_the_json_of_each():
    # an importer may give several steps one dict (CrewAI's call and result of an action):
    # each step's JSON is still that dict's, and equal dicts that are not shared as well
    shared = {"line": 3}
    steps = [Step("a", "call", StepKind.TOOL_CALL, attributes=shared),
             Step("a", "result", StepKind.TOOL_RESULT, attributes=shared),
             Step("a", "again", attributes={"line": 3}), Step("a", "other", attributes={"line": True}),
             Step("a", "no attributes", attributes=None), Step("a", "last", attributes=shared)]
    traces = [Trace("sys", "fw", "messages", "a.json", 0, steps=steps, task="t")]
    tables = encode_traces(traces)
    assert tables.steps.equals(_reference_steps(traces))
    assert tables.steps.column("attributes").to_pylist() == ['{"line": 3}'] * 3 + ['{"line": true}', None,
                                                                                   '{"line": 3}']

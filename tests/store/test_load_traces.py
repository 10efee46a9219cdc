"""Store.load_traces: the typed read path (traces with their steps in step order)."""

from __future__ import annotations

from mast.model import DEFAULT_TAXONOMY, Annotation, Attribution, Label, Outcome, Step, StepKind, Trace
from mast.store import Store


def _trace(name: str, n: int) -> Trace:
    steps = [Step(agent=f"a{i % 3}", content=f"{name} says {i}", role="assistant",
                  kind=StepKind.TOOL_CALL if i % 4 == 1 else StepKind.MESSAGE,
                  tool_name="search" if i % 4 == 1 else None, tool_args='{"q": 1}' if i % 4 == 1 else None,
                  target_agent="a0" if i % 5 == 2 else None, span_id=f"s{i}", parent_span_id="s0" if i else None,
                  started_at=f"2025-03-01T10:00:{i % 60:02d}Z", tokens_in=i, tokens_out=2 * i, cost_usd=0.5,
                  status="ok", attributes={"i": i, "name": name})
             for i in range(n)]
    return Trace(system="S", framework="f", source_format="messages", source_path=f"{name}.json",
                 source_index=3, task=f"task of {name}", outcome=Outcome.FAILURE, steps=steps,
                 metadata={"source_id": name},
                 annotations=[Annotation(mode="1.3", label=Label.PRESENT, annotator="human", confidence=0.9,
                                         evidence_steps=[1, 2], rationale="loops"),
                              Annotation(mode="1.1", label=Label.ABSENT, annotator="human")],
                 attributions=[Attribution(annotator="human", agent="a1", step=1, rationale="here")])


def test_load_traces_round_trips_the_model_in_the_order_asked(db):
    a, b, empty = _trace("a", 3000), _trace("b", 5), _trace("e", 0)
    with Store(db) as st:
        with st.transaction():
            st.write_traces([a, b, empty])
        got = st.load_traces([b.trace_id, "t1-not-stored", a.trace_id, b.trace_id, empty.trace_id])
    assert [t.trace_id for t in got] == [b.trace_id, a.trace_id, empty.trace_id]
    lb, la, le = got
    assert le.steps == []
    assert len(la.steps) == 3000
    # steps in step order: position i is stored step i
    assert [s.content for s in la.steps] == [f"a says {i}" for i in range(3000)]
    s = lb.steps[1]
    assert (s.agent, s.kind, s.role, s.tool_name, s.tool_args, s.span_id, s.parent_span_id) == (
        "a1", StepKind.TOOL_CALL, "assistant", "search", '{"q": 1}', "s1", "s0")
    assert lb.steps[2].target_agent == "a0"
    assert (s.tokens_in, s.tokens_out, s.cost_usd, s.status) == (1, 2, 0.5, "ok")
    assert s.attributes == {"i": 1, "name": "b"}
    assert s.started_at == "2025-03-01T10:00:01+00:00"
    assert (lb.system, lb.framework, lb.source_format, lb.source_path, lb.source_index, lb.task, lb.outcome) == (
        "S", "f", "messages", "b.json", 3, "task of b", Outcome.FAILURE)
    assert lb.metadata == {"source_id": "b"}
    assert lb.started_at == "2025-03-01T10:00:00+00:00"  # from the first step, as stored
    assert lb.annotations == [] and lb.attributions == []  # labels only when asked


def test_load_traces_with_labels(db):
    t = _trace("x", 4)
    with Store(db) as st:
        with st.transaction():
            st.write_traces([t])
        [got] = st.load_traces([t.trace_id], labels=True)
        assert st.load_traces([]) == []
    assert [(a.annotator, a.mode, a.label, a.confidence, a.evidence_steps, a.rationale, a.taxonomy)
            for a in got.annotations] == [("human", "1.1", Label.ABSENT, None, [], None, DEFAULT_TAXONOMY),
                                          ("human", "1.3", Label.PRESENT, 0.9, [1, 2], "loops", DEFAULT_TAXONOMY)]
    assert all(a.trace_id == t.trace_id for a in got.annotations)
    [att] = got.attributions
    assert (att.annotator, att.agent, att.step, att.rationale, att.trace_id) == ("human", "a1", 1, "here", t.trace_id)

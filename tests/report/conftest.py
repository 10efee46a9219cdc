"""Stores for report tests: real DuckDB files written through the Store API.

``small_store`` holds two systems with labels from three annotators, chosen so that
each number on the page can be worked out by hand:

- alpha: 4 traces.  ``rules`` assessed modes 1.3 and 3.3 on all four (1.3 present on
  a0, a1; 3.3 present on a0), never 2.4.  ``human`` assessed all 14 modes on a0, a1
  (1.3 present on a0 only; 2.4 present on a1).  Root cause (human) of a0: agent
  "coder", step 2.
- beta: 2 traces, labelled by nobody (every mode "not assessed").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mast.model import Annotation, Attribution, Label, Outcome, Step, StepKind, Trace
from mast.store import Store
from mast.taxonomy import load

MODES = load().mode_ids


def steps_for(i: int, n: int = 6) -> list[Step]:
    out = [Step(agent="planner", content=f"Task {i}: write a function and test it.", kind=StepKind.MESSAGE,
                role="user", target_agent="coder", tokens_in=10, tokens_out=5, cost_usd=0.001)]
    for k in range(1, n):
        if k % 3 == 1:
            out.append(Step(agent="coder", content=f"step {k} of trace {i}: calling the tool", kind=StepKind.TOOL_CALL,
                            role="assistant", tool_name="python", tool_args='{"code": "print(1)"}',
                            tokens_in=100, tokens_out=20, cost_usd=0.01))
        elif k % 3 == 2:
            out.append(Step(agent="tool", content="Traceback: AssertionError", kind=StepKind.TOOL_RESULT,
                            role="tool", status="error"))
        else:
            out.append(Step(agent="tester", content=f"All tests pass for trace {i}.", kind=StepKind.MESSAGE,
                            role="assistant", target_agent="planner", tokens_in=50, tokens_out=10,
                            cost_usd=0.005))
    return out


def make_trace(system: str, i: int, outcome=Outcome.FAILURE, n: int = 6, task: str | None = None) -> Trace:
    return Trace(system=system, framework="ag2", source_format="messages", source_path=f"/data/{system}.json",
                 source_index=i, steps=steps_for(i, n), task=task or f"Task {i} of {system}", outcome=outcome,
                 metadata={"source_id": f"{system}-{i}"}).finalise()


def label_all(trace_id: str, annotator: str, present: set[str], modes=MODES, **kw) -> list[Annotation]:
    return [Annotation(mode=m, label=Label.PRESENT if m in present else Label.ABSENT, annotator=annotator,
                       trace_id=trace_id, **kw) for m in modes]


def build_small(path: Path) -> dict[str, str]:
    a = [make_trace("alpha", i, Outcome.FAILURE if i < 3 else Outcome.SUCCESS) for i in range(4)]
    b = [make_trace("beta", i, Outcome.UNKNOWN) for i in range(2)]
    ids = {f"a{i}": t.trace_id for i, t in enumerate(a)} | {f"b{i}": t.trace_id for i, t in enumerate(b)}
    with Store(path) as st:
        with st.transaction():
            st.write_traces(a + b)
        ann: list[Annotation] = []
        for i, t in enumerate(a):
            present = {"1.3"} if i in (0, 1) else set()
            if i == 0:
                present.add("3.3")
            for m in ("1.3", "3.3"):
                ann.append(Annotation(mode=m, label=Label.PRESENT if m in present else Label.ABSENT,
                                      annotator="rules", trace_id=t.trace_id, confidence=0.9 if m in present else None,
                                      evidence_steps=[2, 3] if m in present else [],
                                      rationale=f"rule saw {m} in trace {i}" if m in present else None))
            # "unknown" never counts as assessed
            ann.append(Annotation(mode="2.4", label=Label.UNKNOWN, annotator="rules", trace_id=t.trace_id))
        ann += label_all(ids["a0"], "human", {"1.3"}, rationale="humans agree on repetition")
        ann += label_all(ids["a1"], "human", {"2.4"})
        st.write_annotations(ann)
        st.write_attributions([Attribution(annotator="human", agent="coder", step=2, trace_id=ids["a0"],
                                           rationale="the coder ignored the traceback")])
    return ids


def add_signal(path: Path, trace_id: str) -> None:
    """A rules signal (a hint, not a label) on ``trace_id``: mode 1.5, evidence step 4."""
    with Store(path) as st:
        st.write_annotations([Annotation(mode="1.5", label=Label.UNKNOWN, annotator="rules:signal", trace_id=trace_id,
                                         confidence=0.5, evidence_steps=[4],
                                         rationale="the task was declared done at step 4 [termination_unaware]")])


@pytest.fixture
def small_store(tmp_path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "small.duckdb"
    return path, build_small(path)


XSS = [
    '<script>window.__pwned = "script"; document.title = "PWNED"</script>',
    '<img src=x onerror="window.__pwned=\'img\'; document.title=\'PWNED\'">',
    '<a href="javascript:window.__pwned=\'link\'">click me</a>',
    '</script><script>window.__pwned="json-breakout"</script>',
    '<!-- <script>window.__pwned="comment"</script>',
    '\u2028\u2029 line separators \u2028',
    '"><svg onload="window.__pwned=\'svg\'">',
    "<iframe src=\"https://example.com/x\"></iframe><link rel=stylesheet href=https://example.com/a.css>",
    "{{ 7*7 }} ${7*7} <style>body{background:url(https://example.com/track.png)}</style>",
]


def build_xss(path: Path) -> str:
    payload = "\n".join(XSS)
    steps = [Step(agent=f"agent{XSS[1]}", content=payload, kind=StepKind.MESSAGE, role="assistant",
                  target_agent=XSS[0]),
             Step(agent="coder</script>", content=XSS[3], kind=StepKind.TOOL_CALL, tool_name=XSS[2],
                  tool_args=XSS[6]),
             Step(agent="tester", content=payload, kind=StepKind.ERROR, status=XSS[4])]
    t = Trace(system=f"sys{XSS[0]}", framework=XSS[2], source_format="messages", source_path="/x.json",
              source_index=0, steps=steps, task=payload, outcome=Outcome.FAILURE).finalise()
    with Store(path) as st:
        with st.transaction():
            st.write_traces([t])
        st.write_annotations([
            Annotation(mode="1.3", label=Label.PRESENT, annotator=f"rules{XSS[3]}", trace_id=t.trace_id,
                       confidence=0.7, evidence_steps=[1], rationale=payload),
            Annotation(mode="3.3", label=Label.PRESENT, annotator="human", trace_id=t.trace_id,
                       evidence_steps=[2], rationale=payload)])
        st.write_attributions([Attribution(annotator="human", agent=XSS[1], step=1, trace_id=t.trace_id,
                                           rationale=payload)])
    return t.trace_id

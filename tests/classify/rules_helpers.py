"""Hand-made traces for the rule tests, written through the Store API into a temp store."""

from __future__ import annotations

from mast.classify.hooks import ingest_hooks
from mast.model import Outcome, Step, StepKind, Trace
from mast.store import Store


def step(agent, content, kind=StepKind.MESSAGE, role="assistant", **kw) -> Step:
    return Step(agent=agent, content=content, kind=kind, role=role, **kw)


def trace(name: str, steps: list[Step], task: str | None = None, outcome: Outcome = Outcome.UNKNOWN,
          system: str = "test") -> Trace:
    return Trace(system=system, framework="test", source_format="test", source_path=f"{name}.json", source_index=0,
                 steps=steps, task=task, outcome=outcome, metadata={"source_id": name, "name": name})


def write(db, traces: list[Trace]) -> dict[str, str]:
    """Store traces as ingest does (with the classifiers' write hooks); returns name -> trace_id."""
    with Store(db) as st:
        with st.transaction():
            st.write_traces(traces, ingest_hooks())
    return {t.metadata["name"]: t.trace_id for t in traces}


TASK = "Write a Python function parse_iso_dates that parses ISO timestamps with timezone offsets into datetime objects."

_CODE = "```python\ndef parse_iso_dates(values):\n    return [datetime.fromisoformat(v) for v in values]\n```"

# mode -> (positive steps, negative steps): each negative is the positive with the failure removed.
CASES: dict[str, tuple[list[Step], list[Step]]] = {
    "1.3": (
        [step("user", TASK, role="user"),
         step("Coder", "I will now look up the documentation for the datetime module and report back."),
         step("Tester", "Okay."),
         step("Coder", "I will now look up the documentation for the datetime module and report back."),
         step("Coder", "I will now look up the documentation for the datetime module and report back!")],
        [step("user", TASK, role="user"),
         step("Coder", "I will now look up the documentation for the datetime module and report back."),
         step("Tester", "Okay."),
         step("Coder", "The documentation says fromisoformat accepts offsets since Python 3.7."),
         step("Coder", "Here is my plan: parse each value, then normalise the timezone.")],
    ),
    "1.4": (
        [step("user", TASK, role="user"), step("Planner", "Where should the output go?"),
         step("Coder", "Where is the input file?"),
         step("Planner", "As I mentioned earlier, the input file is data/in.txt.")],
        [step("user", TASK, role="user"), step("Planner", "Where should the output go?"),
         step("Coder", "Where is the input file?"),
         step("Planner", "The input file is data/in.txt.")],
    ),
    "1.5": (
        [step("user", TASK, role="user"), step("Coder", "Working on the parser now."),
         step("chat_manager", "Maximum number of rounds reached, stopping the conversation.", kind=StepKind.EVENT)],
        [step("user", TASK, role="user"), step("Coder", "Working on the parser now."),
         step("chat_manager", "The conversation ended normally.", kind=StepKind.EVENT)],
    ),
    "2.1": (
        [step("user", TASK, role="user"), step("Coder", "Plan: use fromisoformat for each value."),
         step("Coder", _CODE),
         step("Planner", TASK + " Let us begin with a plan."),
         step("Coder", "Plan: use fromisoformat for each value.")],
        [step("user", TASK, role="user"), step("Coder", "Plan: use fromisoformat for each value."),
         step("Coder", _CODE),
         step("Planner", "Good, now handle the trailing Z suffix as UTC."),
         step("Coder", "Updated the parser for the Z suffix.")],
    ),
    "2.3": (
        [step("user", TASK, role="user"),
         step("Planner", "We need parse_iso_dates to handle timestamps with timezone offsets."),
         step("Coder", "parse_iso_dates converts ISO timestamps into datetime objects, offsets included."),
         step("Tester", "I will check timestamps with timezone offsets and datetime objects."),
         step("Planner", "Meanwhile, what is everyone's favourite pasta recipe?"),
         step("Coder", "I like lasagne with plenty of basil and a slow tomato sauce."),
         step("Tester", "Carbonara: eggs, pecorino, guanciale, black pepper."),
         step("Planner", "Great, let us all cook dinner together tonight then."),
         step("Coder", "I will bring dessert, maybe a tiramisu as well.")],
        [step("user", TASK, role="user"),
         step("Planner", "We need parse_iso_dates to handle timestamps with timezone offsets."),
         step("Coder", "parse_iso_dates converts ISO timestamps into datetime objects, offsets included."),
         step("Tester", "I will check timestamps with timezone offsets and datetime objects."),
         step("Planner", "Next, the timezone offsets with minutes, such as +05:30."),
         step("Coder", "parse_iso_dates now keeps the timezone offsets on the datetime objects."),
         step("Tester", "Timestamps with timezone offsets give aware datetime objects."),
         step("Planner", "The parse_iso_dates function handles every ISO timestamps case."),
         step("Coder", "Final parse_iso_dates returns datetime objects with timezone offsets.")],
    ),
    "2.6": (
        [step("human", TASK, role="user"), step("Orchestrator", "Please search the web for the spec."),
         step("Orchestrator", "Next speaker WebSurfer"),
         step("FileSurfer", "I opened the local file spec.txt.")],
        [step("human", TASK, role="user"), step("Orchestrator", "Please search the web for the spec."),
         step("Orchestrator", "Next speaker WebSurfer"),
         step("WebSurfer", "I searched the web and found the spec.")],
    ),
    "3.1": (
        [step("user", TASK, role="user"), step("Coder", "Let me run it."),
         step("Coder", None, kind=StepKind.TOOL_CALL, tool_name="python", tool_args='{"code": "print(1)"}')],
        [step("user", TASK, role="user"), step("Coder", "Let me run it."),
         step("Coder", None, kind=StepKind.TOOL_CALL, tool_name="python", tool_args='{"code": "print(1)"}'),
         step("tool", "1", kind=StepKind.TOOL_RESULT, role="tool"),
         step("Coder", "It printed 1 as expected. Done.")],
    ),
    "3.2": (
        [step("user", TASK, role="user"), step("Coder", _CODE),
         step("Coder", "The task is complete. TERMINATE")],
        [step("user", TASK, role="user"), step("Coder", _CODE),
         step("Tester", "exitcode: 0 (execution succeeded)\nCode output: 2 dates parsed", role="user"),
         step("Coder", "The task is complete. TERMINATE")],
    ),
    "3.3": (
        [step("user", TASK, role="user"), step("Coder", _CODE),
         step("Tester", "exitcode: 1 (execution failed)\nTraceback (most recent call last):\n  File \"x.py\"\n"
                        "ValueError: Invalid isoformat string", role="user"),
         step("Coder", "Great, all tests passed and the function works correctly.")],
        [step("user", TASK, role="user"), step("Coder", _CODE),
         step("Tester", "exitcode: 1 (execution failed)\nTraceback (most recent call last):\n  File \"x.py\"\n"
                        "ValueError: Invalid isoformat string", role="user"),
         step("Coder", "The parser rejects the Z suffix; here is a fix that replaces Z with +00:00."),
         step("Tester", "exitcode: 0 (execution succeeded)\nCode output: ok", role="user"),
         step("Coder", "Great, all tests passed and the function works correctly.")],
    ),
}

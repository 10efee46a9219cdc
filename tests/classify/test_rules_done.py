"""The "declares done" flag: declaring the task done is not mentioning a final answer or
TERMINATE (planning text, instructions, conditions)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mast.classify.rules import RulesClassifier  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Outcome, Step, StepKind  # noqa: E402
from mast.store import Store  # noqa: E402
from rules_helpers import step, trace, write  # noqa: E402


def _flags(db, steps: list[Step]) -> list[bool]:
    ids = write(db, [trace("t", steps, task="Answer the question about the data")])
    with Store(db) as st:
        run(st, RulesClassifier(), Selection())
        return [r[0] for r in st.fetchall("SELECT declares_done FROM rule_step_features WHERE trace_id = ? "
                                          "ORDER BY step", [ids["t"]])]


MENTIONS = [  # planning and instructions: not a declaration
    "Plan: 1. search the web. 2. read the page. 3. Provide the final answer using the final_answer tool.",
    "Provide the final answer",
    "When you are done, let other participant reply me only with \"TERMINATE\"",
    "Tester: only write 'TASK COMPLETE' after you've actually checked the output.",
    "The task is completed when the specific number is found.",
    "Once the task is complete, hand off to the Tester.",
]
DECLARATIONS = ["FINAL ANSWER: 525", "Final Answer: the parser now handles offsets.", "TERMINATE",
                "TASK COMPLETE", "Everyone agrees, so the task is now complete.", "**Final Answer**: 42",
                "The final answer is 17."]


def test_mentioning_a_final_answer_or_terminate_is_not_declaring_done(db):
    got = _flags(db, [step("agent", t) for t in MENTIONS + DECLARATIONS])
    assert got == [False] * len(MENTIONS) + [True] * len(DECLARATIONS)


def test_a_code_agents_planning_text_does_not_fire_termination_unaware(db):
    """OpenInference span traces of a code agent: the plan says "provide the final answer
    using the final_answer tool" at steps 0-1; the answer comes at the end."""
    steps = [step("agent", "You are an expert assistant. In the end you have to provide the final answer using "
                           "the final_answer tool.", role="system"),
             step("agent", "Facts survey and plan: 1. search 2. compute 3. Provide the final answer"),
             step("agent", None, kind=StepKind.TOOL_CALL, tool_name="web_search", tool_args='{"q": "population"}'),
             step("tool", "Result: the population was 8,300 in 2020 according to the census.",
                  kind=StepKind.TOOL_RESULT, role="tool"),
             step("agent", "The population is 8,300; I will now return it as the answer to the question."),
             step("agent", None, kind=StepKind.TOOL_CALL, tool_name="final_answer", tool_args='{"answer": "8300"}')]
    ids = write(db, [trace("oi", steps, task="What was the population?", outcome=Outcome.FAILURE)])
    with Store(db) as st:
        run(st, RulesClassifier(), Selection())
        found = st.fetchall("SELECT annotator, mode FROM annotations WHERE trace_id = ? AND mode = '1.5' "
                            "AND label IN ('present', 'unknown')", [ids["oi"]])
        roots = st.fetchall("SELECT step FROM attributions WHERE trace_id = ?", [ids["oi"]])
    assert found == []
    assert all(s not in (0, 1) for (s,) in roots)

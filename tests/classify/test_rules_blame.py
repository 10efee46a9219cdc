"""The rules' root cause: an execution output is blamed on the step that asked for it,
including a tool call that carries no text (its flags must be false, not NULL)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mast.classify import create  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.model import Outcome, Step, StepKind  # noqa: E402
from mast.store import Store  # noqa: E402
from rules_helpers import trace, write  # noqa: E402


def test_a_contentless_tool_call_is_not_an_execution_output(db):
    steps = [Step("user", "Compute the totals from data.csv", role="user"),
             Step("analyst", "I will load the file with the tool.", role="assistant"),
             Step("analyst", None, kind=StepKind.TOOL_CALL, tool_name="run_python", tool_args='{"code": "x"}'),
             Step("executor", "exitcode: 1 (execution failed)\nTraceback (most recent call last):\nKeyError: 'total'",
                  kind=StepKind.TOOL_RESULT, role="tool")]
    ids = write(db, [trace("t", steps, task="Compute the totals", outcome=Outcome.FAILURE)])
    with Store(db) as st:
        run(st, create("rules"), Selection())
        flags = dict(st.fetchall("SELECT step, is_exec FROM rule_step_features WHERE trace_id = ? ORDER BY step",
                                 [ids["t"]]))
    assert flags == {0: False, 1: False, 2: False, 3: True}


def test_the_execution_output_is_blamed_on_the_tool_call(db):
    """The earliest evidence is the traceback; the step that asked for it is the tool call."""
    steps = [Step("user", "Compute the totals from data.csv", role="user"),
             Step("analyst", "I will load the file with the tool.", role="assistant"),
             Step("analyst", None, kind=StepKind.TOOL_CALL, tool_name="run_python", tool_args='{"code": "x"}'),
             Step("executor", "exitcode: 1 (execution failed)\nTraceback (most recent call last):\nKeyError: 'total'",
                  kind=StepKind.TOOL_RESULT, role="tool"),
             Step("analyst", "The task is complete: all tests passed and the totals are verified. TERMINATE",
                  role="assistant")]
    ids = write(db, [trace("t", steps, task="Compute the totals", outcome=Outcome.FAILURE)])
    with Store(db) as st:
        run(st, create("rules"), Selection())
        rows = st.fetchall("SELECT step, rationale FROM attributions WHERE trace_id = ? AND annotator = 'rules'",
                           [ids["t"]])
    assert len(rows) == 1
    step, why = rows[0]
    assert "execution output" in why and step == 2, rows

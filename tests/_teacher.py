"""A teacher for the cascade: synthetic runs, and a judge whose verdicts are a learnable
function of the trace text it is shown.

:func:`synthetic_trace` makes one multi-agent run with some of five properties drawn at
random (a repeated step, a traceback, a "verified" claim, an off-topic remark, a
``TERMINATE`` at the end, a length).  :func:`teacher_verdicts` answers a judge request in
the judge's reply schema from the trace text inside the prompt only (never from the
instructions, which quote the same markers), deterministically:

- 1.3 (step repetition): a step is rendered as ``(exact repeat of step N)``;
- 3.3 (incorrect verification): a ``Traceback`` comes after a step that says ``verified``;
- 2.3 (task derailment): a step talks about the ``weather``;
- 3.1 (premature termination): the last step says ``TERMINATE`` and the run has fewer than 6 steps;
- 1.5 (unaware of termination conditions): 14 steps or more and no ``TERMINATE`` anywhere;
- every other mode: absent.

Every rule reads words, step counts or repeats, which the learned models see as
features: the teacher is learnable, not trivially (two rules are conjunctions, and 3.3
depends on the order of two steps, which bag-of-words features see only through where
the rules' flags first fire), and it knows nothing of the features.  ``python tests/_openai_server.py --teacher``
serves it.
"""

from __future__ import annotations

import json
import random
import re

from mast.model import Outcome, Step, StepKind, Trace

MODE_RX = re.compile(r"^(\d+\.\d+) \| ", re.M)
LAST_STEP_RX = re.compile(r"valid step numbers are 0 to (-?\d+)")
STEP_RX = re.compile(r"^\[(\d+)\] (\S+)", re.M)
DATA_RX = re.compile(r"BEGIN TRACE DATA (\w+)\n(.*)\nEND TRACE DATA \1", re.S)
#: the modes the teacher can find present
TAUGHT = ("1.3", "1.5", "2.3", "3.1", "3.3")

_WORDS = ("data", "shard", "parse", "column", "total", "report", "check", "value", "table", "merge", "plan",
          "draft", "result", "number", "count", "field", "index", "schema", "sample", "record", "batch", "query",
          "filter", "order", "group", "metric", "score", "label", "output", "input", "format", "script", "module",
          "function", "review", "verify", "test", "run", "step", "next", "update", "fix", "load", "save", "read")
AGENTS = ("planner", "coder", "executor", "reviewer")


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))) + "."


def synthetic_trace(i: int, rng: random.Random, system: str = "teacher-mas") -> Trace:
    """One run; which of the teacher's properties it has is drawn from ``rng``."""
    r = rng.random()
    n = rng.randint(3, 5) if r < 0.2 else rng.randint(6, 13) if r < 0.7 else rng.randint(14, 20)
    steps = [Step("user", f"Task {i}: {_sentence(rng)}", role="user")]
    for k in range(1, n):
        agent = AGENTS[k % len(AGENTS)]
        kind = StepKind.TOOL_RESULT if agent == "executor" else StepKind.MESSAGE
        steps.append(Step(agent, f"{agent} turn {k}: {_sentence(rng)}", kind=kind,
                          role="tool" if kind == StepKind.TOOL_RESULT else "assistant"))
    free = list(range(1, n))
    rng.shuffle(free)

    def put(text: str) -> None:
        if free:
            j = free.pop()
            steps[j] = Step(steps[j].agent, f"{steps[j].content} {text}", kind=steps[j].kind, role=steps[j].role)

    if rng.random() < 0.3:
        put("Traceback (most recent call last): ValueError: bad value in column")
    if rng.random() < 0.45:
        put("I verified the result and every check passes.")
    if rng.random() < 0.15:
        put("By the way, what is the weather like in Paris today?")
    if rng.random() < 0.5:
        last = steps[-1]
        steps[-1] = Step(last.agent, f"{last.content} TERMINATE", kind=last.kind, role=last.role)
    if n >= 4 and rng.random() < 0.25:
        j = rng.randint(2, n - 1)
        src = steps[j - 2]
        steps[j] = Step(src.agent, src.content, kind=src.kind, role=src.role)
    outcome = Outcome.FAILURE if rng.random() < 0.5 else Outcome.SUCCESS
    return Trace(system, "synthetic", "generic", "teacher.jsonl", i, steps, task=f"Task {i}", outcome=outcome)


def synthetic_traces(n: int, seed: int = 0, system: str = "teacher-mas") -> list[Trace]:
    rng = random.Random(seed)
    return [synthetic_trace(i, rng, system) for i in range(n)]


def teacher_labels(trace_text: str, n_steps: int) -> dict[str, list[int]]:
    """mode -> evidence steps, for the modes the teacher finds present in ``trace_text``."""
    blocks: dict[int, str] = {}
    cur = None
    for line in trace_text.split("\n"):
        m = STEP_RX.match(line)
        if m:
            cur = int(m.group(1))
        if cur is not None:
            blocks[cur] = blocks.get(cur, "") + line + "\n"

    def where(pattern: str) -> list[int]:
        return [s for s, b in sorted(blocks.items()) if pattern in b]

    out: dict[str, list[int]] = {}
    if where("(exact repeat of step"):
        out["1.3"] = where("(exact repeat of step")
    tb, ver = where("Traceback"), where("verified")
    if tb and ver and max(tb) > min(ver):
        out["3.3"] = sorted({min(ver), max(tb)})
    if where("weather"):
        out["2.3"] = where("weather")
    last = max(blocks) if blocks else None
    if last is not None and "TERMINATE" in blocks[last] and n_steps < 6:
        out["3.1"] = [last]
    if n_steps >= 14 and not where("TERMINATE"):
        out["1.5"] = [n_steps - 1]
    return out


def teacher_verdicts(body: dict) -> dict:
    """The teacher's reply to one judge request (the judge's reply schema)."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    modes = MODE_RX.findall(system)
    m = DATA_RX.search(user)
    trace = m.group(2) if m else ""
    last = LAST_STEP_RX.search(system) or LAST_STEP_RX.search(user)
    n_steps = int(last.group(1)) + 1 if last else len(STEP_RX.findall(trace))
    present = teacher_labels(trace, n_steps)
    agents_at = {int(k): a for k, a in STEP_RX.findall(trace)}
    out = {mid: {"verdict": "present" if mid in present else "absent",
                 "confidence": 0.9, "evidence_steps": present.get(mid, []), "rationale": "teacher"} for mid in modes}
    root = None
    if present:
        step = min(s for v in present.values() for s in v)
        root = {"agent": agents_at.get(step), "step": step, "rationale": "earliest evidence"}
    return {"verdicts": out, "root_cause": root}


def teacher_content(body: dict) -> str:
    return json.dumps(teacher_verdicts(body))

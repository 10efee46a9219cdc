"""Split a MAD ``trace`` text into steps, as far as each system's log allows.

Contract: ``split_trace(system, text)`` returns a :class:`Split` whose steps' contents,
concatenated in order, contain every character of ``text`` (nothing is dropped; text
that belongs to no recognised speaker becomes a step of agent ``log``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mast.model import Step, StepKind


@dataclass
class Split:
    steps: list[Step]
    task: str | None
    method: str


def _ag2(text: str) -> Split | None:
    try:
        d = json.loads(text)
    except ValueError:
        return None
    traj = d.get("trajectory") if isinstance(d, dict) else None
    if not isinstance(traj, list):
        return None
    ps = d.get("problem_statement")
    task = "\n".join(ps) if isinstance(ps, list) else ps if isinstance(ps, str) else None
    steps = []
    for m in traj:
        if not isinstance(m, dict):
            return None
        content = m.get("content")
        steps.append(Step(agent=m.get("name") or m.get("role") or "unknown",
                          content=content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
                          kind=StepKind.MESSAGE, role=m.get("role")))
    return Split(steps, task, "json-trajectory")


def split_trace(system: str, text: str) -> Split:
    s = _ag2(text)
    if s is not None:
        return s
    return Split([Step(agent="log", content=text, kind=StepKind.EVENT)], None, "whole-text")

"""What ingest adds to every trace an importer read: its system name and why the run stopped.

The system name (:func:`name_system`) comes from the artefact, else ``--default-system``,
else the folder the file sits in; the rule that named it is kept as trace metadata
``system_from``.  The outcome's reason is trace metadata ``outcome_reason``:

A run that ends on a termination condition, a recursion or iteration limit, or an error
usually keeps its outcome "unknown" (or "failure"): nothing says whether the task was
done.  What the artefact says about *why* it stopped is kept as a short text, so the
report, ``mast traces show`` and the rules' features can tell a run cut off by a limit
from one that finished.  In order:

1. what the importer set itself (``metadata["outcome_reason"]``);
2. AgentChat's ``stop_reason`` (kept by its importers as ``metadata["stop_reason"]``),
   e.g. "Maximum number of messages 6 reached, current message count: 6";
3. a limit named in an error step: LangGraph's ``GraphRecursionError``, CrewAI's
   ``max_iter``, AG2's ``max_turns`` / auto-reply limit, OpenAI Agents' "Max turns
   exceeded" (the first matching sentence);
4. for a failed run, the first line of its last error step.
"""

from __future__ import annotations

import re
from pathlib import Path

from mast.errors import path_text
from mast.ingest.identity import identify
from mast.model import Outcome, StepKind, Trace

#: Longest reason kept (a stack trace's first line can be long).
MAX_REASON = 240

_LIMIT_RX = re.compile(
    r"(?:GraphRecursionError\W*)?Recursion limit of \d+ reached"
    r"|GraphRecursionError"
    r"|(?:Agent stopped due to |)(?:Maximum|max(?:imum)?)[ _]iter(?:ation)?s?\b[^.\n]{0,80}"
    r"|Maximum number of (?:consecutive auto-replies|turns|messages)[^.\n]{0,80}"
    r"|Max turns(?: \(\d+\))? exceeded"  # OpenAI Agents' MaxTurnsExceeded, before its data's max_turns
    r"|max_turns[^.\n]{0,60}",
    re.IGNORECASE)


def _short(text: str) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def outcome_reason(trace: Trace) -> str | None:
    """The reason the run stopped, from what the trace holds (see the module doc), or None."""
    given = trace.metadata.get("outcome_reason")
    if isinstance(given, str) and given.strip():
        return _short(given)
    stop = trace.metadata.get("stop_reason")
    if isinstance(stop, str) and stop.strip():
        return _short(stop)
    errors = [s.content for s in trace.steps if s.kind == StepKind.ERROR and s.content]
    for text in reversed(errors):
        m = _LIMIT_RX.search(text)
        if m:
            if m.group(0).lower().startswith("graphrecursionerror") and "Recursion limit" in text:
                m = re.search(r"Recursion limit of \d+ reached", text) or m
                return "GraphRecursionError: " + m.group(0)
            return _short(m.group(0))
    if trace.outcome is Outcome.FAILURE and errors:
        return _short(errors[-1])
    return None


def set_outcome_reason(trace: Trace) -> None:
    reason = outcome_reason(trace)
    if reason:
        trace.metadata["outcome_reason"] = reason
    else:
        trace.metadata.pop("outcome_reason", None)


#: How a trace got its system name, in order of precedence (trace metadata ``system_from``).
SYSTEM_RULES = ("artefact", "default-system", "folder")


def name_system(path: Path, t: Trace, default: str | None) -> str | None:
    """Give ``t`` a system name if its artefact did not: ``default``, else the folder it sits in.

    Also records why the run stopped (:func:`set_outcome_reason`) and which run it is
    (:func:`mast.ingest.identity.identify`).

    The folder is the file's immediate parent folder, whatever was named on the command
    line (``mast ingest runs/`` names the traces of ``runs/x.json`` "runs", and those of
    ``runs/team-a/x.json`` "team-a"): runs of one system are usually kept together, and a
    rule that depends on how the command was typed would name one file two ways.  Returns
    the rule that named it (one of :data:`SYSTEM_RULES`), or None when nothing could.
    """
    set_outcome_reason(t)
    identify(t)
    if t.system:
        rule = "artefact"
    elif default:
        t.system, rule = default, "default-system"
    elif path.parent.name:
        t.system, rule = path_text(path.parent.name), "folder"
    else:
        return None
    t.metadata["system_from"] = rule
    return rule

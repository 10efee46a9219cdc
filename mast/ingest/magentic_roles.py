"""Magentic-One's role syntax, for every importer that can meet it.

Magentic-One (AutoGen) logs name the speaker in ``role`` with an annotation in
parentheses: ``"Orchestrator (-> WebSurfer)"`` (a message to WebSurfer),
``"Orchestrator (thought)"`` (the orchestrator's own reasoning), ``"Orchestrator
(termination condition)"`` (its decision to stop).  The agent is the part before the
parenthesis; ``-> X`` gives the recipient.  Who&When's Hand-Crafted records and plain
message-list dumps of Magentic-One runs both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mast.model import StepKind

_ROLE_RX = re.compile(r"^\s*(?P<agent>[^()]+?)\s*(?:\((?P<note>[^)]*)\))?\s*$")
#: Roles that are roles, not speakers: never read as an agent name.
STANDARD_ROLES = {"user", "assistant", "system", "tool", "function", "developer", "human", "ai"}


@dataclass(frozen=True, slots=True)
class MagenticRole:
    agent: str
    #: The annotation inside the parentheses ("-> WebSurfer", "thought", ...), if any.
    note: str | None
    #: The recipient of a ``(-> X)`` message.
    target: str | None
    kind: StepKind
    #: user for the human, assistant for every agent.
    role: str


def parse_role(role: str) -> MagenticRole:
    """Split a Magentic-One role string; a plain name is an agent with no annotation."""
    m = _ROLE_RX.match(role)
    agent = (m.group("agent") if m else role).strip() or "unknown"
    note = (m.group("note") or "").strip() or None if m else None
    target = note[2:].strip() or None if note and note.startswith("->") else None
    kind = StepKind.TERMINATION if note == "termination condition" else StepKind.MESSAGE
    return MagenticRole(agent=agent, note=note, target=target, kind=kind,
                        role="user" if agent.lower() == "human" else "assistant")


#: :func:`parse_role` remembered per role string: a log has a few dozen distinct roles over
#: thousands of steps, and the result is immutable, so steps may share it.
parse_role_cached = lru_cache(maxsize=4096)(parse_role)


@lru_cache(maxsize=4096)  # a few distinct roles per log, asked about every message
def is_magentic_role(role: str) -> bool:
    """True for ``Name (annotation)`` roles: a speaker with a Magentic-One annotation."""
    m = _ROLE_RX.match(role)
    return bool(m and m.group("note") is not None and m.group("agent").strip().lower() not in STANDARD_ROLES)

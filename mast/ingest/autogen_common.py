"""Helpers shared by the AutoGen (AgentChat) and AG2 importers.

- :func:`iso_utc` turns every timestamp shape these frameworks write (ISO with ``Z`` or
  an offset, AG2's naive ``YYYY-MM-DD HH:MM:SS.ffffff`` which is UTC, ``logging``'s
  ``asctime`` with a comma, epoch seconds) into one UTC ISO 8601 string.
- :func:`collapse_transfer_handoffs` turns AG2's handoff idiom (a ``transfer_to_<agent>``
  tool call plus its tool result) into one ``handoff`` step.
- :func:`not_none_text` reads AG2's ``"content": "None"`` (``str(None)``) as no content.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Iterable

from mast.model import Step, StepKind

_TRANSFER_RX = re.compile(r"^transfer_to_(?P<target>.+?)(?:_\d+)?$")
_TRANSFER_TEXT_RX = re.compile(r"^Transfer(?:red)? to (?P<target>[\w\-. ]+?)(?:[,.].*)?$", re.S)


def iso_utc(v: Any) -> str | None:
    """A timestamp as UTC ISO 8601 (``...+00:00``); naive values are taken as UTC.

    Returns None for values that are not timestamps rather than guessing.
    """
    if v is None or v == "":
        return None
    try:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # Epoch seconds (logging's record.created); nanoseconds when implausibly large.
            secs = v / 1e9 if v > 1e14 else v
            return datetime.fromtimestamp(secs, tz=timezone.utc).isoformat()
        s = str(v).strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        s = s.replace(",", ".", 1) if re.match(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d,\d+", s) else s
        dt = datetime.fromisoformat(s)
    except (ValueError, OverflowError, OSError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat()


def not_none_text(v: Any) -> str | None:
    """Message content as text; AG2 writes ``str(None)`` for tool-call messages."""
    if v is None or v == "None":
        return None
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


def transfer_target(tool_name: str | None, result: str | None, agents: Iterable[str]) -> str | None:
    """The agent a ``transfer_to_*`` handoff tool hands over to, or None if it is not one.

    AG2 names handoff tools ``transfer_to_<agent>_<n>`` and answers ``Transfer to <agent>``;
    the tool name is authoritative when it names a known agent (agent names may themselves
    end in ``_<digits>``).
    """
    if not tool_name or not tool_name.startswith("transfer_to_"):
        return None
    known = set(agents)
    bare = tool_name[len("transfer_to_"):]
    if bare in known:
        return bare
    m = _TRANSFER_RX.match(tool_name)
    if m and m.group("target") in known:
        return m.group("target")
    if result:
        t = _TRANSFER_TEXT_RX.match(result.strip())
        if t:
            return t.group("target").strip()
    return m.group("target") if m else bare


def collapse_transfer_handoffs(steps: list[Step], agents: Iterable[str],
                               targets: dict[str, str] | None = None) -> list[Step]:
    """Replace each ``transfer_to_*`` tool call and its result by one handoff step.

    ``targets`` maps a call id to a target known from elsewhere in the source (AG2's
    ``executed_function`` event names it).  The handoff step keeps the call's span id,
    tool name and arguments, and the tokens of the call, so totals do not change.
    """
    agents = list(agents)
    targets = targets or {}
    results = {s.parent_span_id: s for s in steps if s.kind is StepKind.TOOL_RESULT and s.parent_span_id}
    drop: set[int] = set()
    out: list[Step] = []
    for s in steps:
        if id(s) in drop:
            continue
        if s.kind is StepKind.TOOL_CALL and s.span_id and (s.tool_name or "").startswith("transfer_to_"):
            res = results.get(s.span_id)
            target = targets.get(s.span_id) or transfer_target(s.tool_name, res.content if res else None, agents)
            if target:
                if res is not None:
                    drop.add(id(res))
                attrs = dict(s.attributes or {})
                if res is not None:
                    attrs["handoff_result"] = res.content
                    if res.agent and res.agent != s.agent:
                        attrs["executed_by"] = res.agent
                out.append(Step(agent=s.agent, content=res.content if res else None, kind=StepKind.HANDOFF,
                                role=s.role, tool_name=s.tool_name, tool_args=s.tool_args, target_agent=target,
                                span_id=s.span_id, started_at=s.started_at,
                                ended_at=(res.started_at if res else s.ended_at), tokens_in=s.tokens_in,
                                tokens_out=s.tokens_out, cost_usd=s.cost_usd,
                                status=res.status if res else s.status, attributes=attrs or None))
                continue
        out.append(s)
    return out


def json_or_text(v: Any) -> Any:
    """Parse a JSON string when it is one; otherwise return it unchanged."""
    if isinstance(v, str):
        t = v.strip()
        if t[:1] in ("{", "[", '"') or t in ("null", "true", "false") or re.match(r"^-?\d", t or "x"):
            try:
                return json.loads(t)
            except ValueError:
                return v
    return v

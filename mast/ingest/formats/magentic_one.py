"""autogen-magentic-one's own log: the ``log.jsonl`` its ``LogHandler`` writes.

The package's examples put ``autogen_magentic_one.utils.LogHandler`` on AutoGen's event
logger; it writes one JSON object per line for four event classes, each with ``type`` and
``timestamp`` (the writing machine's local time, no offset):

- ``OrchestrationEvent`` / ``AgentEvent``: ``source``, ``message``.  ``source`` is a
  speaker in Magentic-One's role syntax (:mod:`mast.ingest.magentic_roles`): ``"Coder"``
  (a team member's message, as the orchestrator received it), ``"Orchestrator (thought)"``,
  ``"Orchestrator (-> Coder)"`` (its instruction to the next speaker), ``"Orchestrator
  (final answer)"``, ``"Orchestrator (termination condition)"`` (why it stopped),
  ``"Orchestrator (error)"``, ``"Coder (deactivated)"``;
- ``WebSurferEvent``: ``source``, ``message``, ``url``, ``action``, ``arguments`` (a browser
  action the web surfer took);
- ``LLMCallEvent``: ``prompt_tokens``, ``completion_tokens`` and nothing else: no agent.

One log is one run (the examples write one per task): one trace.  A model call is logged
when the model answers, just before the event of the agent that asked for it (its message
or the orchestrator's thought), so an ``llm_call`` step's agent is the source of the next
speaker event (``attributes.agent_from``).  The task is the first event's message when
its source is not an annotated one (the user's broadcast).  The outcome stays unknown --
the log says why the orchestrator stopped, not whether the answer was right -- with that
reason ("Request satisfied.", "Max rounds (20) reached.") as ``outcome_reason``.

Format notes: docs/formats/autogen.md ("Magentic-One's log.jsonl").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, as_text, first_char, iso_utc, iter_jsonl, line_json, strip_bom
from mast.ingest.magentic_roles import parse_role_cached as parse_role
from mast.model import Outcome, Step, StepKind, Trace

SPEAKER_EVENTS = ("OrchestrationEvent", "AgentEvent")
EVENT_TYPES = (*SPEAKER_EVENTS, "WebSurferEvent", "LLMCallEvent")
#: The orchestrator's own annotations that are not messages to anyone.
_NOTE_KIND = {"error": StepKind.ERROR, "deactivated": StepKind.EVENT}
_SATISFIED = "Request satisfied."
#: The orchestrator's limits ("Max rounds (20) reached.", "Max time (1500s) reached."): a stop,
#: where "No agent selected." and "X requested halt." end the run as it meant to.
_LIMIT_RX = re.compile(r"\s*Max (?:rounds|time) \(")
_NAIVE_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?\Z")


class MagenticOneLogImporter(DeclineDetects):
    name = "magentic-one-log"
    description = "autogen-magentic-one LogHandler log.jsonl (OrchestrationEvent, LLMCallEvent, WebSurferEvent, …)"
    example = '{"timestamp": "2024-11-20T10:02:11.473518", "source": "Orchestrator (thought)", "message": "…", "type": "OrchestrationEvent"}'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        if first_char(head) != "{":
            return 0, "not a JSON object per line"
        obj = line_json(strip_bom(head).lstrip().split(b"\n", 1)[0])
        if not isinstance(obj, dict):
            return 0, "the first line is not a JSON object"
        if obj.get("type") not in EVENT_TYPES:
            return 0, "the first line has no Magentic-One event type"
        if "timestamp" not in obj:
            return 2, "a Magentic-One event without a timestamp"
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        steps: list[Step] = []
        pending: list[Step] = []  # model calls waiting for the speaker that made them
        task = reason = final = None
        satisfied = False
        first = True
        n = 0
        for i, ev in iter_jsonl(path):
            where = f"line {i + 1}"
            n += 1
            if not isinstance(ev, dict):
                raise IngestError(str(path), where, f"expected an event object, found {type(ev).__name__}")
            t = ev.get("type")
            if t is None:
                raise IngestError(str(path), where, "missing required field: type")
            ts = ev.get("timestamp")
            # LogHandler's naive isoformat(), read as UTC: the text iso_utc would give, without
            # parsing (a log has a timestamp per line); anything else goes through iso_utc
            at = ts + "+00:00" if type(ts) is str and _NAIVE_ISO.match(ts) else iso_utc(ts)
            if t == "LLMCallEvent":
                tin, tout = _tokens(path, where, ev, "prompt_tokens"), _tokens(path, where, ev, "completion_tokens")
                s = Step(agent=None, content=None, kind=StepKind.LLM_CALL, role="assistant", started_at=at,
                         tokens_in=tin, tokens_out=tout, status="ok",
                         attributes=_extras(ev, ("type", "timestamp", "prompt_tokens", "completion_tokens")))
                steps.append(s)
                pending.append(s)
                continue
            if t not in EVENT_TYPES:
                # a newer release's event: kept as an event, never guessed into a message
                steps.append(Step(agent=None, content=as_text(ev.get("message")), kind=StepKind.EVENT,
                                  started_at=at, attributes={"type": str(t), **_extras(ev, ("type", "timestamp"))}))
                continue
            for k in ("source", "message"):
                if k not in ev:
                    raise IngestError(str(path), where, f"{t}: missing required field: {k}")
            source = ev["source"]
            if not isinstance(source, str):
                raise IngestError(str(path), where, f"{t}: source is not a string")
            text = as_text(ev["message"])
            r = parse_role(source)
            for s in pending:
                s.agent = r.agent
                s.attributes = {**(s.attributes or {}), "agent_from": "next event"}
            pending.clear()
            attrs: dict[str, Any] = {"type": t, "source_role": source, **_extras(ev, ("type", "timestamp", "source",
                                                                                      "message"))}
            if first and t == "OrchestrationEvent" and r.note is None:
                # the user's task, broadcast to the team: an instruction, not a team member
                task = text
                steps.append(Step(agent=None, content=text, kind=StepKind.MESSAGE, role="user", started_at=at,
                                  attributes=attrs))
                first = False
                continue
            first = False
            if t == "WebSurferEvent":
                args = ev.get("arguments")
                attrs.pop("arguments", None)
                attrs.pop("action", None)
                steps.append(Step(agent=r.agent, content=text, kind=StepKind.TOOL_CALL if ev.get("action")
                                  else StepKind.EVENT, role="assistant", started_at=at,
                                  tool_name=as_text(ev.get("action")),
                                  tool_args=json.dumps(args, sort_keys=True) if args is not None else None,
                                  attributes=attrs))
                continue
            kind = _NOTE_KIND.get(r.note or "", r.kind)
            if r.note and not r.target and kind == StepKind.MESSAGE:
                attrs["note"] = r.note  # "thought", "final answer"
            status = ("error" if kind == StepKind.ERROR else None if kind != StepKind.TERMINATION
                      else "stopped" if _LIMIT_RX.match(text or "") else "completed")
            steps.append(Step(agent=r.agent, content=text, kind=kind, role=r.role, target_agent=r.target,
                              started_at=at, status=status, attributes=attrs))
            if r.note == "thought" and (text or "").strip() == _SATISFIED:
                satisfied = True
            elif r.note == "final answer":
                final = (text or "").strip()
            elif kind == StepKind.TERMINATION:
                reason = (text or "").strip() or None
        if n == 0:
            raise IngestError(str(path), None, "no events: an empty Magentic-One log")
        if pending:  # the log ends on model calls (the run was cut off): the last speaker's
            last = next((s.agent for s in reversed(steps) if s.agent), None)
            for s in pending:
                s.agent = last
                s.attributes = {**(s.attributes or {}), "agent_from": "previous event"}
        meta: dict[str, Any] = {}
        # "No agent selected." follows "Request satisfied.": the ledger's verdict is the reason
        if satisfied:
            meta["outcome_reason"] = _SATISFIED
        elif reason:
            meta["outcome_reason"] = reason
        if final is not None:
            meta["final_answer"] = final
        times = [s.started_at for s in steps if s.started_at]
        yield Trace(system="Magentic-One", framework="autogen", source_format=self.name,
                    source_path=str(path), source_index=0, steps=steps, task=task,
                    outcome=Outcome.UNKNOWN, started_at=times[0] if times else None,
                    ended_at=times[-1] if times else None, metadata=meta)


def _tokens(path: Path, where: str, ev: dict, key: str) -> int | None:
    v = ev.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise IngestError(str(path), where, f"LLMCallEvent: {key} {v!r} is not a token count")
    return v


def _extras(ev: dict, own: tuple[str, ...]) -> dict:
    if len(ev) <= len(own) and all(k in ev for k in own):  # the usual line: nothing else
        return {}
    return {k: v for k, v in ev.items() if k not in own and v is not None}

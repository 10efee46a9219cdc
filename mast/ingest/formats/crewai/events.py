"""CrewAI events to steps: the normaliser behind every CrewAI importer (:func:`events_to_traces`).

Normalisation of events:
- ``llm_call_started`` + ``llm_call_completed`` (paired by ``started_event_id``, else
  ``call_id``) → one ``llm_call`` step with tokens from ``usage``; ``llm_call_failed`` → ``error``.
- ``tool_usage_started`` → ``tool_call``; ``tool_usage_finished`` / ``_error`` → ``tool_result``
  whose ``parent_span_id`` is the call's ``span_id`` (the LLM's tool-call id when the
  completed LLM call announced it, else the start event's id).
- ``task_started`` → ``event`` (the task as given to the agent), preceded by a ``handoff``
  from the previous task's agent when the agent changes (sequential process has no
  explicit handoff event); delegation tools (hierarchical process) → ``handoff``.
- ``agent_execution_completed`` → ``message`` (the agent's answer).
- ``*_failed`` / ``*_error`` → ``error``; ``crew_kickoff_completed`` / ``_failed`` → ``termination``.
- executor plumbing (``flow_*`` of ``AgentExecutor``, ``agent_logs_*``, stream chunks,
  checkpoints, ``default_env``) is dropped; any other event type becomes an ``event`` step.
The LLM ``api_key`` that CrewAI serialises into events is never copied: only chosen
fields reach step attributes, and the store redacts text in any case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DELEGATE_RX, as_text, drop_none, iso_z, line_json, strip_bom
from mast.model import Outcome, Step, StepKind, Trace

FRAMEWORK = "crewai"

_SKIP = {"default_env", "agent_logs_started", "agent_logs_execution", "llm_stream_chunk",
         "checkpoint_started", "checkpoint_completed", "checkpoint_failed", "flow_created",
         "method_execution_started", "method_execution_finished", "flow_plot"}


def json_first_line(head: bytes) -> Any:
    return line_json(strip_bom(head).lstrip().split(b"\n", 1)[0].strip())


def unwrap(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("event"), dict) and "event_class" in obj:
        return obj["event"]
    return obj


# Fields an event may carry that the normaliser never reads and that dominate its size
# (every agent_* event serialises the whole Agent and Task, every LLM event the prompt).
_BULKY = ("messages", "tools", "callbacks", "available_functions", "state", "source_fingerprint",
          "fingerprint_metadata", "crew", "task_prompt")


def slim(ev: dict) -> dict:
    """Keep what the normaliser reads: memory stays near the size of the useful content."""
    for k in _BULKY:
        ev.pop(k, None)
    for k in ("agent", "from_agent"):
        a = ev.get(k)
        if isinstance(a, dict):
            ev[k] = {"role": a.get("role")}
    t = ev.get("task")
    if isinstance(t, dict):
        ag = t.get("agent")
        ev["task"] = {"description": t.get("description"), "name": t.get("name"),
                      "agent": {"role": ag.get("role")} if isinstance(ag, dict) else None}
    return ev


def is_event(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("type"), str) and "event_id" in obj
            and "emission_sequence" in obj)


def _agent_of(ev: dict) -> str | None:
    if ev.get("agent_role"):
        return str(ev["agent_role"]).strip()
    for key in ("agent", "from_agent"):
        a = ev.get(key)
        if isinstance(a, dict) and a.get("role"):
            return str(a["role"]).strip()
    task = ev.get("task")
    if isinstance(task, dict) and isinstance(task.get("agent"), dict) and task["agent"].get("role"):
        return str(task["agent"]["role"]).strip()
    out = ev.get("output")
    if isinstance(out, dict) and isinstance(out.get("agent"), str):
        return out["agent"].strip()
    return None


def _task_text(ev: dict) -> str | None:
    task = ev.get("task")
    if isinstance(task, dict):
        return task.get("description") or task.get("name")
    return ev.get("task_name")


def _usage(ev: dict) -> tuple[int | None, int | None]:
    u = ev.get("usage")
    if not isinstance(u, dict):
        return None, None
    tin = u.get("prompt_tokens", u.get("input_tokens"))
    tout = u.get("completion_tokens", u.get("output_tokens"))
    return (int(tin) if tin is not None else None, int(tout) if tout is not None else None)


def _response_calls(resp: Any) -> list[dict]:
    """Tool calls announced in an ``llm_call_completed.response`` (OpenAI shape)."""
    if isinstance(resp, list):
        return [c for c in resp if isinstance(c, dict) and ("function" in c or "name" in c)]
    return []


def _run_groups(events: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """Split events into runs: one per ``crew_kickoff_started`` root (or one for all)."""
    by_id = {e.get("event_id"): e for _, e in events}
    roots: dict[str, str | None] = {}

    def root_of(e: dict) -> str | None:
        eid = e.get("event_id")
        if eid in roots:
            return roots[eid]
        seen = []
        cur = e
        r = None
        while cur is not None:
            cid = cur.get("event_id")
            if cid in roots:
                r = roots[cid]
                break
            seen.append(cid)
            if cur.get("type") == "crew_kickoff_started":
                r = cid
                break
            nxt = cur.get("parent_event_id") or cur.get("started_event_id")
            if nxt is None or nxt in seen:
                break
            cur = by_id.get(nxt)
        for s in seen:
            roots[s] = r
        return r

    order: list[str] = []
    groups: dict[str, list[tuple[int, dict]]] = {}
    orphans: list[tuple[int, dict]] = []
    for i, e in events:
        r = root_of(e)
        if r is None:
            orphans.append((i, e))
            continue
        if r not in groups:
            groups[r] = []
            order.append(r)
        groups[r].append((i, e))
    if not groups:
        return [events] if events else []
    # Orphans (flow events of a lone agent, stray errors) join the run whose time span
    # holds them; infrastructure events without a run are dropped.
    spans = []
    for r in order:
        ts = [iso_z(e.get("timestamp")) or "" for _, e in groups[r]]
        spans.append((min(ts), max(ts), r))
    for i, e in orphans:
        if e.get("type") in _SKIP:
            continue
        t = iso_z(e.get("timestamp")) or ""
        target = next((r for lo, hi, r in spans if lo <= t <= hi), None)
        if target is None:
            target = min(spans, key=lambda s: abs(_ts_num(s[0]) - _ts_num(t)))[2]
        groups[target].append((i, e))
    return [groups[r] for r in order]


def _ts_num(t: str) -> float:
    digits = re.sub(r"\D", "", t)[:20]
    return float(digits or 0)


def events_to_traces(path: Path, events: list[tuple[Any, dict]], source_format: str,
                     system: str | None = None, metadata: dict | None = None) -> Iterator[Trace]:
    """Normalise CrewAI bus events (``(record label, event)`` pairs) into traces."""
    for k, (where, e) in enumerate(events):
        if not isinstance(e, dict):
            raise IngestError(str(path), where, f"expected an event object, found {type(e).__name__}")
        missing = [f for f in ("type", "event_id", "timestamp") if f not in e]
        if missing:
            raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
        if not isinstance(e["type"], str):
            raise IngestError(str(path), where, "field type is not a string")
    for index, group in enumerate(_run_groups(events)):
        group.sort(key=lambda p: (int(p[1].get("emission_sequence") or 0), str(p[1].get("timestamp"))))
        yield _run(path, index, group, source_format, system, metadata or {})


def _run(path: Path, index: int, group: list[tuple[Any, dict]], source_format: str,
         system: str | None, metadata: dict) -> Trace:
    steps: list[Step] = []
    started: dict[str, dict] = {}  # start event id / call id -> start event
    pending_calls: dict[str, list[str]] = {}  # tool name -> LLM tool-call ids not yet used
    tool_span: dict[str, str] = {}  # tool_usage_started id -> step span id
    crew_name = None
    task = None
    outcome = Outcome.UNKNOWN
    last_task_agent = None
    kickoff_id = None
    errors: list[str] = []

    def repeated(err: Any) -> bool:
        # one failure is reported by every scope it unwinds (llm call, agent, task, crew):
        # keep the first report only
        text = str(err or "")
        if text and any(text in seen or seen in text for seen in errors):
            return True
        errors.append(text)
        return False

    for where, e in group:
        t = e["type"]
        ts = iso_z(e.get("timestamp"))
        agent = _agent_of(e)
        eid = e.get("event_id")
        if t in _SKIP or (t.startswith("flow_") and e.get("flow_name") == "AgentExecutor"):
            continue
        if t == "crew_kickoff_started":
            crew_name = crew_name or e.get("crew_name")
            kickoff_id = eid
            inputs = e.get("inputs")
            steps.append(crew_step(agent=None, role="user", kind=StepKind.EVENT, span_id=eid,
                              content=as_text(inputs) if inputs else None, started_at=ts,
                              status="started", attributes={"event": t, "crew_name": e.get("crew_name")}))
            continue
        if t == "task_started":
            desc = _task_text(e)
            task = task or desc
            if last_task_agent and agent and agent != last_task_agent:
                steps.append(crew_step(agent=last_task_agent, kind=StepKind.HANDOFF, target_agent=agent,
                                  content=desc, started_at=ts, span_id=None, parent_span_id=eid,
                                  attributes={"event": "next_task", "task_name": e.get("task_name")}))
            last_task_agent = agent or last_task_agent
            steps.append(crew_step(agent=agent, role="user", kind=StepKind.EVENT, content=desc, started_at=ts,
                              span_id=eid, parent_span_id=e.get("parent_event_id"), status="started",
                              attributes={"event": t, "task_name": e.get("task_name") or _task_name(e),
                                          "context": e.get("context") or None}))
            continue
        if t in ("llm_call_started",):
            started[eid] = e
            if e.get("call_id"):
                started["call:" + str(e["call_id"])] = e
            continue
        if t in ("llm_call_completed", "llm_call_failed"):
            st = started.pop(e.get("started_event_id") or "", None) or started.pop("call:" + str(e.get("call_id")), None)
            tin, tout = _usage(e)
            resp = e.get("response")
            calls = _response_calls(resp)
            for c in calls:
                fn = c.get("function") or {}
                name = fn.get("name") or c.get("name")
                if name and c.get("id"):
                    pending_calls.setdefault(name, []).append(str(c["id"]))
            attrs = {"event": t, "model": e.get("model"), "call_id": e.get("call_id"),
                     "call_type": e.get("call_type"), "finish_reason": e.get("finish_reason"),
                     "response_id": e.get("response_id")}
            if t == "llm_call_failed":
                if repeated(e.get("error")):
                    continue
                steps.append(crew_step(agent=agent, kind=StepKind.ERROR, role="assistant",
                                  content=as_text(e.get("error")), started_at=iso_z(st.get("timestamp")) if st else ts,
                                  ended_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                                  status="error", attributes=drop_none(attrs)))
                continue
            steps.append(crew_step(agent=agent, kind=StepKind.LLM_CALL, role="assistant",
                              content=as_text(resp), started_at=iso_z(st.get("timestamp")) if st else ts,
                              ended_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                              tokens_in=tin, tokens_out=tout, status="ok", attributes=drop_none(attrs)))
            continue
        if t == "tool_usage_started":
            name = e.get("tool_name")
            ids = pending_calls.get(name) or []
            span = ids.pop(0) if ids else eid
            tool_span[eid] = span
            args = e.get("tool_args")
            kind = StepKind.TOOL_CALL
            target = None
            if name and DELEGATE_RX.match(str(name)):
                kind = StepKind.HANDOFF
                target = coworker(args)
            steps.append(crew_step(agent=agent, kind=kind, role="assistant", tool_name=name, tool_args=as_text(args),
                              target_agent=target, started_at=ts, span_id=span,
                              parent_span_id=e.get("parent_event_id"),
                              attributes=drop_none({"event": t, "run_attempts": e.get("run_attempts")})))
            continue
        if t in ("tool_usage_finished", "tool_usage_error"):
            call = tool_span.pop(e.get("started_event_id") or "", None)
            if call is None:  # older events carry no started_event_id: pair with the oldest open call
                call = next((v for k, v in tool_span.items()), None)
                if call is not None:
                    tool_span.pop(next(k for k, v in tool_span.items() if v == call))
            err = t == "tool_usage_error"
            steps.append(crew_step(agent=agent, kind=StepKind.TOOL_RESULT, role="tool", tool_name=e.get("tool_name"),
                              content=as_text(e.get("error") if err else e.get("output")),
                              started_at=ts, ended_at=ts, parent_span_id=call,
                              status="error" if err else "ok",
                              attributes=drop_none({"event": t, "from_cache": e.get("from_cache")})))
            continue
        if t == "agent_execution_started":
            continue  # the task_started step already carries the instruction
        if t == "agent_execution_completed":
            steps.append(crew_step(agent=agent, kind=StepKind.MESSAGE, role="assistant", content=as_text(e.get("output")),
                              started_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                              attributes={"event": t}))
            continue
        if t == "task_completed":
            continue  # same text as agent_execution_completed
        if t == "crew_kickoff_completed":
            out = e.get("output")
            raw = out.get("raw") if isinstance(out, dict) else out
            steps.append(crew_step(agent=last_task_agent, kind=StepKind.TERMINATION, content=as_text(raw),
                              started_at=ts, span_id=eid, parent_span_id=kickoff_id, status="completed",
                              attributes=drop_none({"event": t, "total_tokens_reported": e.get("total_tokens")})))
            if outcome is Outcome.UNKNOWN:
                outcome = Outcome.UNKNOWN  # a finished crew is not a judged success
            crew_name = crew_name or e.get("crew_name")
            continue
        if t.endswith("_failed") or t.endswith("_error"):
            if not repeated(e.get("error")):
                steps.append(crew_step(agent=agent, kind=StepKind.ERROR, content=as_text(e.get("error")),
                                   started_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                                   status="error", attributes={"event": t}))
            if t == "crew_kickoff_failed":
                outcome = Outcome.FAILURE
                steps.append(crew_step(agent=last_task_agent, kind=StepKind.TERMINATION, content=as_text(e.get("error")),
                                  started_at=ts, status="failed", attributes={"event": t}))
            continue
        # Anything else (memory, knowledge, reasoning, guardrail, user flows…): keep as an event.
        steps.append(crew_step(agent=agent, kind=StepKind.EVENT, content=_event_text(e), started_at=ts,
                          span_id=eid, parent_span_id=e.get("parent_event_id"), attributes={"event": t}))
    first = group[0][0] if group else index
    meta = dict(metadata)
    meta.update({"source_id": kickoff_id, "crew_name": crew_name, "first_record": first})
    return Trace(system=_named(system) or _named(crew_name), framework=FRAMEWORK, source_format=source_format,
                 source_path=str(path), source_index=index, steps=steps, task=task, outcome=outcome,
                 metadata=drop_none(meta))


def _named(name: Any) -> str | None:
    """A crew's name, unless it is CrewAI's default ("crew"): then ``--system`` decides."""
    return str(name) if name and str(name) != "crew" else None


def crew_step(**kw: Any) -> Step:
    kw.setdefault("content", None)
    return Step(**kw)


def _task_name(e: dict) -> str | None:
    task = e.get("task")
    return task.get("name") if isinstance(task, dict) else None


def coworker(args: Any) -> str | None:
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            m = re.search(r"coworker['\"]?\s*[:=]\s*['\"]([^'\"]+)", args)
            return m.group(1) if m else None
    if isinstance(args, dict):
        c = args.get("coworker")
        return str(c).strip() if c else None
    return None


def _event_text(e: dict) -> str | None:
    for k in ("output", "result", "content", "message", "query", "error"):
        if e.get(k) not in (None, "", {}, []):
            return as_text(e[k])
    return None

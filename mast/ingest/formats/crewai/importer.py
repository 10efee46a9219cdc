"""CrewAI 1.x artefacts: event-bus JSONL, checkpoint JSON, ``CrewOutput`` JSON, ``output_log_file``.

Four importers share one normaliser (:func:`events_to_traces`):

``crewai-events``
    One event per line, either the bare ``BaseEvent`` (``model_dump`` / ``to_json()``) or
    wrapped as ``{"event_class", "event": {...}}``.  Required per event: ``type``,
    ``event_id``, ``timestamp``.  Handlers run on a thread pool, so file order is not
    emission order: events are grouped into runs (one per ``crew_kickoff_started``,
    following ``parent_event_id`` / ``started_event_id`` to the root) and sorted by
    ``(emission_sequence, timestamp)`` inside a run.
``crewai-checkpoint``
    ``{"crewai_version", "entities", "event_record": {"nodes": {id: {"event", "edges"}}}}``:
    the same events as the bus, plus the crew's name.  A 2.x ``crewai_version`` is refused.
``crewai-output``
    ``CrewOutput.model_dump()``: each ``tasks_output[].messages`` is an OpenAI-style
    transcript of one agent; also ``task_callback`` logs (one ``TaskOutput`` per line,
    a task seen again starting a new run).  No timestamps.  ``token_usage`` is kept in metadata but not
    counted: it double counts when agents share one LLM object (FORMATS.md §3.7).
``crewai-log``
    ``Crew(output_log_file=…)`` as ``.txt`` lines or a ``.json`` array; two entries per
    task (started / completed), local time without zone (stored as written).

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
from mast.ingest._util import DELEGATE_RX, as_text, drop_none, first_char, iso_z, iter_jsonl, load_json, strip_bom
from mast.model import Outcome, Step, StepKind, Trace

FRAMEWORK = "crewai"

_SKIP = {"default_env", "agent_logs_started", "agent_logs_execution", "llm_stream_chunk",
         "checkpoint_started", "checkpoint_completed", "checkpoint_failed", "flow_created",
         "method_execution_started", "method_execution_finished", "flow_plot"}


def _json_first_line(head: bytes) -> Any:
    line = strip_bom(head).lstrip().split(b"\n", 1)[0].strip()
    return json.loads(line)


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("event"), dict) and "event_class" in obj:
        return obj["event"]
    return obj


# Fields an event may carry that the normaliser never reads and that dominate its size
# (every agent_* event serialises the whole Agent and Task, every LLM event the prompt).
_BULKY = ("messages", "tools", "callbacks", "available_functions", "state", "source_fingerprint",
          "fingerprint_metadata", "crew", "task_prompt")


def _slim(ev: dict) -> dict:
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


def _is_event(obj: Any) -> bool:
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
            steps.append(_step(agent=None, role="user", kind=StepKind.EVENT, span_id=eid,
                              content=as_text(inputs) if inputs else None, started_at=ts,
                              status="started", attributes={"event": t, "crew_name": e.get("crew_name")}))
            continue
        if t == "task_started":
            desc = _task_text(e)
            task = task or desc
            if last_task_agent and agent and agent != last_task_agent:
                steps.append(_step(agent=last_task_agent, kind=StepKind.HANDOFF, target_agent=agent,
                                  content=desc, started_at=ts, span_id=None, parent_span_id=eid,
                                  attributes={"event": "next_task", "task_name": e.get("task_name")}))
            last_task_agent = agent or last_task_agent
            steps.append(_step(agent=agent, role="user", kind=StepKind.EVENT, content=desc, started_at=ts,
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
                steps.append(_step(agent=agent, kind=StepKind.ERROR, role="assistant",
                                  content=as_text(e.get("error")), started_at=iso_z(st.get("timestamp")) if st else ts,
                                  ended_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                                  status="error", attributes=drop_none(attrs)))
                continue
            steps.append(_step(agent=agent, kind=StepKind.LLM_CALL, role="assistant",
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
                target = _coworker(args)
            steps.append(_step(agent=agent, kind=kind, role="assistant", tool_name=name, tool_args=as_text(args),
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
            steps.append(_step(agent=agent, kind=StepKind.TOOL_RESULT, role="tool", tool_name=e.get("tool_name"),
                              content=as_text(e.get("error") if err else e.get("output")),
                              started_at=ts, ended_at=ts, parent_span_id=call,
                              status="error" if err else "ok",
                              attributes=drop_none({"event": t, "from_cache": e.get("from_cache")})))
            continue
        if t == "agent_execution_started":
            continue  # the task_started step already carries the instruction
        if t == "agent_execution_completed":
            steps.append(_step(agent=agent, kind=StepKind.MESSAGE, role="assistant", content=as_text(e.get("output")),
                              started_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                              attributes={"event": t}))
            continue
        if t == "task_completed":
            continue  # same text as agent_execution_completed
        if t == "crew_kickoff_completed":
            out = e.get("output")
            raw = out.get("raw") if isinstance(out, dict) else out
            steps.append(_step(agent=last_task_agent, kind=StepKind.TERMINATION, content=as_text(raw),
                              started_at=ts, span_id=eid, parent_span_id=kickoff_id, status="completed",
                              attributes=drop_none({"event": t, "total_tokens_reported": e.get("total_tokens")})))
            if outcome is Outcome.UNKNOWN:
                outcome = Outcome.UNKNOWN  # a finished crew is not a judged success
            crew_name = crew_name or e.get("crew_name")
            continue
        if t.endswith("_failed") or t.endswith("_error"):
            if not repeated(e.get("error")):
                steps.append(_step(agent=agent, kind=StepKind.ERROR, content=as_text(e.get("error")),
                                   started_at=ts, span_id=eid, parent_span_id=e.get("parent_event_id"),
                                   status="error", attributes={"event": t}))
            if t == "crew_kickoff_failed":
                outcome = Outcome.FAILURE
                steps.append(_step(agent=last_task_agent, kind=StepKind.TERMINATION, content=as_text(e.get("error")),
                                  started_at=ts, status="failed", attributes={"event": t}))
            continue
        # Anything else (memory, knowledge, reasoning, guardrail, user flows…): keep as an event.
        steps.append(_step(agent=agent, kind=StepKind.EVENT, content=_event_text(e), started_at=ts,
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


def _step(**kw: Any) -> Step:
    kw.setdefault("content", None)
    return Step(**kw)


def _task_name(e: dict) -> str | None:
    task = e.get("task")
    return task.get("name") if isinstance(task, dict) else None


def _coworker(args: Any) -> str | None:
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


# -- importers --------------------------------------------------------------------------

class CrewAIEventsImporter:
    name = "crewai-events"
    description = "CrewAI 1.x event-bus JSONL (BaseEvent per line, model_dump or to_json)"

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        try:
            return _is_event(_unwrap(_json_first_line(head)))
        except ValueError:
            # a first event longer than the head (a whole Agent serialised): sniff its keys
            # (BaseEvent dumps start with timestamp/type; the wrapper with event_class)
            body = strip_bom(head).lstrip()
            return (b"\n" not in body and re.match(rb'\{\s*"(timestamp|type|event_class)"\s*:', body) is not None
                    and all(k in body for k in (b'"event_id"', b'"emission_sequence"', b'"type"')))

    def read(self, path: Path) -> Iterator[Trace]:
        events: list[tuple[str, dict]] = []
        for i, obj in iter_jsonl(path):
            where = f"line {i + 1}"
            ev = _unwrap(obj)
            if not isinstance(ev, dict) or "type" not in ev or "event_id" not in ev:
                raise IngestError(str(path), where, "not a CrewAI event: missing required field(s) type/event_id")
            ver = str((obj if isinstance(obj, dict) else {}).get("crewai_version") or ev.get("crewai_version") or "")
            if re.match(r"([2-9]|\d{2,})\.", ver):
                # 1.x events carry no version; a dump that names a newer one is refused
                raise IngestError(str(path), where, f"event from crewai {ver}, newer than mast reads (1.x)",
                                  "Upgrade mast.")
            events.append((where, _slim(ev)))
        yield from events_to_traces(path, events, self.name)


class CrewAICheckpointImporter:
    name = "crewai-checkpoint"
    description = "CrewAI 1.x checkpoint JSON (crewai_version + entities + event_record)"

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        return b'"crewai_version"' in head and (b'"entities"' in head or b'"event_record"' in head)

    def read(self, path: Path) -> Iterator[Trace]:
        data = load_json(path)
        if not isinstance(data, dict):
            raise IngestError(str(path), None, f"expected a checkpoint object, found {type(data).__name__}")
        ver = str(data.get("crewai_version") or "")
        m = re.match(r"(\d+)\.", ver)
        if not m:
            raise IngestError(str(path), None, "missing required field: crewai_version")
        if int(m.group(1)) >= 2:
            raise IngestError(str(path), None, f"checkpoint from crewai {ver}, newer than mast reads (1.x)",
                              "Upgrade mast, or export the run as event-bus JSONL.")
        rec = data.get("event_record")
        nodes = rec.get("nodes") if isinstance(rec, dict) else None
        if not isinstance(nodes, dict):
            raise IngestError(str(path), None, "missing required field: event_record.nodes")
        events = []
        for eid, node in nodes.items():
            ev = node.get("event") if isinstance(node, dict) else None
            if not isinstance(ev, dict):
                raise IngestError(str(path), f"event_record.nodes[{eid}]", "missing required field: event")
            events.append((f"event_record.nodes[{eid}]", _slim(ev)))
        crew = next((e for e in data.get("entities") or [] if isinstance(e, dict) and e.get("entity_type") == "crew"), {})
        yield from events_to_traces(path, events, self.name, system=crew.get("name"),
                                    metadata={"crewai_version": ver, "checkpoint_trigger": data.get("trigger"),
                                              "checkpoint_parent": data.get("parent_id")})


def _is_task_output(obj: Any) -> bool:
    if isinstance(obj, dict) and obj.get("class") == "TaskOutput" and isinstance(obj.get("payload"), dict):
        obj = obj["payload"]
    return isinstance(obj, dict) and {"raw", "agent", "expected_output"} <= obj.keys()


class CrewOutputImporter:
    name = "crewai-output"
    description = ("CrewAI CrewOutput JSON (raw + tasks_output[].messages + token_usage), "
                   "or TaskOutput JSON lines (task_callback)")

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        if b'"tasks_output"' in head and b'"raw"' in head:
            return True
        try:
            return _is_task_output(_json_first_line(head))
        except ValueError:
            return False

    def read(self, path: Path) -> Iterator[Trace]:
        text = path.read_bytes().decode("utf-8-sig", "replace")
        first = text.lstrip().split("\n", 1)[0]
        try:
            one_line = json.loads(first)
        except ValueError:
            one_line = None
        if _is_task_output(one_line) and "tasks_output" not in first:
            # task_callback output: one TaskOutput per line, the tasks of one run in order
            tasks = []
            for i, line in enumerate(text.splitlines()):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    raise IngestError(str(path), f"line {i + 1}", f"invalid JSON (file truncated?): {e}") from None
                if not _is_task_output(obj):
                    raise IngestError(str(path), f"line {i + 1}", "not a TaskOutput (missing raw/agent/expected_output)")
                tasks.append(obj.get("payload", obj) if obj.get("class") == "TaskOutput" else obj)
            # a callback log appended over several kickoffs: a task seen again starts a new run
            runs: list[list[dict]] = [[]]
            for t in tasks:
                key = (t.get("name"), t.get("description"))
                if any((u.get("name"), u.get("description")) == key for u in runs[-1]):
                    runs.append([])
                runs[-1].append(t)
            for i, run in enumerate(runs):
                yield self._one(path, i, {"raw": run[-1]["raw"], "tasks_output": run})
            return
        data = load_json(path)
        outs = data if isinstance(data, list) else [data]
        for i, d in enumerate(outs):
            yield self._one(path, i, d)

    def _one(self, path: Path, index: int, d: Any) -> Trace:
        if not isinstance(d, dict) or "tasks_output" not in d or "raw" not in d:
            raise IngestError(str(path), index, "missing required field(s): raw, tasks_output")
        tasks = d["tasks_output"]
        if not isinstance(tasks, list):
            raise IngestError(str(path), index, "field tasks_output is not a list")
        steps: list[Step] = []
        prev = None
        for j, to in enumerate(tasks):
            where = f"{index}, tasks_output[{j}]"
            if not isinstance(to, dict) or "agent" not in to or "raw" not in to:
                raise IngestError(str(path), where, "missing required field(s): agent, raw")
            agent = str(to["agent"]).strip()
            if prev and prev != agent:
                steps.append(_step(agent=prev, kind=StepKind.HANDOFF, target_agent=agent,
                                  content=to.get("description"), attributes={"event": "next_task"}))
            prev = agent
            steps.append(_step(agent=agent, role="user", kind=StepKind.EVENT, content=to.get("description"),
                              status="started", attributes=drop_none({"task_name": to.get("name"),
                                                                   "expected_output": to.get("expected_output")})))
            msgs = to.get("messages") or []
            steps.extend(_openai_messages(path, where, agent, msgs, j))
            if not any(s.kind == StepKind.MESSAGE and s.role == "assistant" and s.content == to["raw"]
                       for s in steps[-max(1, len(msgs)):]):
                steps.append(_step(agent=agent, kind=StepKind.MESSAGE, role="assistant", content=as_text(to["raw"]),
                                  attributes={"field": "raw"}))
            for tf in to.get("tool_failures") or []:
                steps.append(_step(agent=agent, kind=StepKind.ERROR, content=as_text(tf), status="error"))
        steps.append(_step(agent=prev, kind=StepKind.TERMINATION, content=as_text(d.get("raw")), status="completed"))
        task = tasks[0].get("description") if tasks else None
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task,
                     metadata=drop_none({"token_usage_reported": d.get("token_usage")}))


def _openai_messages(path: Path, where: str, agent: str, msgs: Any, task_no: int) -> list[Step]:
    """A task's OpenAI-style transcript; system/user prompts are the crew's, not the agent's."""
    if not isinstance(msgs, list):
        raise IngestError(str(path), where, "field messages is not a list")
    out: list[Step] = []
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m:
            raise IngestError(str(path), f"{where}, messages[{k}]", "missing required field: role")
        role = m["role"]
        if role in ("system", "user"):
            out.append(_step(agent=None, role=role, kind=StepKind.MESSAGE, content=as_text(m.get("content")),
                            attributes={"recipient": agent}))
        elif role == "tool":
            out.append(_step(agent=agent, role="tool", kind=StepKind.TOOL_RESULT, content=as_text(m.get("content")),
                            tool_name=m.get("name"), parent_span_id=m.get("tool_call_id")))
        else:
            if m.get("content"):
                out.append(_step(agent=agent, role="assistant", kind=StepKind.MESSAGE, content=as_text(m["content"])))
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                name = fn.get("name")
                kind = StepKind.HANDOFF if name and DELEGATE_RX.match(name) else StepKind.TOOL_CALL
                out.append(_step(agent=agent, role="assistant", kind=kind, tool_name=name,
                                tool_args=as_text(fn.get("arguments")), span_id=c.get("id"),
                                target_agent=_coworker(fn.get("arguments")) if kind == StepKind.HANDOFF else None))
    return out


_LOG_RX = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d): task_name="')
_FIELD_RX = re.compile(r'(\w+)="(.*?)"(?=, \w+="|\s*$)', re.S)


class CrewAILogImporter:
    name = "crewai-log"
    description = "CrewAI output_log_file (.txt lines or .json array of task status entries)"

    def detect(self, path: Path, head: bytes) -> bool:
        text = strip_bom(head).decode("utf-8", "replace").lstrip()
        if _LOG_RX.match(text):
            return True
        if not text.startswith("["):
            return False
        obj = json.JSONDecoder().raw_decode(text[1:].lstrip())[0]
        return isinstance(obj, dict) and {"timestamp", "task_name", "agent", "status"} <= obj.keys()

    def read(self, path: Path) -> Iterator[Trace]:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig", "replace")
        if text.lstrip().startswith("["):
            data = load_json(path)
            if not isinstance(data, list):
                raise IngestError(str(path), None, "expected a JSON array of log entries")
            entries = []
            for i, e in enumerate(data):
                if not isinstance(e, dict):
                    raise IngestError(str(path), i, "expected a log entry object")
                entries.append((i, e))
        else:
            entries = list(self._parse_text(path, text))
        for i, e in entries:
            missing = [f for f in ("timestamp", "agent", "status") if f not in e]
            if missing:
                raise IngestError(str(path), i, "missing required field(s): " + ", ".join(missing))
        # output_log_file appends: a task starting again begins a new run.
        runs: list[list[tuple[Any, dict]]] = [[]]
        seen: set = set()
        for i, e in entries:
            key = (e.get("task_name"), e.get("task"))
            if e.get("status") == "started" and key in seen:
                runs.append([])
                seen = set()
            if e.get("status") == "started":
                seen.add(key)
            runs[-1].append((i, e))
        for n, run in enumerate(r for r in runs if r):
            yield self._trace(path, n, run)

    def _parse_text(self, path: Path, text: str) -> Iterator[tuple[str, dict]]:
        cur: list[str] = []
        start = 0
        lines = text.splitlines()
        for ln, line in enumerate(lines + [None]):
            if line is None or _LOG_RX.match(line):
                if cur:
                    yield self._text_entry(path, start, "\n".join(cur))
                cur = [line] if line is not None else []
                start = ln + 1
            elif cur and 'output="' in cur[0] and not "\n".join(cur).rstrip().endswith('"'):
                cur.append(line)  # an unescaped multi-line output value, still open
            elif line.strip():
                raise IngestError(str(path), f"line {ln + 1}", "not an output_log line (expected 'YYYY-MM-DD HH:MM:SS: task_name=…')")

    def _text_entry(self, path: Path, ln: int, entry: str) -> tuple[str, dict]:
        ts, rest = entry[:19], entry[21:]
        if 'output="' in rest and not rest.rstrip().endswith('"'):
            raise IngestError(str(path), f"line {ln}", "unterminated output value (file truncated?)")
        fields = dict(_FIELD_RX.findall(rest))
        if "status" not in fields or "agent" not in fields:
            raise IngestError(str(path), f"line {ln}", "missing required field(s): agent/status (line truncated?)")
        fields["timestamp"] = ts
        return f"line {ln}", fields

    def _trace(self, path: Path, index: int, run: list[tuple[Any, dict]]) -> Trace:
        steps: list[Step] = []
        prev = None
        for _, e in run:
            agent = str(e["agent"]).strip()
            ts = str(e["timestamp"]).replace(" ", "T")
            if e["status"] == "started":
                if prev and prev != agent:
                    steps.append(_step(agent=prev, kind=StepKind.HANDOFF, target_agent=agent, content=e.get("task"),
                                      started_at=ts, attributes={"event": "next_task"}))
                prev = agent
                steps.append(_step(agent=agent, role="user", kind=StepKind.EVENT, content=e.get("task"),
                                  started_at=ts, status="started", attributes=drop_none({"task_name": e.get("task_name")})))
            else:
                steps.append(_step(agent=agent, role="assistant", kind=StepKind.MESSAGE,
                                  content=as_text(e.get("output")), started_at=ts, status=str(e["status"]),
                                  attributes=drop_none({"task_name": e.get("task_name")})))
        task = next((e.get("task") for _, e in run if e.get("task")), None)
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task,
                     metadata={"timestamps": "local time, no zone (as CrewAI writes them)",
                               "first_record": run[0][0]})

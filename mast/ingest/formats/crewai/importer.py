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
    counted: it double counts when agents share one LLM object (docs/formats/crewai.md, "Quirks").
``crewai-log``
    ``Crew(output_log_file=…)`` as ``.txt`` lines or a ``.json`` array; two entries per
    task (started / completed), local time without zone (stored as written).

Events become steps in :mod:`mast.ingest.formats.crewai.events`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DELEGATE_RX, as_text, drop_none, first_char, first_json, iter_jsonl, load_json, strip_bom
from mast.ingest.formats.crewai.events import (FRAMEWORK, coworker, crew_step, events_to_traces, is_event,
                                               json_first_line, slim, unwrap)
from mast.model import Step, StepKind, Trace


class CrewAIEventsImporter:
    name = "crewai-events"
    description = "CrewAI 1.x event-bus JSONL (BaseEvent per line, model_dump or to_json)"
    example = '{"timestamp": "2026-11-29T15:42:27.955688Z", "type": "crew_kickoff_started", "source_fingerprint": null, "event_id": …'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        try:
            return is_event(unwrap(json_first_line(head)))
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
            ev = unwrap(obj)
            if not isinstance(ev, dict) or "type" not in ev or "event_id" not in ev:
                raise IngestError(str(path), where, "not a CrewAI event: missing required field(s) type/event_id")
            ver = str((obj if isinstance(obj, dict) else {}).get("crewai_version") or ev.get("crewai_version") or "")
            if re.match(r"([2-9]|\d{2,})\.", ver):
                # 1.x events carry no version; a dump that names a newer one is refused
                raise IngestError(str(path), where, f"event from crewai {ver}, newer than mast reads (1.x)",
                                  "Upgrade mast.")
            events.append((where, slim(ev)))
        yield from events_to_traces(path, events, self.name)


class CrewAICheckpointImporter:
    name = "crewai-checkpoint"
    description = "CrewAI 1.x checkpoint JSON (crewai_version + entities + event_record)"
    example = '{"crewai_version": "1.15.30", "parent_id": "…", "branch": "main", "entities": [{"entity_type": "crew", …'

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
            events.append((f"event_record.nodes[{eid}]", slim(ev)))
        crew = next((e for e in data.get("entities") or [] if isinstance(e, dict) and e.get("entity_type") == "crew"), {})
        yield from events_to_traces(path, events, self.name, system=crew.get("name"),
                                    metadata={"crewai_version": ver, "checkpoint_trigger": data.get("trigger"),
                                              "checkpoint_parent": data.get("parent_id")})


def _is_task_output(obj: Any) -> bool:
    if isinstance(obj, dict) and obj.get("class") == "TaskOutput" and isinstance(obj.get("payload"), dict):
        obj = obj["payload"]
    return isinstance(obj, dict) and {"raw", "agent", "expected_output"} <= obj.keys()


#: A page of a list endpoint (``{"data": [...]``): never a CrewOutput, whatever it quotes.
_DATA_PAGE_RX = re.compile(rb'^\s*\[?\s*\{\s*"data"\s*:\s*\[')


class CrewOutputImporter:
    name = "crewai-output"
    description = ("CrewAI CrewOutput JSON (raw + tasks_output[].messages + token_usage), "
                   "or TaskOutput JSON lines (task_callback)")
    example = '{"raw": "…", "pydantic": null, "json_dict": null, "tasks_output": [{"description": "…", "messages": […'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        if b'"tasks_output"' in head and b'"raw"' in head:
            try:
                obj = first_json(head)
            except ValueError:  # a CrewOutput longer than the head (a long raw answer)
                # ... but not a page of another API quoting one (a Langfuse page of a CrewAI run)
                return not _DATA_PAGE_RX.match(strip_bom(head))
            return isinstance(obj, dict) and "tasks_output" in obj and "raw" in obj
        try:
            return _is_task_output(json_first_line(head))
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
                yield self._one(path, i, {"raw": run[-1]["raw"], "tasks_output": run}, "task_callback")
            return
        data = load_json(path)
        outs = data if isinstance(data, list) else [data]
        for i, d in enumerate(outs):
            yield self._one(path, i, d, "CrewOutput")

    def _one(self, path: Path, index: int, d: Any, artefact: str) -> Trace:
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
                steps.append(crew_step(agent=prev, kind=StepKind.HANDOFF, target_agent=agent,
                                  content=to.get("description"), attributes={"event": "next_task"}))
            prev = agent
            steps.append(crew_step(agent=agent, role="user", kind=StepKind.EVENT, content=to.get("description"),
                              status="started", attributes=drop_none({"task_name": to.get("name"),
                                                                   "expected_output": to.get("expected_output")})))
            msgs = to.get("messages") or []
            steps.extend(_openai_messages(path, where, agent, msgs, j))
            if not any(s.kind == StepKind.MESSAGE and s.role == "assistant" and s.content == to["raw"]
                       for s in steps[-max(1, len(msgs)):]):
                steps.append(crew_step(agent=agent, kind=StepKind.MESSAGE, role="assistant", content=as_text(to["raw"]),
                                  attributes={"field": "raw"}))
            for tf in to.get("tool_failures") or []:
                steps.append(crew_step(agent=agent, kind=StepKind.ERROR, content=as_text(tf), status="error"))
        steps.append(crew_step(agent=prev, kind=StepKind.TERMINATION, content=as_text(d.get("raw")), status="completed"))
        task = tasks[0].get("description") if tasks else None
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task,
                     metadata=drop_none({"artefact": artefact, "token_usage_reported": d.get("token_usage")}))


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
            # "prompt": what CrewAI sent the model, not said in the run (run identity skips it)
            out.append(crew_step(agent=None, role=role, kind=StepKind.MESSAGE, content=as_text(m.get("content")),
                            attributes={"recipient": agent, "prompt": True}))
        elif role == "tool":
            out.append(crew_step(agent=agent, role="tool", kind=StepKind.TOOL_RESULT, content=as_text(m.get("content")),
                            tool_name=m.get("name"), parent_span_id=m.get("tool_call_id")))
        else:
            if m.get("content"):
                out.append(crew_step(agent=agent, role="assistant", kind=StepKind.MESSAGE, content=as_text(m["content"])))
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                name = fn.get("name")
                kind = StepKind.HANDOFF if name and DELEGATE_RX.match(name) else StepKind.TOOL_CALL
                out.append(crew_step(agent=agent, role="assistant", kind=kind, tool_name=name,
                                tool_args=as_text(fn.get("arguments")), span_id=c.get("id"),
                                target_agent=coworker(fn.get("arguments")) if kind == StepKind.HANDOFF else None))
    return out


_LOG_RX = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d): task_name="')
_FIELD_RX = re.compile(r'(\w+)="(.*?)"(?=, \w+="|\s*$)', re.S)


_CLOSED_RX = re.compile(r'status="[^"\n]*"\s*$')


def _open(entry: str) -> bool:
    """Whether a log entry read so far is still inside a value: CrewAI writes task
    descriptions and outputs unescaped, newlines included, and every entry ends with its
    ``status`` (started) or its ``output`` (completed)."""
    if 'output="' in entry:
        return not entry.rstrip().endswith('"')
    return not _CLOSED_RX.search(entry)


class CrewAILogImporter:
    name = "crewai-log"
    description = "CrewAI output_log_file (.txt lines or .json array of task status entries)"
    example = '2026-11-29 15:42:28: task_name="research", task="…", agent="Researcher", status="started"'

    def detect(self, path: Path, head: bytes) -> bool:
        text = strip_bom(head).decode("utf-8", "replace").lstrip()
        if _LOG_RX.match(text):
            return True
        if not text.startswith("["):
            return False
        obj = first_json(head)
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
            elif cur and _open("\n".join(cur)):
                cur.append(line)  # an unescaped multi-line value (task or output), still open
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
                    steps.append(crew_step(agent=prev, kind=StepKind.HANDOFF, target_agent=agent, content=e.get("task"),
                                      started_at=ts, attributes={"event": "next_task"}))
                prev = agent
                steps.append(crew_step(agent=agent, role="user", kind=StepKind.EVENT, content=e.get("task"),
                                  started_at=ts, status="started", attributes=drop_none({"task_name": e.get("task_name")})))
            else:
                steps.append(crew_step(agent=agent, role="assistant", kind=StepKind.MESSAGE,
                                  content=as_text(e.get("output")), started_at=ts, status=str(e["status"]),
                                  attributes=drop_none({"task_name": e.get("task_name")})))
        task = next((e.get("task") for _, e in run if e.get("task")), None)
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task,
                     metadata={"timestamps": "local time, no zone (as CrewAI writes them)",
                               "first_record": run[0][0]})

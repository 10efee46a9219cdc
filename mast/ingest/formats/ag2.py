"""AG2 / AutoGen 0.2 classic API: ``ChatResult`` JSON and ``.run()`` event JSONL.

``ag2-chat`` reads ``dataclasses.asdict(chat_result)``: ``{chat_id, chat_history, summary,
cost, human_input}`` (a JSON array of them for ``initiate_chats``), or any object with a
``chat_history`` list, or a bare chat-history list that carries AG2's ``tool_responses``.
Roles in ``chat_history`` are relative to the initiating agent, so the agent is the
message's ``name``; where AG2 leaves ``name`` out (the tool-call message of a two-agent
chat) the sender is the peer of the previous speaker.  ``"content": "None"`` is
``str(None)``.  ``chat_id`` is a 128-bit integer: it is kept as a decimal string in
``metadata.chat_id`` (never through a float).  There are no timestamps, ids or
per-message tokens; ``cost`` (per model) goes to ``metadata.usage``.  The source has no
termination field: a last message containing ``TERMINATE`` (AG2's convention) gives a
``termination`` step marked ``inferred``.

``ag2-events`` reads ``.run()`` / ``run_group_chat()`` events written one
``ev.model_dump(mode="json")`` per line: ``{"type": <snake_case>, "content": {"uuid", ...}}``.
``text`` -> message; ``tool_call`` -> tool calls; ``executed_function`` -> tool results
(status from ``is_exec_success``; the content is the matching ``tool_response`` text the
conversation saw, the raw return value goes to ``attributes.returned``);
``group_chat_run_chat`` -> an ``event`` naming the next speaker; ``termination`` ->
termination with its ``termination_reason``; ``error`` -> error; ``run_completion`` ends a
run (summary, cost, last speaker to metadata).  ``transfer_to_*`` calls become handoff
steps, their target taken from ``executed_function.content.agent_name`` when present.
Event types this importer does not know become ``event`` steps.  There are no timestamps.

Format notes: docs/formats/ag2.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, first_char, line_json, load_json, strip_bom, too_deep
from mast.ingest.autogen_common import ag2_tool_status, collapse_transfer_handoffs, not_none_text
from mast.model import Step, StepKind, Trace

FRAMEWORK = "ag2"
_QUIET_EVENTS = {"using_auto_reply", "execute_function", "post_carryover_processing"}


# ------------------------------------------------------------------ ChatResult / history
class AG2ChatImporter:
    name = "ag2-chat"
    description = "AG2 / AutoGen 0.2 ChatResult JSON (chat_id, chat_history, summary, cost) and chat_history lists"
    example = '{"chat_id": 2960…, "chat_history": [{"content": "…", "role": "assistant", "name": "user_proxy"}, …], "summary": …'

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c == "{":
            if b'"last_speaker"' in head and b'"messages"' in head and b'"summary"' in head:
                return True  # a RunResponse dump (summary, last_speaker, cost, messages)
            return b'"chat_history"' in head and (b'"chat_id"' in head or b'"summary"' in head
                                                  or b'"cost"' in head)
        if c == "[":
            text = strip_bom(head).decode("utf-8", "replace").lstrip()[1:].lstrip()
            if text.startswith("{") and b'"chat_history"' in head[:4096]:
                return True
            # A bare history list: AG2's tool results are tool_responses on a message.
            return b'"tool_responses"' in head and b'"role"' in head and b'"name"' in head
        return False

    def read(self, path: Path) -> Iterator[Trace]:
        data = load_json(path)
        if isinstance(data, dict):
            yield self._chat(path, 0, data)
        elif isinstance(data, list) and data and all(isinstance(d, dict) and "chat_history" in d for d in data):
            for i, d in enumerate(data):
                yield self._chat(path, i, d)
        elif isinstance(data, list):
            yield self._history(path, 0, data, {"artefact": "chat_history"})
        else:
            raise IngestError(str(path), None, f"expected a ChatResult object, found {type(data).__name__}")

    def _chat(self, path: Path, index: int, d: dict) -> Trace:
        if "chat_history" not in d and "last_speaker" in d and "messages" in d:
            d = {**d, "chat_history": d["messages"]}  # RunResponse: same history, other key
        if "chat_history" not in d:
            raise IngestError(str(path), index, "missing required field: chat_history")
        if not isinstance(d["chat_history"], list):
            raise IngestError(str(path), index, "field chat_history is not a list")
        meta: dict[str, Any] = {"artefact": "RunResponse" if "last_speaker" in d else "ChatResult"}
        if d.get("last_speaker"):
            meta["last_speaker"] = d["last_speaker"]
        cid = d.get("chat_id")
        if cid is not None:
            if isinstance(cid, float):
                raise IngestError(str(path), index, "chat_id is a float: the 128-bit id was already rounded")
            meta["chat_id"] = str(cid)
            meta["source_id"] = str(cid)
        if d.get("summary") is not None:
            meta["summary"] = d["summary"]
        if d.get("human_input"):
            meta["human_input"] = d["human_input"]
        usage = _cost(d.get("cost"))
        if usage:
            meta["usage"] = usage
        return self._history(path, index, d["chat_history"], meta)

    def _history(self, path: Path, index: int, hist: list, meta: dict) -> Trace:
        names = [m.get("name") for m in hist if isinstance(m, dict) and m.get("name")]
        distinct = list(dict.fromkeys(names))
        steps: list[Step] = []
        prev: str | None = None
        task = None
        for j, m in enumerate(hist):
            where = f"{index}, message {j}"
            if not isinstance(m, dict):
                raise IngestError(str(path), where, f"expected a message object, found {type(m).__name__}")
            if not any(k in m for k in ("content", "tool_calls", "tool_responses", "function_call")):
                raise IngestError(str(path), where, "message lacks content, tool_calls and tool_responses")
            agent = m.get("name")
            inferred = False
            if not agent:
                others = [n for n in distinct if n != prev]
                agent = others[0] if len(distinct) == 2 and others else None
                inferred = agent is not None
            attrs: dict[str, Any] = {"source_role": m.get("role")}
            if inferred:
                attrs["agent_inferred"] = True
            new = _history_steps(m, agent, attrs)
            if j == 0:
                for s in new:
                    if s.kind is StepKind.MESSAGE:
                        s.role = "user"
                        task = s.content
            steps.extend(new)
            prev = agent
        last = next((s for s in reversed(steps) if s.kind is StepKind.MESSAGE), None)
        if last is not None and last.content and "TERMINATE" in last.content:
            steps.append(Step(agent=last.agent, content="TERMINATE", kind=StepKind.TERMINATION,
                              attributes={"inferred": "TERMINATE in the last message"}))
        calls = {s.span_id: s.tool_name for s in steps if s.kind is StepKind.TOOL_CALL and s.span_id}
        for s in steps:
            if s.kind is StepKind.TOOL_RESULT and not s.tool_name:
                s.tool_name = calls.get(s.parent_span_id)
        steps = collapse_transfer_handoffs(steps, distinct)
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task, metadata=meta)


def _history_steps(m: dict, agent: str | None, attrs: dict) -> list[Step]:
    out: list[Step] = []
    if m.get("tool_responses"):
        for tr in m["tool_responses"]:
            out.append(Step(agent=agent, content=as_text(tr.get("content")), kind=StepKind.TOOL_RESULT,
                            role="tool", parent_span_id=tr.get("tool_call_id"),
                            status=ag2_tool_status(tr.get("content")), attributes=attrs))
        return out
    calls = m.get("tool_calls") or []
    text = not_none_text(m.get("content"))
    if m.get("role") in ("tool", "function") and not calls:
        return [Step(agent=agent, content=text, kind=StepKind.TOOL_RESULT, role="tool",
                     tool_name=m.get("name") if m.get("role") == "function" else None,
                     parent_span_id=m.get("tool_call_id"), status=ag2_tool_status(text), attributes=attrs)]
    if text or not (calls or m.get("function_call")):
        out.append(Step(agent=agent, content=text, kind=StepKind.MESSAGE, role="assistant", attributes=attrs))
    for c in calls:
        fn = c.get("function") or {}
        out.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                        tool_name=fn.get("name"), tool_args=as_text(fn.get("arguments")), span_id=c.get("id"),
                        attributes=attrs))
    fc = m.get("function_call")
    if isinstance(fc, dict):
        out.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                        tool_name=fc.get("name"), tool_args=as_text(fc.get("arguments")), attributes=attrs))
    # Results of the calls are resolved to names after the fact.
    return out


def _cost(cost: Any) -> dict | None:
    """Per-model usage from a ChatResult/RunResponse cost (both dict shapes)."""
    if not isinstance(cost, dict):
        return None
    block = cost.get("usage_including_cached_inference") or cost
    if not isinstance(block, dict):
        return None
    models = block.get("models") if isinstance(block.get("models"), dict) else {
        k: v for k, v in block.items() if isinstance(v, dict)}
    out: dict[str, Any] = {}
    if isinstance(block.get("total_cost"), (int, float)):
        out["total_cost"] = block["total_cost"]
    if models:
        out["models"] = models
        out["prompt_tokens"] = sum(int(v.get("prompt_tokens") or 0) for v in models.values())
        out["completion_tokens"] = sum(int(v.get("completion_tokens") or 0) for v in models.values())
    return out or None


# ------------------------------------------------------------------ .run() events
def _is_event(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("type"), str) and isinstance(obj.get("content"), dict)
            and "uuid" in obj["content"] and obj["type"] == obj["type"].lower())


class AG2EventsImporter:
    name = "ag2-events"
    description = "AG2 .run() / run_group_chat() events, one model_dump per line ({type, content: {uuid, ...}})"
    example = '{"type": "text", "content": {"uuid": "…", "content": "…", "sender": "user", "recipient": "chat_manager"}}'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        line = strip_bom(head).split(b"\n", 1)[0]
        try:
            return _is_event(line_json(line))
        except ValueError:
            return False

    def read(self, path: Path) -> Iterator[Trace]:
        try:
            f = open(path, "rb")
        except OSError as e:
            raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
        run: list[tuple[int, dict]] = []
        index = 0
        with f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except RecursionError:
                    raise too_deep(path, f"line {lineno}") from None
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise IngestError(str(path), f"line {lineno}", f"invalid JSON ({e}); file truncated?") from None
                if not isinstance(obj, dict) or "type" not in obj or "content" not in obj:
                    raise IngestError(str(path), f"line {lineno}",
                                      "not an AG2 event: missing required field(s) type/content")
                if not isinstance(obj["content"], dict):
                    raise IngestError(str(path), f"line {lineno}", "AG2 event content is not an object")
                run.append((lineno, obj))
                if obj["type"] == "run_completion":
                    yield self._run(path, index, run, complete=True)
                    index += 1
                    run = []
        if run:
            yield self._run(path, index, run, complete=False)

    def _run(self, path: Path, index: int, run: list[tuple[int, dict]], complete: bool) -> Trace:
        steps: list[Step] = []
        results_for: set[str] = set()
        targets: dict[str, str] = {}
        agents: list[str] = []
        meta: dict[str, Any] = {"artefact": ".run() events", "lines": [run[0][0], run[-1][0]]}
        task = None
        unknown: set[str] = set()
        for lineno, ev in run:
            t, c = ev["type"], ev["content"]
            where = f"line {lineno}"
            attrs = {"type": t, "uuid": c.get("uuid")}
            sender, recipient = c.get("sender"), c.get("recipient")
            for n in (sender, recipient, c.get("speaker")):
                if isinstance(n, str) and n not in agents:
                    agents.append(n)
            if t == "text":
                if "content" not in c or "sender" not in c:
                    raise IngestError(str(path), where, "text event lacks content or sender")
                text = as_text(c.get("content"))
                role = "assistant"
                if task is None and text:
                    task, role = text, "user"
                steps.append(Step(agent=sender, content=text, kind=StepKind.MESSAGE, role=role,
                                  target_agent=recipient, attributes=attrs))
            elif t == "tool_call":
                calls = c.get("tool_calls")
                if not isinstance(calls, list):
                    raise IngestError(str(path), where, "tool_call event lacks its tool_calls list")
                text = not_none_text(c.get("content"))
                if text:
                    steps.append(Step(agent=sender, content=text, kind=StepKind.MESSAGE, role="assistant",
                                      target_agent=recipient, attributes=attrs))
                for call in calls:
                    fn = call.get("function") or {}
                    steps.append(Step(agent=sender, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                                      tool_name=fn.get("name"), tool_args=as_text(fn.get("arguments")),
                                      span_id=call.get("id"), target_agent=recipient, attributes=attrs))
            elif t == "executed_function":
                cid = c.get("call_id")
                res = c.get("content")
                if isinstance(res, dict) and isinstance(res.get("agent_name"), str) and cid:
                    targets[cid] = res["agent_name"]
                if cid:
                    results_for.add(cid)
                steps.append(Step(agent=recipient, content=as_text(res), kind=StepKind.TOOL_RESULT, role="tool",
                                  tool_name=c.get("func_name"), parent_span_id=cid,
                                  status="ok" if c.get("is_exec_success", True) else "error", attributes=attrs))
            elif t == "tool_response":
                for tr in c.get("tool_responses") or []:
                    cid = tr.get("tool_call_id")
                    if cid and cid in results_for:
                        # The executed_function event already gave this result: its content
                        # becomes what the conversation saw (e.g. "Transfer to refunds"),
                        # the function's raw return value is kept in attributes.
                        for s in steps:
                            if s.kind is StepKind.TOOL_RESULT and s.parent_span_id == cid:
                                s.attributes = {**(s.attributes or {}), "returned": s.content}
                                s.content = as_text(tr.get("content"))
                                s.target_agent = recipient
                        continue
                    steps.append(Step(agent=sender, content=as_text(tr.get("content")), kind=StepKind.TOOL_RESULT,
                                      role="tool", parent_span_id=cid, target_agent=recipient, status="ok",
                                      attributes=attrs))
            elif t == "group_chat_run_chat":
                steps.append(Step(agent=None, content=f"next speaker: {c.get('speaker')}", kind=StepKind.EVENT,
                                  target_agent=c.get("speaker"), attributes=attrs))
            elif t == "termination":
                steps.append(Step(agent=sender, content=as_text(c.get("termination_reason")),
                                  kind=StepKind.TERMINATION, target_agent=recipient, attributes=attrs))
            elif t == "error":
                steps.append(Step(agent=sender, content=as_text(c.get("error") or c), kind=StepKind.ERROR,
                                  status="error", attributes=attrs))
            elif t == "run_completion":
                for k in ("summary", "last_speaker", "context_variables"):
                    if c.get(k) is not None:
                        meta[k] = c[k]
                usage = _cost(c.get("cost"))
                if usage:
                    meta["usage"] = usage
            elif t in _QUIET_EVENTS:
                continue
            else:
                if t.endswith("_transition"):
                    src = c.get("source_agent")
                    attrs["source_agent"] = src.get("name") if isinstance(src, dict) else src
                else:
                    unknown.add(t)
                steps.append(Step(agent=sender or attrs.get("source_agent"), content=as_text(
                    {k: v for k, v in c.items() if k != "uuid"}), kind=StepKind.EVENT,
                    target_agent=recipient, attributes=attrs))
        # Fill tool names on results from their calls.
        names = {s.span_id: s.tool_name for s in steps if s.kind is StepKind.TOOL_CALL and s.span_id}
        for s in steps:
            if s.kind is StepKind.TOOL_RESULT and not s.tool_name:
                s.tool_name = names.get(s.parent_span_id)
        steps = collapse_transfer_handoffs(steps, agents, targets)
        if not complete:
            meta["incomplete"] = True
        if unknown:
            meta["other_event_types"] = sorted(unknown)
        meta["source_id"] = run[0][1]["content"].get("uuid")
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task, metadata=meta)

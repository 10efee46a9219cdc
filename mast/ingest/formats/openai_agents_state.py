"""OpenAI Agents SDK run states: ``RunResult.to_state().to_json()``, as a paused or finished run is saved.

A run that must outlive its process (a tool that needs a person's approval, a run resumed
later) is saved as a ``RunState`` snapshot::

    {"$schemaVersion": "1.21", "current_turn": 3, "current_agent": {"name": "flights_agent"},
     "original_input": "Book me …" | [input items], "model_responses": [{"usage", "output",
     "response_id"}], "generated_items": [{"type": "tool_call_item", "raw_item": {…},
     "agent": {"name": …}}, …], "current_step": null | {"type": "next_step_interruption", …},
     "max_turns": 10, "trace": null | {"id": "trace_…", "workflow_name", "group_id"}, …}

Unlike the SDK's trace export it names the agent of every item and the source and target of
every handoff, and it has each model response's usage, but no times.  A file holds one state,
a JSON array of them, or one per line.  Each state is one trace:

- every model response is an ``llm_call`` step (its tokens, the agent whose items it produced),
  put before the first generated item its output made;
- ``tool_call_item`` / ``tool_call_output_item`` are a ``tool_call`` and its ``tool_result``
  (linked by the call id); a result that is the SDK's own failure text (its default
  ``failure_error_function``) is a failed one;
- ``handoff_output_item`` is a ``handoff`` step from its source agent to its target (its
  ``handoff_call_item``, the ``transfer_to_…`` call, is not a tool call);
- ``message_output_item`` a message, ``reasoning_item`` a message with ``note: reasoning``,
  ``tool_approval_item`` (a call waiting for a person) and items of other types ``event`` steps;
- the last step is the termination: ``completed`` when the run has no next step, ``stopped``
  when it was saved paused (an interruption), by the current agent.

The task is the original input (its first user message if it is a list of items); the
workflow name is the system (the SDK's default names nothing).  The run is known by the id
of its first model response (kind ``agents-sdk-run``): every snapshot of a run starts with
it, where the trace id is only in a paused one, so a paused state and the state of the run
it resumed are one trace (the later one, with more steps).  Format notes:
docs/formats/openai-agents-state.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, as_text, documents, first_char, strip_bom
from mast.ingest.openai_messages import SDK_TOOL_ERROR, content_text
from mast.model import Step, StepKind, Trace

_HEAD_RX = re.compile(rb'^\s*\[?\s*\{\s*"\$schemaVersion"\s*:\s*"(\d+)\.\d+"')
#: Snapshot majors this importer reads (the SDK reads 1.0 onwards; a 2.x is a new layout).
MAJORS = ("1",)
#: The SDK's default workflow name: it names no system.
DEFAULT_WORKFLOW = "Agent workflow"
_REQUIRED = ("current_agent", "original_input", "generated_items")


def _agent(item: dict, key: str = "agent") -> str | None:
    a = item.get(key)
    if isinstance(a, dict):
        return a.get("name") if isinstance(a.get("name"), str) else None
    return a if isinstance(a, str) else None


def _call_name(raw: dict) -> str | None:
    # function calls have a name; hosted and computer calls only their type
    return raw.get("name") or raw.get("tool_name") or raw.get("type")


def _produced(resp: dict) -> set[str]:
    """The ids a model response's output items carry (call ids, and message ids that are real)."""
    out = set()
    for o in resp.get("output") or []:
        if isinstance(o, dict):
            for k in ("call_id", "id"):
                v = o.get(k)
                if isinstance(v, str) and v and v != "__fake_id__":
                    out.add(v)
    return out


def _item_ids(raw: dict) -> set[str]:
    return {v for k in ("call_id", "id") if isinstance(v := raw.get(k), str) and v and v != "__fake_id__"}


def _response_id(resp: Any) -> str | None:
    """The API's id of a model response: the Responses API's ``resp_…``, or the chat completion's
    ``chatcmpl-…`` the SDK keeps on the items it made (``provider_data``)."""
    if not isinstance(resp, dict):
        return None
    if isinstance(resp.get("response_id"), str) and resp["response_id"]:
        return resp["response_id"]
    for o in resp.get("output") or []:
        pd = o.get("provider_data") if isinstance(o, dict) else None
        if isinstance(pd, dict) and isinstance(pd.get("response_id"), str) and pd["response_id"]:
            return pd["response_id"]
    return None


def _task(original: Any) -> str | None:
    if isinstance(original, str):
        return original
    if isinstance(original, list):
        for it in original:
            if isinstance(it, dict) and it.get("role") == "user":
                return content_text(it.get("content"))
    return None


class OpenAIAgentsStateImporter(DeclineDetects):
    name = "openai-agents-state"
    description = "OpenAI Agents SDK run states (RunResult.to_state().to_json(): a paused or finished run)"
    example = '{"$schemaVersion": "1.21", "current_turn": 3, "current_agent": {"name": "flights_agent"}, "original_input": …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a run state, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        body = strip_bom(head)
        m = _HEAD_RX.match(body)
        if not m:
            return (1 if b'"$schemaVersion"' in body else 0), 'no {"$schemaVersion": …} run state'
        if not any(k in body for k in (b'"current_agent"', b'"current_turn"', b'"original_input"')):
            return 2, "a $schemaVersion document with no current_agent, current_turn or original_input"
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        for i, doc in documents(path):
            yield self._trace(path, i, doc)

    def _trace(self, path: Path, index: int, st: Any) -> Trace:
        if not isinstance(st, dict):
            raise IngestError(str(path), index, f"expected a run state object, found {type(st).__name__}")
        version = str(st.get("$schemaVersion") or "")
        if version.split(".")[0] not in MAJORS:
            raise IngestError(str(path), index, f"run state $schemaVersion {version!r} (newer SDK version?)",
                              "Upgrade mast.")
        missing = [k for k in _REQUIRED if k not in st]
        if missing:
            raise IngestError(str(path), index, "missing required field(s): " + ", ".join(missing))
        items = st["generated_items"]
        if not isinstance(items, list):
            raise IngestError(str(path), index, "field generated_items is not a list")
        responses = st.get("model_responses") or []
        if not isinstance(responses, list):
            raise IngestError(str(path), index, "field model_responses is not a list")
        current = _agent(st, "current_agent")
        steps = self._steps(path, index, items, responses, current)
        pending = st.get("current_step")
        paused = isinstance(pending, dict) and pending.get("type") == "next_step_interruption"
        last = current or next((s.agent for s in reversed(steps) if s.agent), None)
        steps.append(Step(agent=last, content="paused: waiting for approval" if paused else None,
                          kind=StepKind.TERMINATION, status="stopped" if paused else "completed",
                          attributes={"current_step": pending.get("type")} if isinstance(pending, dict) else None))
        tr = st.get("trace") if isinstance(st.get("trace"), dict) else {}
        wf = tr.get("workflow_name")
        meta: dict[str, Any] = {"schema_version": version, "current_turn": st.get("current_turn"),
                                "max_turns": st.get("max_turns"), "paused": paused or None,
                                "workflow_name": wf, "group_id": tr.get("group_id"),
                                "conversation_id": st.get("conversation_id")}
        if tr.get("id"):
            meta["source_id"] = [str(tr["id"])]
        if (first := _response_id(responses[0]) if responses else None):
            meta["first_response_id"] = first
        return Trace(system=wf if wf and wf != DEFAULT_WORKFLOW else None, framework="openai-agents",
                     source_format=self.name, source_path=str(path), source_index=index, steps=steps,
                     task=_task(st["original_input"]),
                     metadata={k: v for k, v in meta.items() if v is not None})

    def _steps(self, path: Path, index: int, items: list, responses: list, current: str | None) -> list[Step]:
        # where each model response goes: before the first generated item its output made,
        # found by the ids they share, in order (a chat-completions message has no real id: it
        # is the next message item)
        n = len(items)
        ids = [_item_ids(it["raw_item"]) if isinstance(it, dict) and isinstance(it.get("raw_item"), dict) else set()
               for it in items]
        starts: dict[int, list[int]] = {}
        cursor = 0
        for r, resp in enumerate(responses):
            if not isinstance(resp, dict):
                raise IngestError(str(path), f"{index}, model_responses[{r}]", "expected a model response object")
            made = _produced(resp)
            j = next((k for k in range(cursor, n) if ids[k] & made), None)
            if j is None:
                says = any(isinstance(o, dict) and o.get("type") == "message" for o in resp.get("output") or [])
                j = next((k for k in range(cursor, n) if says and isinstance(items[k], dict)
                          and items[k].get("type") == "message_output_item"), min(cursor, n))
            starts.setdefault(j, []).append(r)
            cursor = min(j + 1, n)
        steps: list[Step] = []
        calls: dict[str, str | None] = {}
        for j, it in enumerate(items):
            where = f"{index}, generated_items[{j}]"
            if not isinstance(it, dict):
                raise IngestError(str(path), where, f"expected an item object, found {type(it).__name__}")
            if "type" not in it:
                raise IngestError(str(path), where, "missing required field: type")
            agent = _agent(it)
            for r in starts.get(j, []):
                steps.append(self._llm_call(path, f"{index}, model_responses[{r}]", responses[r], agent))
            raw = it.get("raw_item") if isinstance(it.get("raw_item"), dict) else {}
            kind = it["type"]
            if kind == "tool_call_item":
                cid = raw.get("call_id") or raw.get("id")
                name = it.get("tool_name") or _call_name(raw)
                if cid:
                    calls[str(cid)] = name
                steps.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                                  tool_name=name, tool_args=as_text(raw.get("arguments", raw.get("action"))),
                                  span_id=str(cid) if cid else None))
            elif kind == "tool_call_output_item":
                cid = raw.get("call_id")
                out = it.get("output", raw.get("output"))
                text = as_text(out)
                steps.append(Step(agent=agent, content=text, kind=StepKind.TOOL_RESULT, role="tool",
                                  tool_name=calls.get(str(cid)) if cid else None,
                                  parent_span_id=str(cid) if cid else None,
                                  status="error" if (text or "").startswith(SDK_TOOL_ERROR) else "ok"))
            elif kind == "handoff_call_item":
                continue  # the transfer_to_… call: its output item below is the handoff
            elif kind == "handoff_output_item":
                src, dst = _agent(it, "source_agent") or agent, _agent(it, "target_agent")
                steps.append(Step(agent=src, content=as_text(raw.get("output")), kind=StepKind.HANDOFF,
                                  role="assistant", target_agent=dst,
                                  span_id=str(raw["call_id"]) if raw.get("call_id") else None))
            elif kind == "message_output_item":
                steps.append(Step(agent=agent, content=content_text(raw.get("content")), kind=StepKind.MESSAGE,
                                  role=raw.get("role") or "assistant"))
            elif kind == "reasoning_item":
                summary = raw.get("summary") or raw.get("content")
                text = "\n".join(p.get("text", "") for p in summary if isinstance(p, dict)) \
                    if isinstance(summary, list) else as_text(summary)
                steps.append(Step(agent=agent, content=text or None, kind=StepKind.MESSAGE, role="assistant",
                                  attributes={"note": "reasoning"}))
            else:
                # a call waiting for approval, MCP listings, compaction, …: kept, by its type
                steps.append(Step(agent=agent, content=None, kind=StepKind.EVENT, role="assistant",
                                  tool_name=it.get("tool_name") or (_call_name(raw) if raw else None),
                                  attributes={"item_type": str(kind)}))
        for r in starts.get(n, []):  # responses after the last item (the state was saved before their items)
            steps.append(self._llm_call(path, f"{index}, model_responses[{r}]", responses[r], current))
        return steps

    @staticmethod
    def _llm_call(path: Path, where: str, resp: dict, agent: str | None) -> Step:
        usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
        tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
        for v, k in ((tin, "input_tokens"), (tout, "output_tokens")):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise IngestError(str(path), where, f"usage.{k} {v!r} is not a whole number")
        rid = resp.get("response_id")
        return Step(agent=agent, content=None, kind=StepKind.LLM_CALL, role="assistant", tokens_in=tin,
                    tokens_out=tout, attributes={"response_id": rid} if rid else None)


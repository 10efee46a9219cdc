"""CrewAI ``step_callback`` dumps: the step objects a crew or agent hands its step callback, one per line.

CrewAI (1.x) calls ``step_callback`` with ``AgentAction`` (``thought``, ``tool``,
``tool_input``, ``text``, ``result``), ``ToolResult`` (``result``, ``result_as_answer``)
and ``AgentFinish`` (``thought``, ``output``, ``text``).  They are dataclasses, not
pydantic models (``model_dump()`` does not exist on them), so a user's
``f.write(json.dumps(step) + "\\n")`` fails and ends up as one of:

- ``json.dumps(step, default=str)``: the dataclass repr as a JSON string,
  ``"AgentAction(thought='…', tool='web_search', tool_input='{…}', text='…', result='…')"``;
- ``json.dumps(dataclasses.asdict(step))`` (or ``vars(step)``), optionally with the class
  name under ``type``: the class is then told by its fields.

Both are read (a repr is parsed with :mod:`ast`: only literals are evaluated, nothing is
executed; a field that is no literal, such as a pydantic ``output``, is kept as its source
text).  One trace per file: AgentAction → ``tool_call`` (its ``thought`` as content) and
``tool_result`` (``result``; ``ToolResult`` lines just before it repeat that result and are
folded into it; a ``result_as_answer`` result is a final answer); AgentFinish → an
assistant ``message`` (its output).  The objects name no agent, task, time or tokens, so
the trace has none of these; the outcome is unknown.  A line that is neither of the three
is an error naming it; a known class name with unknown fields is refused as a newer CrewAI.

Format notes: docs/formats/crewai.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_char, first_json, gc_paused, iter_records, jsonl_records, strip_bom
from mast.ingest.formats.crewai.events import FRAMEWORK, crew_step
from mast.model import Step, StepKind, Trace

_FIELDS = {"AgentAction": {"thought", "tool", "tool_input", "text", "result"},
           "AgentFinish": {"thought", "output", "text"},
           "ToolResult": {"result", "result_as_answer"}}
_WITH_TYPE = {k: v | {"type"} for k, v in _FIELDS.items()}
_REPR_RX = re.compile(r"^(AgentAction|AgentFinish|ToolResult)\(")
_HEAD_RX = re.compile(rb'^\s*\[?\s*("(AgentAction|AgentFinish|ToolResult)\(|\{\s*"type"\s*:\s*"(AgentAction|AgentFinish|ToolResult)")')


def _class_of(d: dict) -> str | None:
    t = d.get("type")
    if t in _FIELDS:
        return t
    keys = set(d)
    for name, fields in _FIELDS.items():
        required = fields - {"result"} if name == "AgentAction" else fields - {"result_as_answer"}
        if required <= keys <= fields | {"type"}:
            return name
    return None


def _from_repr(path: Path, where: str, s: str) -> tuple[str, dict]:
    try:
        node = ast.parse(s, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise IngestError(str(path), where, "a step repr that does not parse (line cut short?)") from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FIELDS
            and not node.args):
        raise IngestError(str(path), where, "not an AgentAction / AgentFinish / ToolResult repr")
    out: dict[str, Any] = {}
    for kw in node.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, SyntaxError, TypeError, RecursionError):
            out[kw.arg] = ast.get_source_segment(s, kw.value)  # a pydantic output: its text
    return node.func.id, out


def _record(path: Path, where: str, obj: Any) -> tuple[str, dict]:
    if isinstance(obj, str):
        if not _REPR_RX.match(obj):
            raise IngestError(str(path), where, "a string that is no AgentAction / AgentFinish / ToolResult repr")
        cls, d = _from_repr(path, where, obj)
    elif isinstance(obj, dict):
        cls = _class_of(obj)
        if cls is None:
            raise IngestError(str(path), where, "neither an AgentAction, an AgentFinish nor a ToolResult "
                              "(fields: " + ", ".join(sorted(map(str, obj))[:8]) + ")")
        # read by field name only, so a ``type`` key may stay: no copy per step
        if obj.keys() <= _WITH_TYPE[cls]:
            return cls, obj
        d = {k: v for k, v in obj.items() if k != "type"}
    else:
        raise IngestError(str(path), where, f"expected a step object or its repr, found {type(obj).__name__}")
    extra = set(d) - _FIELDS[cls]
    if extra:
        raise IngestError(str(path), where, f"{cls} with unknown field(s) {', '.join(sorted(extra))} "
                          "(newer CrewAI version?)", "Upgrade mast.")
    return cls, d


class _LineAttrs(dict):
    """An action's attributes, ``{"line": n}``: one read-only dict per line number, shared by
    the call and result of every file's action on that line, so that the encoder (which
    finds a dict shared by several steps by its identity) makes its JSON once per batch, not
    once per action (crewai-steps, 20 MB: 33,120 encodes become ~160; encode 0.175 -> 0.134
    CPU-s).  Read-only because shared: a change in place would show in other traces
    (replace ``step.attributes`` instead); equal to, encoded and pickled as a plain dict."""

    __slots__ = ()

    def _read_only(self, *a: Any, **k: Any) -> None:
        raise TypeError("these step attributes are shared by other steps: replace the dict, do not change it")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore

    def __reduce__(self):
        return _LineAttrs, (dict(self),)


#: Line numbers whose attributes are shared across files (a file of more lines makes its
#: own for the rest, so what stays for the process is bounded).
SHARED_LINES = 4096
_LINES: dict[int, _LineAttrs] = {}


def _line_attrs(line: int) -> dict:
    a = _LINES.get(line)
    if a is None:
        a = _LineAttrs(line=line)
        if line <= SHARED_LINES:
            _LINES[line] = a
    return a


def _text(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else str(v)


class CrewAIStepCallbackImporter(DeclineDetects):
    name = "crewai-steps"
    description = "CrewAI step_callback dumps: AgentAction / ToolResult / AgentFinish per line (repr or asdict)"
    example = '"AgentAction(thought=\'Thought: I should search.\', tool=\'web_search\', tool_input=\'{…}\', …)"'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a step_callback dump, and why it is not one (None: it is)."""
        body = strip_bom(head)
        if _HEAD_RX.match(body):
            return None
        if body.lstrip()[:1] == b"[":  # an array is no record (and decoding it whole costs)
            return 0, "the first record is no AgentAction / AgentFinish / ToolResult"
        try:
            # one step per line, or the steps collected in a list and dumped at the end
            first = first_json(body, into_array=first_char(body) == "[")
        except ValueError:
            return 0, "the first line is no JSON"
        if isinstance(first, dict) and _class_of(first):
            return None
        return 0, "the first record is no AgentAction / AgentFinish / ToolResult"

    def read(self, path: Path) -> Iterator[Trace]:
        steps: list[Step] = []
        add = steps.append
        pending: list[tuple[int, dict]] = []  # (position, ToolResult)s waiting for their AgentAction
        n = 0
        with open(path, "rb") as f:
            opening = f.read(4096)
        array = first_char(opening) == "["  # a JSON array of steps: positions, not lines
        records: Iterator[tuple[int, Any]] = (enumerate(iter_records(path, "a JSON array of steps")) if array
                                              else jsonl_records(path))
        call, result_kind = StepKind.TOOL_CALL, StepKind.TOOL_RESULT
        with gc_paused():  # two steps per action line, none with a cycle
            for i, obj in records:
                # The shape a dump mostly has (asdict with its class under "type", no other
                # field) is taken here; anything else is checked by _record, which names the
                # record only when it refuses it (no position text made per line).
                cls = obj.get("type") if type(obj) is dict else None
                if cls in _WITH_TYPE and obj.keys() <= _WITH_TYPE[cls]:
                    d = obj
                else:
                    cls, d = _record(path, str(i) if array else f"line {i + 1}", obj)
                n += 1
                line = i + 1
                if cls == "ToolResult":
                    pending.append((line, d))
                    continue
                if cls == "AgentAction":
                    # Steps built positionally (Step's field order), not through crew_step's
                    # keywords: two steps per action; _text inlined for the str it mostly is
                    tool = d.get("tool")
                    if tool is not None and type(tool) is not str:
                        tool = str(tool)
                    result = d.get("result")
                    thought, args = d.get("thought"), d.get("tool_input")
                    sid = f"step-{line}"
                    # one attributes dict for the call and its result, and for every
                    # file's action on this line (see _LineAttrs)
                    attrs = _LINES.get(line) or _line_attrs(line)
                    add(Step(None, (thought if type(thought) is str else _text(thought)) or None, call, "assistant",
                             tool, args if args is None or type(args) is str else str(args), None, sid, None, None,
                             None, None, None, None, None, attrs))
                    add(Step(None, result if result is None or type(result) is str else str(result), result_kind,
                             "tool", tool, None, None, None, sid, None, None, None, None, None, "ok", attrs))
                    if pending:  # mostly the one ToolResult just before, repeating this result
                        if len(pending) == 1 and pending[0][1].get("result") == result:
                            pending = []
                        else:
                            pending = [p for p in pending if p[1].get("result") != result]
                else:
                    add(Step(None, _text(d.get("output")), StepKind.MESSAGE, "assistant",
                             attributes={"line": line, "final": True}))
                if not pending:
                    continue
                for w, r in pending:  # a tool result no action took up: a result-as-answer, or a cut file
                    add(crew_step(agent=None, role="tool", kind=StepKind.MESSAGE if r.get("result_as_answer")
                                  else StepKind.TOOL_RESULT, content=_text(r.get("result")),
                                  attributes={"line": w, "result_as_answer": bool(r.get("result_as_answer"))}))
                pending = []
            for w, r in pending:
                add(crew_step(agent=None, role="tool", kind=StepKind.TOOL_RESULT, content=_text(r.get("result")),
                              attributes={"line": w, "result_as_answer": bool(r.get("result_as_answer"))}))
        if not n:
            raise IngestError(str(path), None, "no steps in file")
        yield Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path), source_index=0,
                    steps=steps, task=None, metadata={"artefact": "step_callback", "records": n})

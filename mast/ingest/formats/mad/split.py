"""Split a MAD ``trace`` into steps, as far as each system's log allows.

MAD records carry each run as one string.  Its shape depends on the system:

==============  ==============================================================================
AG2             JSON ``{problem_statement, trajectory: [{content, role, name}], other_data, note}``;
                ``content`` is a list of lines (human file) or a string (mast-lint records)
HyperAgent      JSON ``{instance_id, problem_statement, trajectory: [line, ...], ...}``; the
                lines are a log with ``HyperAgent_<id> - INFO - Planner's Response:`` headers
ChatDev         text log of ``[YYYY-DD-MM HH:MM:SS INFO] Speaker: **A<->B on : Phase, turn N**``
                blocks (ChatDev writes day before month)
MetaGPT         either JSON ``{run_id, prompt, content}`` whose ``content`` is a loguru log
                (``... | INFO | metagpt.roles.role:_act:391 - Alice(SimpleCoder): ...``) or a
                communication log of ``[ts] FROM: X TO: Y`` / ``[ts] NEW MESSAGES:`` blocks
AppWorld        text with ``Response from Supervisor Agent`` / ``Code Execution Output`` /
                ``Message to X Agent`` sections and a final ``Evaluation`` JSON
Magentic        autogen testbed log: pip output, then ``---------- Speaker ----------`` blocks
OpenManus       loguru log (``✨ Manus's thoughts``, ``🔧 Tool arguments``, ``🎯 Tool 'x' completed``)
==============  ==============================================================================

Contract (checked for every record of the data sets by the tests): nothing of the raw
text is dropped.  Precisely, with ``s = split_trace(system, raw)``:

- ``s.wrapper is None``: ``"".join(step.content for step in s.steps) == raw``.  Text
  that belongs to no recognised speaker (a preamble, pip output) is a step of agent
  ``log`` and kind ``event``.
- ``s.wrapper`` is a dict: ``raw`` was a JSON object; ``s.wrapper`` is that object with
  the field ``s.field`` set to ``None`` and the steps hold that field's value:

  - ``s.form == "text"``: the field is ``"".join(contents)``;
  - ``s.form == "lines"``: the field is ``"".join(contents).split("\\n")``;
  - ``s.form == "messages"``: the field is a list with one message per step: the step's
    ``attributes["source"]`` (the message's other keys) plus ``content``, which is
    ``content.split("\\n")`` when ``attributes["content_lines"]`` is present (the source
    held a list of lines; ``0`` means an empty list), else the content string.

  The JSON *value* is reproduced; whitespace between JSON tokens is not kept (one
  HyperAgent record has a hand-edited stray space after a comma).

The importer stores ``wrapper``, ``field`` and ``form`` in the trace's metadata.
Each step's content is its whole block, header line included, so a classifier reading
contents sees exactly what the log said.

Format notes: docs/formats/mad-whowhen.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from mast.model import Outcome, Step, StepKind


@dataclass
class Split:
    steps: list[Step]
    task: str | None
    method: str
    wrapper: dict | None = None
    field: str | None = None
    form: str = "text"
    outcome: Outcome | None = None


# The kinds as module constants: looking an Enum member up (``StepKind.EVENT``) costs
# 0.1-0.2 µs in Python 3.11, paid for every step of a multi-MB log.
_MESSAGE = StepKind.MESSAGE
_LLM_CALL = StepKind.LLM_CALL
_TOOL_CALL = StepKind.TOOL_CALL
_TOOL_RESULT = StepKind.TOOL_RESULT
_HANDOFF = StepKind.HANDOFF
_TERMINATION = StepKind.TERMINATION
_ERROR = StepKind.ERROR
_EVENT = StepKind.EVENT


# -- block machinery ----------------------------------------------------------------------

class _Ctx:
    """Per-trace state a classifier may use (task found, tools announced, last speaker...)."""

    def __init__(self) -> None:
        self.task: str | None = None
        self.outcome: Outcome | None = None
        self.pending_tools: list[str] = []
        self.speaker: str | None = None
        self.first_in_loop = False


Classify = Callable[[re.Match, str, _Ctx], Step]


_LINE_STARTS: dict[re.Pattern, re.Pattern] = {}


def _headers(text: str, rx: re.Pattern, limit: int | None = None) -> list[re.Match]:
    """``rx.finditer(text)`` (up to ``limit`` matches) for a header pattern ``^...`` in ``re.M``.

    The same matches, found in linear time at memchr speed: a search for ``"\n"`` plus
    the header (a pattern with a literal first character, which the regex engine scans
    for without trying every position) finds each line that starts a header, and ``rx``
    itself then matches there, so every match object is exactly what ``finditer`` gives.
    A plain ``^`` search tries the whole pattern at every character of a multi-MB log.
    """
    fast = _LINE_STARTS.get(rx)
    if fast is None:
        assert rx.pattern.startswith("^") and rx.flags & re.M, rx.pattern
        fast = _LINE_STARTS[rx] = re.compile("\n(?:" + rx.pattern[1:] + ")", rx.flags)
    out: list[re.Match] = []
    m = rx.match(text)
    pos = 0
    if m:
        out.append(m)
        pos = m.end()
    if limit is not None and len(out) >= limit:
        return out
    match = rx.match
    start = max(pos - 1, 0)  # a header may start right after the newline that ended the last match
    while True:
        # One iterator over the line starts, not a search call per header.  It resumes where
        # its last match ended, which misses a header only when that match ended with the
        # newline the header follows: then a new iterator starts at that newline.
        for f in fast.finditer(text, start):
            m = match(text, f.start() + 1)
            if m is None:  # cannot happen (same pattern, same place); never guess: scan as before
                return list(rx.finditer(text))[:limit]
            out.append(m)
            if limit is not None and len(out) >= limit:
                return out
            end = m.end()
            if text[end - 1] == "\n" and end - 1 > f.start():
                start = end - 1
                break
        else:
            return out


def _log(content: str, **attrs: Any) -> Step:
    return Step(agent="log", content=content, kind=_EVENT, attributes=attrs or None)


def _run(text: str, rx: re.Pattern, classify: Classify, ctx: _Ctx) -> list[Step] | None:
    """Cut ``text`` at every header match and classify each block; the blocks concatenate
    back to ``text`` (text before the first header is a ``preamble`` step)."""
    ms = _headers(text, rx)
    if not ms:
        return None
    first = ms[0].start()
    steps = [_log(text[:first], segment="preamble")] if first > 0 else []
    ends = [m.start() for m in ms]
    ends.append(len(text))
    for i, m in enumerate(ms, 1):
        steps.append(classify(m, text[m.start():ends[i]], ctx))
    return steps


def _body(block: str, m: re.Match) -> str:
    """The block without its header line."""
    nl = block.find("\n", m.end() - m.start())
    return "" if nl < 0 else block[nl + 1:]


# -- ChatDev --------------------------------------------------------------------------------

_CHATDEV_RX = re.compile(r"^\[(\d{4})-(\d\d)-(\d\d) (\d\d:\d\d:\d\d) (\w+)\] (.*)$", re.M)
_CHATDEV_TURN = re.compile(r"^(?:(?P<speaker>[^:*]+): )?\*\*(?P<a>[^*<]+?)<->(?P<b>[^*]+?) on : "
                           r"(?P<phase>[^,*]+), turn (?P<turn>\d+)\*\*")
_CHATDEV_MARK = re.compile(r"^(?:(?P<speaker>[^:*]+): )?\*\*\[(?P<mark>[^\]]+)\]\*\*")
_USAGE = {k: re.compile(rf"^{k}: \$?([\d.]+)", re.M) for k in ("prompt_tokens", "completion_tokens", "cost")}


def _chatdev(m: re.Match, block: str, ctx: _Ctx) -> Step:
    y, d, mo, hms, level, rest = m.groups()
    # ChatDev formats its log time as %Y-%d-%m.
    ts = f"{y}-{mo}-{d}T{hms}" if int(mo) <= 12 else f"{y}-{d}-{mo}T{hms}"
    attrs: dict[str, Any] = {"level": level}
    if level in ("ERROR", "CRITICAL"):
        return Step(agent="log", content=block, kind=_ERROR, started_at=ts, attributes=attrs)
    # Both patterns need a "**": half the headers ("flask app.py did not start", HTTP
    # requests) are told apart without trying either.
    marked = "**" in rest
    t = _CHATDEV_TURN.match(rest) if marked else None
    if t:
        speaker = (t.group("speaker") or t.group("a")).strip()
        a, b = t.group("a").strip(), t.group("b").strip()
        attrs.update(phase=t.group("phase").strip(), turn=int(t.group("turn")))
        return Step(agent=speaker, content=block, kind=_MESSAGE, role="assistant",
                    target_agent=b if speaker == a else a, started_at=ts, attributes=attrs)
    mk = _CHATDEV_MARK.match(rest) if marked else None
    if mk:
        mark = mk.group("mark")
        attrs["marker"] = mark
        speaker = (mk.group("speaker") or "").strip()
        if mark == "Preprocessing":
            tp = re.search(r"^\*\*task_prompt\*\*: (.*)$", block, re.M)
            if tp and ctx.task is None:
                ctx.task = tp.group(1)
        if mark == "OpenAI_Usage_Info Receive":
            vals = {k: rx.search(block) for k, rx in _USAGE.items()}
            return Step(agent="log", content=block, kind=_LLM_CALL, started_at=ts,
                        tokens_in=int(vals["prompt_tokens"].group(1)) if vals["prompt_tokens"] else None,
                        tokens_out=int(vals["completion_tokens"].group(1)) if vals["completion_tokens"] else None,
                        cost_usd=float(vals["cost"].group(1)) if vals["cost"] else None, attributes=attrs)
        if speaker and speaker != "System":
            # "[Start Chat]": the phase prompt the speaker sends to open a chat.
            return Step(agent=speaker, content=block, kind=_MESSAGE, role="user",
                        started_at=ts, attributes=attrs)
        return Step(agent=speaker or "log", content=block, kind=_EVENT, started_at=ts, attributes=attrs)
    if rest.startswith("HTTP Request:"):
        return Step(agent="log", content=block, kind=_EVENT, started_at=ts, attributes=attrs)
    return Step(agent="log", content=block, kind=_EVENT, started_at=ts, attributes=attrs)


# -- loguru (MetaGPT runs, OpenManus) --------------------------------------------------------

_LOGURU_RX = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) \| (\w+)\s*\| "
                        r"([\w.<>-]+):([\w<>-]+):(\d+) - (.*)$", re.M)
_METAGPT_ACT = re.compile(r"^(?P<name>\w+)\((?P<profile>\w+)\): (?P<what>.*)")
_TOKENS = re.compile(r"Token usage: Input=(\d+), Completion=(\d+)")
_QUOTED_TOOL = re.compile(r"[Tt]ool '([^']+)'")
_THOUGHTS = re.compile(r"(\w+)'s thoughts:")
_ERRORISH = re.compile(r"(?i)\b(error|exception|traceback|failed)\b")


def _loguru(m: re.Match, block: str, ctx: _Ctx) -> Step:
    date, hms, level, module, func, line, msg = m.groups()
    ts = f"{date}T{hms}"
    attrs: dict[str, Any] = {"level": level, "logger": f"{module}:{func}:{line}"}
    s = Step(agent="log", content=block, kind=_EVENT, started_at=ts, attributes=attrs)
    act = _METAGPT_ACT.match(msg)
    if act:  # MetaGPT: "Alice(SimpleCoder): to do SimpleWriteCode(...)"
        s.agent, s.kind, s.role = act.group("profile"), _MESSAGE, "assistant"
        attrs.update(name=act.group("name"), action=act.group("what"))
        return s
    # each search only when its literal is there: a search tries every word of the line
    tok = _TOKENS.search(msg) if "Token usage: " in msg else None
    if tok:
        s.kind, s.tokens_in, s.tokens_out = _LLM_CALL, int(tok.group(1)), int(tok.group(2))
        return s
    if level in ("ERROR", "CRITICAL") or (level == "WARNING" and _ERRORISH.search(msg)):
        s.kind, s.status = _ERROR, "error"
        return s
    am = _THOUGHTS.search(msg) if "'s thoughts:" in msg else None
    if am:
        ctx.speaker = am.group(1)
        s.agent, s.kind, s.role = am.group(1), _MESSAGE, "assistant"
        return s
    if "Tools being prepared:" in msg:
        try:
            ctx.pending_tools = list(json.loads(msg.split("Tools being prepared:", 1)[1].strip().replace("'", '"')))
        except ValueError:
            ctx.pending_tools = []
        s.agent = ctx.speaker or "log"
        return s
    if "Tool arguments:" in msg:
        s.agent, s.kind, s.role = ctx.speaker or "log", _TOOL_CALL, "assistant"
        s.tool_name = ctx.pending_tools.pop(0) if ctx.pending_tools else None
        s.tool_args = block[block.index("Tool arguments:") + len("Tool arguments:"):].strip()
        return s
    if "Special tool" in msg and "terminate" in msg:
        s.agent, s.kind = ctx.speaker or "log", _TERMINATION
        return s
    tm = _QUOTED_TOOL.search(msg) if "ool '" in msg else None
    if "completed its mission" in msg and tm:
        s.agent, s.kind, s.role, s.tool_name = "tool", _TOOL_RESULT, "tool", tm.group(1)
        s.target_agent = ctx.speaker
        return s
    if ("selected" in msg and "tools" in msg) or "Activating tool" in msg:
        s.agent = ctx.speaker or "log"
        if tm:
            s.tool_name = tm.group(1)
        return s
    if module.startswith("app.flow"):
        s.agent = "PlanningFlow"
    return s


# -- MetaGPT communication log ------------------------------------------------------------

_MGPT_COMM_RX = re.compile(r"^(?:\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\] (FROM: .*|NEW MESSAGES:)"
                           r"|=== .* ===)[ \t]*$", re.M)
_FROM_TO = re.compile(r"FROM: (?P<src>.*?) TO: (?P<dst>.*)$")
_SPEAKER_LINE = re.compile(r"^(\w[\w .-]*?): ", re.M)


def _metagpt_comm(m: re.Match, block: str, ctx: _Ctx) -> Step:
    date, hms, what = m.group(1), m.group(2), m.group(3)
    if date is None:
        return _log(block, marker=m.group(0).strip())
    ts = f"{date}T{hms}"
    body = _body(block, m)
    ft = _FROM_TO.match(what)
    if ft:
        src, dst = ft.group("src").strip(), ft.group("dst").strip()
        # TO is a Python set repr such as {'<all>'}: keep the names inside.
        names = re.findall(r"'([^']*)'", dst) or [dst]
        act = re.search(r"^ACTION: (.*)$", body, re.M)
        if ctx.task is None and src == "Human":
            c = body.split("CONTENT:\n", 1)
            ctx.task = c[1].split("\n" + "-" * 20, 1)[0].strip() if len(c) > 1 else None
        return Step(agent=src, content=block, kind=_MESSAGE,
                    role="user" if src == "Human" else "assistant", target_agent=", ".join(names),
                    started_at=ts, attributes={"action": act.group(1)} if act else None)
    sp = _SPEAKER_LINE.search(body)
    return Step(agent=sp.group(1) if sp else "log", content=block,
                kind=_MESSAGE if sp else _EVENT, role="assistant" if sp else None,
                started_at=ts)


# -- AppWorld -----------------------------------------------------------------------------

_APPWORLD_RX = re.compile(r"^( {0,4})(Response from (?P<resp>.+)|Message to (?P<msg>.+)|Code Execution Output"
                          r"|Entering (?P<enter>.+) message loop|Exiting (?P<exit>.+) message loop|Evaluation"
                          r"|\*{5,} Task .*\*{5,})[ \t]*$", re.M)


_EXEC_FAILED = re.compile(r"^\s*(Execution failed\.|Traceback \(most recent call last\))", re.M)


def _exec_output(block: str, m: re.Match, to: str) -> Step:
    body = _body(block, m)
    # the literals first: the ^ search tries every position of a long output
    failed = (_EXEC_FAILED.search(body) if "Execution failed." in body or "Traceback (most recent call last)" in body
              else None)
    return Step(agent="environment", content=block, kind=_ERROR if failed else _TOOL_RESULT,
                role="tool", tool_name="python", target_agent=to, status="error" if failed else None)


def _appworld(m: re.Match, block: str, ctx: _Ctx) -> Step:
    head = m.group(2)
    if head.startswith("*"):
        body = _body(block, m)
        if ctx.task is None and body.strip():
            ctx.task = body.split("\n", 1)[0].strip()
        return _log(block, marker="task")
    if m.group("resp"):
        who = m.group("resp").strip()
        if who.endswith(" API"):  # "Response from send_message API": a tool's return value
            return Step(agent="environment", content=block, kind=_TOOL_RESULT, role="tool",
                        tool_name=who[:-4], target_agent="Supervisor Agent")
        ctx.speaker = who
        return Step(agent=who, content=block, kind=_MESSAGE, role="assistant")
    if m.group("msg"):
        to = m.group("msg").strip()
        if ctx.first_in_loop:  # the message that opens a loop comes from the Supervisor
            ctx.first_in_loop = False
            return Step(agent="Supervisor Agent", content=block, kind=_MESSAGE, role="user",
                        target_agent=to)
        # Later messages into the loop are the execution output of that agent's code.
        return _exec_output(block, m, to)
    if head == "Code Execution Output":
        return _exec_output(block, m, "Supervisor Agent")
    if m.group("enter"):
        ctx.first_in_loop = True
        return _log(block, marker="enter_loop", agent=m.group("enter").strip())
    if m.group("exit"):
        return _log(block, marker="exit_loop", agent=m.group("exit").strip())
    # Evaluation: AppWorld's test report (JSON) with the run's success.
    try:
        ev = json.loads(_body(block, m))
        if isinstance(ev, dict) and isinstance(ev.get("success"), bool):
            ctx.outcome = Outcome.SUCCESS if ev["success"] else Outcome.FAILURE
    except ValueError:
        pass
    return _log(block, marker="evaluation")


# -- Magentic-One (autogen testbed) ---------------------------------------------------------

_MAGENTIC_RX = re.compile(r"^(?:---------- (?P<who>.+?) ----------|(?P<mark>[A-Z][A-Z._]* [A-Z]+[^\n]*!#!#))[ \t]*$",
                          re.M)


def _magentic(m: re.Match, block: str, ctx: _Ctx) -> Step:
    who = m.group("who")
    if who is None:
        return _log(block, marker=m.group("mark").strip())
    body = _body(block, m)
    if who == "user":
        if ctx.task is None:
            ctx.task = body.strip()
        return Step(agent="user", content=block, kind=_MESSAGE, role="user")
    kind = _TERMINATION if body.lstrip().startswith("FINAL ANSWER") else _MESSAGE
    return Step(agent=who, content=block, kind=kind, role="assistant")


# -- HyperAgent ---------------------------------------------------------------------------

_HYPER_RX = re.compile(r"^HyperAgent_\S+ - (\w+) - (.*)$", re.M)
_INTERN = re.compile(r"^Intern Name: (.+)$", re.M)
_TOOL_RUN = re.compile(r"\b(\w+)\._run\(")
_HANDBACK = re.compile(r"(\w+)->(\w+):")
_RESPONSE = re.compile(r"(.+?)'s Response:")


def _tool_run(block: str) -> re.Match | None:
    """``_TOOL_RUN.search(block)``, started near the word before the first ``._run(``: no match can
    begin earlier, and the pattern would otherwise be tried at every word of a long block."""
    i = block.find("._run(")
    if i < 0:
        return None
    # Most tool words are short: a search from a few characters before finds the same match
    # (``\b`` sees the character before the start) at C speed, and it is the one wanted when
    # its word ends at this ``._run(``.  Otherwise (a longer word, or none) walk back to the
    # word's start, one character at a time.
    m = _TOOL_RUN.search(block, max(i - _TOOL_WORD, 0))
    if m is not None and m.end(1) == i:
        return m
    while i > 0 and (block[i - 1].isalnum() or block[i - 1] == "_"):  # what \w is in a str pattern
        i -= 1
    return _TOOL_RUN.search(block, i)


#: How far before ``._run(`` :func:`_tool_run` first searches (the tool words of the MAD
#: HyperAgent records are 6-20 characters).
_TOOL_WORD = 24


def _hyperagent(m: re.Match, block: str, ctx: _Ctx) -> Step:
    level, msg = m.groups()
    attrs = {"level": level}
    if level in ("ERROR", "CRITICAL"):
        return Step(agent="log", content=block, kind=_ERROR, attributes=attrs)
    hand = _HANDBACK.match(msg) if "->" in msg else None
    if hand:  # "Navigator->Planner: ..." the intern's report back
        return Step(agent=hand.group(1), content=block, kind=_MESSAGE, role="assistant",
                    target_agent=hand.group(2), attributes=attrs)
    resp = _RESPONSE.match(msg) if "'s Response:" in msg else None
    if resp:
        who = resp.group(1)
        s = Step(agent=who, content=block, kind=_MESSAGE, role="assistant", attributes=attrs)
        # the literal first: the patterns would try every position of a long block
        intern = next(iter(_headers(block, _INTERN, limit=1)), None) if "Intern Name: " in block else None
        if intern:  # the Planner delegates a subgoal: "Intern Name: Codebase Navigator"
            s.target_agent = intern.group(1).strip().split()[-1]
            s.kind = _HANDOFF
        elif "\nAction:" in block:
            tool = _tool_run(block)
            if tool:
                s.kind, s.tool_name = _TOOL_CALL, tool.group(1)
        if "Final Answer:" in block and not intern:
            attrs["final_answer"] = True
        return s
    return Step(agent="log", content=block, kind=_EVENT, attributes=attrs)


# -- registry of text splitters -------------------------------------------------------------

_TEXT_SPLITTERS: dict[str, tuple[re.Pattern, Classify]] = {
    "chatdev-log": (_CHATDEV_RX, _chatdev),
    "metagpt-comm-log": (_MGPT_COMM_RX, _metagpt_comm),
    "loguru-log": (_LOGURU_RX, _loguru),
    "appworld-log": (_APPWORLD_RX, _appworld),
    "magentic-testbed-log": (_MAGENTIC_RX, _magentic),
    "hyperagent-log": (_HYPER_RX, _hyperagent),
}
# Which splitter to try first for a system; any other is tried after, then whole-text.
_BY_SYSTEM = {
    "chatdev": "chatdev-log", "metagpt": "metagpt-comm-log", "openmanus": "loguru-log",
    "appworld": "appworld-log", "magentic": "magentic-testbed-log", "magentic-one": "magentic-testbed-log",
    "hyperagent": "hyperagent-log",
}


def _split_text(system: str, text: str) -> tuple[list[Step], str, _Ctx]:
    order = list(_TEXT_SPLITTERS)
    first = _BY_SYSTEM.get((system or "").lower())
    if first:
        order.remove(first)
        order.insert(0, first)
    for name in order:
        rx, classify = _TEXT_SPLITTERS[name]
        ctx = _Ctx()
        # A system's own splitter needs one header; guessing another needs two, so a
        # stray line that happens to look like a header does not reshape a foreign log.
        if name != first and len(_headers(text, rx, limit=2)) < 2:
            continue
        steps = _run(text, rx, classify, ctx)
        if steps:
            return steps, name, ctx
    return [_log(text, segment="whole")], "whole-text", _Ctx()


# -- JSON wrappers --------------------------------------------------------------------------

def _lines_text(v: Any) -> str | None:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "\n".join(v)
    return v if isinstance(v, str) else None


def _single_lines(v: list) -> str | None:
    """``"\\n".join(v)`` if ``v`` holds only strings none of which has a newline, else None."""
    try:
        joined = "\n".join(v)
    except TypeError:  # not all strings
        return None
    # one newline per join and none inside a line (a C count, not a test per line)
    return joined if joined.count("\n") == max(len(v) - 1, 0) else None


def _messages(traj: list) -> list[Step] | None:
    steps = []
    for msg in traj:
        if not isinstance(msg, dict) or "content" not in msg:
            return None
        content = msg["content"]
        attrs: dict[str, Any] = {"source": {k: v for k, v in msg.items() if k != "content"}}
        if isinstance(content, list) and all(isinstance(x, str) and "\n" not in x for x in content):
            attrs["content_lines"] = len(content)
            text = "\n".join(content)
        elif isinstance(content, str):
            text = content
        else:
            return None  # structured content: keep the record whole rather than guess
        role = msg.get("role")
        steps.append(Step(agent=str(msg.get("name") or role or "unknown"), content=text,
                          kind=_MESSAGE, role=role if isinstance(role, str) else None,
                          attributes=attrs))
    return steps


def _json_split(system: str, d: dict) -> Split | None:
    task = _lines_text(d.get("problem_statement"))
    if task is None and isinstance(d.get("prompt"), str):
        task = d["prompt"]
    outcome = None
    od = d.get("other_data")
    if isinstance(od, dict) and isinstance(od.get("correct"), bool):
        outcome = Outcome.SUCCESS if od["correct"] else Outcome.FAILURE
    for fld in ("trajectory", "content"):
        v = d.get(fld)
        if v is None:
            continue
        wrapper = {**d, fld: None}
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            steps = _messages(v)
            if steps is not None:
                return Split(steps, task, "json-messages", wrapper, fld, "messages", outcome)
        elif isinstance(v, list) and (joined := _single_lines(v)) is not None:
            steps, how, ctx = _split_text(system, joined)
            return Split(steps, task or ctx.task, f"json-lines+{how}", wrapper, fld, "lines",
                         outcome or ctx.outcome)
        elif isinstance(v, str):
            steps, how, ctx = _split_text(system, v)
            return Split(steps, task or ctx.task, f"json-text+{how}", wrapper, fld, "text",
                         outcome or ctx.outcome)
    return None


def split_trace(system: str, text: str | dict) -> Split:
    """Split a record's ``trace`` (its text, or an already parsed JSON object)."""
    if isinstance(text, dict):
        s = _json_split(system, text)
        if s is not None:
            return s
        text = json.dumps(text, ensure_ascii=False)  # no known field: keep it whole as text
    if text.lstrip().startswith("{"):
        try:
            d = json.loads(text)
        except (ValueError, RecursionError):  # not JSON (or too deep to be read as such): split as text
            d = None
        if isinstance(d, dict):
            s = _json_split(system, d)
            if s is not None:
                return s
    steps, how, ctx = _split_text(system, text)
    return Split(steps, ctx.task, how, outcome=ctx.outcome)

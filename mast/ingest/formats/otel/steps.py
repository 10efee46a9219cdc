"""From a trace's spans to steps: the span tree walked depth-first (see docs/formats/otel.md)."""

from __future__ import annotations

import re
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.ingest._util import DELEGATE_RX, GOTO_RX, PARENT_CMD_RX, as_text, drop_none
from mast.ingest.formats.otel.agentchat import agentchat_steps
from mast.ingest.formats.otel.dialects import (CREWAI_TOOL_FAILURE, dialects_of, error_text, framework_of, input_text, is_openai_agents, is_smolagents,
                                               json_maybe, kind_of, llm_output, own_agent, root_output,
                                               span_tokens, system_name, tool_name_of, tool_nodes, tool_output,
                                               value_text)
from mast.ingest.formats.otel.spans import Span, iso_ns
from mast.ingest.langchain_messages import agent_name, step, transfer_target
from mast.model import Outcome, Step, StepKind, Trace


_START = attrgetter("start_ns")
_ROLE_RX = re.compile(r"role='([^']+)'")
# ag2 1.x's TelemetryMiddleware scope; its hub renders a channel message to the model as
# "[sender]: text", so a task read from a prompt loses that prefix
AG2_SCOPE = "opentelemetry.instrumentation.ag2"
AG2_SPEAKER_RX = re.compile(r"^\[[^\]\n]{1,200}\]: ")


def nothing_happened(group: Sequence[Span]) -> bool:
    """No span of the group is an LLM, tool or agent span or an AgentChat ``autogen
    process`` span (AgentChat's agent construction roots, a "build team" span).  Shared
    with the live endpoint (:mod:`mast.ingest.collect.copies`), which drops what this drops."""
    return bool(group) and all(kind_of(s) == "other" and not s.name.startswith("autogen process") for s in group)


def llm_only(group: Sequence[Span]) -> bool:
    """Every span of the group is an LLM call (a re-emitted copy, if another trace holds it)."""
    return bool(group) and all(kind_of(s) == "llm" for s in group)


def drop_duplicate_llm_groups(groups: list[list[Span]]) -> list[list[Span]]:
    llm_spans = [(s.start_ns, s.end_ns or s.start_ns, gi) for gi, g in enumerate(groups) for s in g
                 if kind_of(s) == "llm"]
    keep = []
    for gi, g in enumerate(groups):
        if len(groups) > 1 and nothing_happened(g):
            continue  # nothing happened in it
        if len(groups) > 1 and llm_only(g):
            lo = min(s.start_ns for s in g)
            hi = max(s.end_ns or s.start_ns for s in g)
            if lo and any(oi != gi and st <= lo and hi <= en for st, en, oi in llm_spans):  # lo 0: time unknown
                continue  # a re-emitted copy of an LLM call already inside another trace
        keep.append(g)
    return keep


def build_trace(path: Path, index: int, spans: list[Span], source_format: str = "otel",
                name_agents: bool = False) -> Trace:
    """One trace from its spans.  ``source_format`` names the importer that read them (the
    span exports of Phoenix, Langfuse and span-tree dumps share this builder);
    ``name_agents``: an AGENT span with no agent attribute is its span name's agent, for
    exports whose agent spans carry nothing else (Phoenix, Langfuse, smolagents dumps)."""
    # One pass over the spans for everything decided per trace (the tree's links, each
    # span's kind and own agent, the scopes, trace ids, times, task spans): the per-trace
    # questions below read these instead of each scanning the spans again.
    ids: dict[str, Span] = {}
    kinds: dict[int, str] = {}
    owns: dict[int, str | None] = {}
    tids: set[str] = set()
    scopes: set[str | None] = set()
    first_task = None  # the earliest span with a CrewAI task description (the first of equal times)
    lo = hi = None  # the earliest known start, the latest end (or start)
    ac_spans = resp_spans = meta_tools = agent_owned = False
    for s in spans:
        s.children = []
        ids[s.span_id] = s
        tids.add(s.trace_id)
        st = s.start_ns
        scopes.add(s.scope)
        k = id(s)
        kinds[k] = kd = kind_of(s)
        owns[k] = own = own_agent(s)
        a = s.attrs
        if kd == "agent" and own:
            agent_owned = True
        elif kd == "tool" and "metadata" in a:
            meta_tools = True  # only these can make a LangGraph tool node (tool_nodes)
        if a.get("crewai.task.description") and (first_task is None or st < first_task.start_ns):
            first_task = s
        if st and (lo is None or st < lo):
            lo = st
        en = s.end_ns or st
        if hi is None or en > hi:
            hi = en
        name = s.name
        if name == "response":
            resp_spans = True
        elif not ac_spans and name.startswith("autogen process"):
            ac_spans = True
    roots: list[Span] = []
    # a parent is looked up by (trace id, span id), else by span id alone: with one trace
    # id the two are the same
    one_trace = len(tids) == 1
    by_id: dict[tuple[str, str], Span] = {} if one_trace else {(s.trace_id, s.span_id): s for s in spans}
    for s in spans:
        pid = s.parent_id
        if not pid:
            roots.append(s)
            continue
        p = None if one_trace else by_id.get((s.trace_id, pid))
        if p is None:
            p = ids.get(pid)
        if p is not None and p is not s:
            p.children.append(s)
        else:
            roots.append(s)
    for s in spans:
        if len(s.children) > 1:
            s.children.sort(key=_START)
    roots.sort(key=_START)
    not_agents = tool_nodes(spans, kinds, lambda x: owns[id(x)]) if meta_tools else set()
    # span names stand in for agents only where no agent span says who it is (OpenAI
    # Agents' workflow span is an AGENT span too, but its agents carry graph.node.id)
    exported, name_agents = name_agents, name_agents and not agent_owned

    def has_llm_below(s: Span) -> bool:
        stack = list(s.children)
        while stack:
            c = stack.pop()
            if kinds[id(c)] == "llm":
                return True
            stack.extend(c.children)
        return False

    def has_error_below(s: Span, msg: str | None) -> bool:
        stack = list(s.children)
        while stack:
            c = stack.pop()
            if c.status == "ERROR":
                t = error_text(c) or ""
                # the same failure, re-raised (and re-worded) by every enclosing span
                if msg is None or t == msg or (t and msg and (t in msg or msg in t)):
                    return True
            stack.extend(c.children)
        return False

    main = roots[0] if len(roots) == 1 else max(roots, key=lambda r: (_subtree_size(r), -r.start_ns))
    t_start, t_end, source_id = iso_ns(lo), iso_ns(hi), sorted(tids)
    ac = agentchat_steps(spans) if ac_spans else None
    if ac is not None:
        steps, task = ac
        if not steps or steps[-1].kind != StepKind.TERMINATION:
            last = next((x.agent for x in reversed(steps) if x.agent), None)
            steps.append(step(agent=last, kind=StepKind.TERMINATION, status="completed", started_at=t_end))
        return Trace(system=system_name(spans, main), framework="autogen", source_format=source_format, source_path=str(path),
                     source_index=index, steps=steps, task=task, started_at=t_start, ended_at=t_end,
                     metadata={"source_id": source_id, "spans": len(spans),
                               "first_record": spans[0].where, "dialects": ["autogen-runtime"]})
    steps = []
    append = steps.append
    # AG2's group chat passes turns by speaker selection: a new speaker is no handoff (its
    # handoffs are transfer tools, which stay handoffs)
    framework = framework_of(spans, scopes)
    openai_agents = is_openai_agents(spans, scopes)
    turns_are_handoffs = framework != "ag2"
    main_attrs = main.attrs
    # an agent's run span holds its task as JSON (smolagents: ``{"task": …, "stream": …}``)
    task = (_agent_task(main) if exported and kinds[id(main)] == "agent" else None) or input_text(main)
    first_task = first_task.attrs["crewai.task.description"] if first_task is not None else None
    if first_task and main_attrs.get("crewai.crew.inputs") is not None:
        # a crew's task is its first task, as the event importer has it (OpenInference's
        # event mode keeps the template: filled here as CrewAI fills it)
        task = _filled(str(first_task), json_maybe(main_attrs["crewai.crew.inputs"]))
    elif isinstance(main_attrs.get("crew_tasks"), str):
        task = _openinference_crew_task(main_attrs) or task
    stitched = len(tids) > 1
    if not task and (exported or stitched):
        # the task sits on the first agent's run span (smolagents), else in the first prompt
        # (a run stitched from several traces: the biggest piece is seldom where it began)
        by_start = sorted(spans, key=_START)
        llms = [x for x in by_start if kinds[id(x)] == "llm"]
        task = next((t for t in (_agent_task(x) for x in by_start if kinds[id(x)] == "agent")
                     if t and not t.startswith(("[", "{"))), None) \
            or (_ag2_task(llms) if AG2_SCOPE in scopes else None) \
            or _first_user_text(llms)
    if task:
        append(Step(None, task, StepKind.MESSAGE, "user", started_at=iso_ns(main.start_ns), span_id=main.span_id))

    agent_tokens: list[tuple] = []  # (agent, tokens in, tokens out, first step of its span)
    cur_agent = last_target = None
    # depth-first, children by start time; iterative, so deep span trees cannot overflow
    # an entry's third element: None (visit the span), True (its code step's result), a
    # delegation whose result is due, or a step to emit once the span's children are done
    stack: list[tuple[Span, str | None, Any]] = [(r, None, None) for r in reversed(roots)]
    pop, push = stack.pop, stack.append
    while stack:
        s, inherited, after = pop()
        if after is not None:
            if after is True:  # the span's children are done: what it observed comes after them
                append(Step(inherited, value_text(s.attrs.get("output.value")), StepKind.TOOL_RESULT, "tool",
                            CODE_TOOL, parent_span_id=s.span_id, started_at=iso_ns(s.end_ns or s.start_ns),
                            status="error" if s.status == "ERROR" else "ok"))
            elif type(after) is _Delegation:  # the delegate's answer; the delegator is the current agent again
                append(after.result())
                cur_agent, last_target = after.delegator, None
            else:
                append(after)
            continue
        # -- the span's own steps; ``below``: the agent its children inherit
        sk = id(s)
        k = kinds[sk]
        a = s.attrs
        own = owns[sk] or (agent_name(agent_of_span(s)) if name_agents and k == "agent" else None)
        if not_agents and own in not_agents:
            own = cur_agent  # a tool node works for the caller
        below = agent = own or inherited
        deferred = None
        if exported and k == "agent" and not has_llm_below(s):
            tin, tout = span_tokens(a)
            if tin is not None or tout is not None:
                # smolagents' OpenInference puts an agent's own token totals on its run span only
                agent_tokens.append((agent, tin, tout, len(steps)))
        err = s.status == "ERROR"
        emsg = error_text(s) if err else None
        parent_cmd = bool(emsg and PARENT_CMD_RX.search(emsg))
        if k == "agent" or (own and own != cur_agent and k != "llm" and k != "tool"):
            if agent and cur_agent and agent != cur_agent and last_target != agent and turns_are_handoffs:
                append(Step(cur_agent, None, StepKind.HANDOFF, target_agent=agent, started_at=iso_ns(s.start_ns),
                            span_id=s.span_id, parent_span_id=s.parent_id, attributes={"implicit": True, "span": s.name}))
            if agent and agent != cur_agent:
                cur_agent = agent
                last_target = None
        if k == "llm" and (not s.children or not has_llm_below(s)):
            text, calls = llm_output(s)
            tin, tout = span_tokens(a)
            cost = a.get("llm.cost.total", a.get("gen_ai.usage.cost"))
            model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model") or a.get("llm.model_name")
            en = iso_ns(s.end_ns)
            at = {"span": s.name}
            if model is not None:
                at["model"] = model
            calls = [c for c in calls if c]
            if calls:
                at["tool_calls"] = calls
            append(Step(agent, text, StepKind.LLM_CALL, "assistant", started_at=iso_ns(s.start_ns), ended_at=en,
                        span_id=s.span_id, parent_span_id=s.parent_id, tokens_in=tin, tokens_out=tout,
                        cost_usd=float(cost) if cost is not None else None, status="error" if err else "ok",
                        attributes=at))
            if err and not parent_cmd:
                append(Step(agent, emsg, StepKind.ERROR, started_at=en, status="error", parent_span_id=s.span_id))
        elif k == "tool":
            name = tool_name_of(s)
            args = a.get("gen_ai.tool.call.arguments", a.get("input.value", a.get("gen_ai.prompt")))
            result = a.get("gen_ai.tool.call.result", a.get("output.value", a.get("gen_ai.completion")))
            delegate = DELEGATE_RX.match(name)
            target = transfer_target(name) or (_delegate_target(args) if delegate else None) \
                or (_ag2_handoff(result) if s.scope == AG2_SCOPE else None) \
                or _sdk_handoff_target(s)
            call_id = a.get("gen_ai.tool.call.id")
            st, en = iso_ns(s.start_ns), iso_ns(s.end_ns)
            if target or (emsg and parent_cmd and GOTO_RX.search(emsg)):
                target = target or GOTO_RX.search(emsg).group(1)
                dest = a.get("langsmith.metadata.__handoff_destination")
                append(Step(agent, None, StepKind.HANDOFF, tool_name=name, tool_args=_args_text(args),
                            target_agent=str(dest or target), span_id=s.span_id, parent_span_id=s.parent_id,
                            started_at=st, ended_at=en,
                            attributes={"tool_call_id": call_id} if call_id is not None else {}))
                last_target = str(dest or target)
                if delegate and not parent_cmd:
                    # CrewAI's delegate works inside the delegation tool's span: its steps
                    # are the delegate's (OpenInference opens no agent span for it), and the
                    # tool's result, the delegate's answer, comes back after that work
                    deferred = _Delegation(agent, name, s, result, err, emsg)
                    below = str(target)
            else:
                append(Step(agent, None, StepKind.TOOL_CALL, "assistant", name, _args_text(args), span_id=s.span_id,
                            parent_span_id=s.parent_id, started_at=st,
                            attributes={"tool_call_id": call_id} if call_id is not None else {}))
                rtext, failed = tool_output(result)
                # AG2 marks a failed execution by ``error.type`` alone (span status unset), as
                # the GenAI conventions allow
                etype = a.get("error.type")
                failed = failed or (err and not parent_cmd) or bool(etype)
                if rtext is None and failed:
                    rtext = emsg or (str(etype) if etype else None)
                append(Step(agent, rtext, StepKind.TOOL_RESULT, "tool", name, parent_span_id=s.span_id,
                            started_at=en or st, status="error" if failed else "ok"))
        elif err and not parent_cmd and s is not main and not has_error_below(s, emsg) \
                and CREWAI_TOOL_FAILURE not in a:
            # the error ends the span: it comes after what ran inside it
            deferred = Step(agent, emsg, StepKind.ERROR, started_at=iso_ns(s.end_ns) or iso_ns(s.start_ns),
                            span_id=s.span_id, parent_span_id=s.parent_id, status="error", attributes={"span": s.name})
        elif parent_cmd and not any(kinds[id(c)] == "tool" for c in _descendants(s)):
            m = GOTO_RX.search(emsg or "")
            if m and not PARENT_CMD_RX.search(" ".join(error_text(c) or "" for c in s.children if c.status == "ERROR")):
                if last_target != m.group(1):
                    append(Step(agent, None, StepKind.HANDOFF, target_agent=m.group(1),
                                started_at=iso_ns(s.end_ns) or iso_ns(s.start_ns), span_id=s.span_id,
                                parent_span_id=s.parent_id, attributes={"via": "ParentCommand"}))
                    last_target = m.group(1)
        # -- what comes after the span's own steps
        if deferred is not None:
            push((s, below, deferred))
        if exported and _is_code_step(s):
            # a CodeAgent step ran its code: the code's execution log is the observation
            # smolagents records, under the tool name it gives code (python_interpreter)
            append(Step(below, None, StepKind.TOOL_CALL, "assistant", CODE_TOOL, span_id=s.span_id,
                        parent_span_id=s.parent_id, started_at=iso_ns(s.start_ns), attributes={"span": s.name}))
            push((s, below, True))
        if s.children:
            stack.extend([(c, below, None) for c in reversed(s.children)])
    for who, tin, tout, first in agent_tokens:  # on the agent's first step of that span
        at = next((x for x in steps[first:] if x.agent == who and x.tokens_in is None and x.tokens_out is None), None)
        if at is not None:
            at.tokens_in, at.tokens_out = tin, tout
    outcome = Outcome.UNKNOWN
    # OpenAI Agents: the span whose error ended the run, below an OK root (fatal_error_span)
    fatal = next((x for x in spans if x.status == "ERROR" and kinds[id(x)] == "agent"), None) \
        if openai_agents and main.status != "ERROR" else None
    m_err = (main.status == "ERROR" and not PARENT_CMD_RX.search(error_text(main) or "")) or fatal is not None
    if m_err:
        emsg = error_text(fatal or main)
        if not has_error_below(main, emsg):
            append(Step(cur_agent, emsg, StepKind.ERROR, status="error", started_at=iso_ns(main.end_ns),
                        span_id=main.span_id))
        outcome = Outcome.FAILURE
    elif stitched and steps and steps[-1].kind == StepKind.ERROR:
        # a run in pieces has no one root to fail: it failed if its last piece ended in an error
        m_err, outcome = True, Outcome.FAILURE
    if main.end_ns:
        # a run stitched from several traces ends when its last root does
        end = max((r.end_ns for r in roots if r.end_ns), default=main.end_ns)
        # in an export's tree, a sub-agent's spans close before its caller's: the run ends
        # with whoever acted last, not with the last agent entered
        last = next((x.agent for x in reversed(steps) if x.agent), None) if exported else None
        append(Step(last or cur_agent, None if m_err else root_output(main), StepKind.TERMINATION,
                    started_at=iso_ns(end), status="failed" if m_err else "completed", parent_span_id=main.span_id))
    return Trace(system=system_name(spans, main), framework=framework, source_format=source_format,
                 source_path=str(path), source_index=index, steps=steps, task=task, outcome=outcome,
                 started_at=t_start, ended_at=t_end,
                 metadata=drop_none({"source_id": source_id, "spans": len(spans), "first_record": spans[0].where,
                                     "dialects": sorted(dialects_of(spans)) or None, "channel_id": _channel(spans),
                                     "response_ids": _response_ids(spans) if resp_spans else None}))


class _Delegation:
    """A delegation tool's span (CrewAI), whose result step is emitted once the delegate's
    work below it is in: its answer as the delegator receives it."""

    __slots__ = ("delegator", "name", "span", "value", "err", "emsg")

    def __init__(self, delegator: str | None, name: str, span: Span, value: Any, err: bool, emsg: str | None):
        self.delegator, self.name, self.span, self.value, self.err, self.emsg = delegator, name, span, value, err, emsg

    def result(self) -> Step:
        rtext, failed = tool_output(self.value)
        s = self.span
        return Step(self.delegator, rtext if rtext is not None else self.emsg, StepKind.TOOL_RESULT, "tool", self.name,
                    parent_span_id=s.span_id, started_at=iso_ns(s.end_ns or s.start_ns),
                    status="error" if self.err or failed else "ok", attributes={"delegation": True})


#: A Responses API id in an OpenInference span's ``output.value`` (the Response it dumps).
_RESP_ID = re.compile(r'"id":\s*"(resp_[A-Za-z0-9_-]+)"')


def _response_ids(spans: list[Span]) -> list[str] | None:
    """The ids of the Responses API calls of the run: the OpenAI Agents SDK exports them
    (``response_id``) and OpenInference's spans dump the Response; unique per call, they tie
    the SDK's trace of a run to OpenInference's (whose trace ids are others)."""
    ids = set()
    for s in spans:
        if s.name != "response":
            continue
        v = s.attrs.get("openai_agents.response_id")
        if isinstance(v, str) and v:
            ids.add(v)
        else:
            out = s.attrs.get("output.value")
            if isinstance(out, str) and '"resp_' in out and (m := _RESP_ID.search(out)):
                ids.add(m.group(1))
    return sorted(ids) or None


def _channel(spans: list[Span]) -> str | None:
    """The ag2 1.x channel the spans ran in (``ag2.network.channel_id``), if exactly one: the
    id the hub's WAL and audit log carry too (mast.ingest.identity)."""
    ids = {str(v) for s in spans if (v := s.attrs.get("ag2.network.channel_id"))}
    return ids.pop() if len(ids) == 1 else None


#: the tool name smolagents gives a CodeAgent's code in its memory steps
CODE_TOOL = "python_interpreter"
_STEP_RX = re.compile(r"^Step \d+$")


def _is_code_step(s: Span) -> bool:
    """A smolagents ``Step N`` span whose output is a code execution log (CodeAgent's steps)."""
    if not s.name.startswith("Step "):  # (most spans: no regex, no attribute lookup)
        return False
    out = s.attrs.get("output.value")
    return bool(_STEP_RX.match(s.name)) and isinstance(out, str) and out.startswith("Execution logs:")


def build_otlp_trace(path: Path, index: int, spans: list[Span]) -> Trace:
    """What ``otel`` (a file) and ``mast collect`` (the live endpoint) build from one trace's
    spans: smolagents' agent spans carry no agent attribute (their names are the agents), and
    both smolagents and OpenAI Agents put the task in the first agent's input or prompt."""
    return build_trace(path, index, spans, name_agents=is_smolagents(spans) or is_openai_agents(spans))


def _agent_task(s: Span) -> str | None:
    """An agent run span's task: plain input text, or the ``task`` of smolagents' JSON input."""
    j = json_maybe(s.attrs.get("input.value"))
    if isinstance(j, dict) and isinstance(j.get("task"), str):
        return j["task"]
    t = input_text(s)
    return t if t and not t.startswith(("[", "{")) else None


def _ag2_handoff(result: Any) -> str | None:
    """ag2 1.x: a tool that returned ``Handoff(target, reason)`` routed the turn (its result
    is that dataclass as JSON)."""
    j = json_maybe(result)
    if isinstance(j, dict) and isinstance(j.get("target"), str) and j["target"] and set(j) <= {"target", "reason"}:
        return j["target"]
    return None


def _ag2_task(llm_spans: list[Span]) -> str | None:
    """ag2 1.x: the first prompt's user message, without the hub's "[sender]: " prefix."""
    t = input_text(llm_spans[0]) if llm_spans else None
    return AG2_SPEAKER_RX.sub("", t, count=1) if t else None


def _first_user_text(llm_spans: list[Span]) -> str | None:
    """The first user message the first LLM span was sent (exports whose root has no input)."""
    for sp in llm_spans[:1]:
        msgs = json_maybe(sp.attrs.get("input.value"))
        if isinstance(msgs, dict) and isinstance(msgs.get("messages"), list):
            msgs = msgs["messages"]
        if isinstance(msgs, list):
            for m in msgs:
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                    return m["content"]
        t = input_text(sp)
        if t and not t.startswith(("[", "{")):
            return t
    return None


def agent_of_span(s: Span) -> str | None:
    """The agent an AGENT span with no agent attribute stands for: CrewAI's OpenInference
    task span names its agent in the input (``role='Researcher'``); otherwise the span
    name (``CodeAgent.run`` / ``ServerAgent.iter`` / ``invoke_agent planner`` → the name)."""
    m = _ROLE_RX.search(str(s.attrs.get("input.value") or "")) if s.name == "Task._execute_core" else None
    if m:
        return m.group(1)
    n = s.name.strip()
    for pre in ("invoke_agent ", "agent "):
        if n.startswith(pre):
            n = n[len(pre):]
    for suf in (".run", ".iter", ".invoke", ".__call__", ".execute"):
        if n.endswith(suf):
            n = n[: -len(suf)]
    return n or None


def _descendants(s: Span) -> Iterator[Span]:
    stack = list(s.children)
    while stack:
        c = stack.pop()
        yield c
        stack.extend(c.children)


def _subtree_size(s: Span) -> int:
    return 1 + sum(1 for _ in _descendants(s))


def _openinference_crew_task(a: dict) -> str | None:
    """OpenInference-CrewAI's kickoff span: the first task's description template
    (``crew_tasks``) filled with the kickoff inputs (``crew_inputs``), as CrewAI fills it."""
    # the wrapper mode names the inputs crew_inputs; the event-listener mode has them as input.value only
    tasks, inputs = json_maybe(a.get("crew_tasks")), json_maybe(a.get("crew_inputs", a.get("input.value")))
    if not (isinstance(tasks, list) and tasks and isinstance(tasks[0], dict)
            and isinstance(tasks[0].get("description"), str)):
        return None
    return _filled(tasks[0]["description"], inputs)


def _filled(template: str, inputs: Any) -> str:
    """CrewAI's interpolation of kickoff inputs into a task description (``{name}``)."""
    for k, v in (inputs if isinstance(inputs, dict) else {}).items():
        template = template.replace("{" + str(k) + "}", str(v))
    return template


_SDK_HANDOFF_RX = re.compile(r"^handoff to (\S+)$")


def _sdk_handoff_target(s: Span) -> str | None:
    """OpenAI Agents' handoff span (OpenInference names it ``handoff to X``, from-agent in,
    to-agent out; the SDK's own export: ``from_agent`` / ``to_agent``)."""
    m = _SDK_HANDOFF_RX.match(s.name)
    if not m:
        return None
    out = s.attrs.get("output.value")
    return str(out).strip() if isinstance(out, str) and out.strip() else m.group(1)


def _delegate_target(args: Any) -> str | None:
    j = json_maybe(args)
    if isinstance(j, dict) and j.get("coworker"):
        return str(j["coworker"]).strip()
    return None


def _args_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str) and "sanitize_inputs_outputs" not in v and "\\u" not in v:
        return v  # no smolagents call in it (not even \u-escaped): not worth decoding
    j = json_maybe(v)
    if isinstance(j, dict) and "sanitize_inputs_outputs" in j and set(j) <= {"args", "kwargs", "sanitize_inputs_outputs"}:
        # smolagents' tool input is the Python call: its arguments are in kwargs (or args)
        return as_text(j.get("kwargs") or j.get("args"))
    return as_text(json_maybe(v)) if not isinstance(v, str) else v

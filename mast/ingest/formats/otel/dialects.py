"""Attribute conventions: which kind of work a span is, whose it is, and its text and tokens.

One place reads all dialects (OTel GenAI semantic conventions old and new, OpenInference,
LangSmith and CrewAI extras), so the step builder never asks which one a span speaks.
See docs/formats/otel.md for the attribute tables.
"""

from __future__ import annotations

import json
from typing import Any

from mast.ingest._util import as_text
from mast.ingest.formats.otel.spans import Span
from mast.ingest.langchain_messages import agent_name, as_message, is_plumbing, text_of


_LLM_OPS = {"chat", "text_completion", "generate_content", "generate", "completion"}
_AGENT_OPS = {"invoke_agent"}  # create_agent is construction, not a turn


_DEFAULT_SERVICES = {"crewai", "langsmith", "langchain", "langgraph", "autogen", "ag2", "openinference"}


#: CrewAI's native "tool failure" span (its ``tool_failure_detected`` event) reports the
#: failed call just made, under the same agent: not another execution, and not another error.
CREWAI_TOOL_FAILURE = "crewai.tool.failure.reason"


def kind_of(s: Span) -> str:
    a = s.attrs
    # (a missing key, the usual case, skips the str() and case fold)
    oi = str(a.get("openinference.span.kind") or "").upper() if "openinference.span.kind" in a else ""
    ls = str(a.get("langsmith.span.kind") or "").lower() if "langsmith.span.kind" in a else ""
    op = str(a.get("gen_ai.operation.name") or "").lower() if "gen_ai.operation.name" in a else ""
    ag2 = str(a.get("ag2.span.type") or "").lower() if "ag2.span.type" in a else ""
    if oi == "LLM" or ls in ("llm", "chat") or op in _LLM_OPS or ag2 == "llm" or "llm.request.type" in a:
        return "llm"
    if CREWAI_TOOL_FAILURE in a:
        return "other"
    if oi == "TOOL" or ls == "tool" or op == "execute_tool" or ag2 == "tool":
        return "tool"
    if oi == "AGENT" or op in _AGENT_OPS or ag2 == "agent":
        return "agent"
    if "gen_ai.prompt.0.content" in a or "gen_ai.completion.0.content" in a:
        return "llm"
    return "other"


def _metadata(a: dict) -> dict:
    md = a.get("metadata")
    if isinstance(md, str):
        try:
            md = json.loads(md)
        except ValueError:
            md = None
    return md if isinstance(md, dict) else {}


_LS_META = "langsmith.metadata."


#: LangGraph's metadata keys own_agent reads, bare (a JSON ``metadata`` attribute) and
#: flattened (``langsmith.metadata.*``), made once rather than per span
_LG_KEYS = tuple(tuple(pre + k for k in ("lc_agent_name", "langgraph_checkpoint_ns", "checkpoint_ns", "langgraph_node"))
                 for pre in ("", _LS_META))


#: every attribute own_agent reads: a span with none of them (most spans of most
#: dialects) has no agent of its own, told by one C-level check of its keys
_OWN_KEYS = frozenset(("crewai.agent.role", "tool.agent_role", "metadata", *_LG_KEYS[1], "graph.node.id",
                       "agent.name", "gen_ai.agent.name"))


_LS_KEYS = frozenset(_LG_KEYS[1])


def own_agent(s: Span) -> str | None:
    a = s.attrs
    if _OWN_KEYS.isdisjoint(a):
        return None
    for k in ("crewai.agent.role", "tool.agent_role"):
        if a.get(k):
            return str(a[k]).strip()
    # LangGraph's metadata: a JSON ``metadata`` attribute, or flattened ``langsmith.metadata.*``
    # keys (looked up directly: scanning every key of every span for the prefix cost more)
    for (lc, cns, ns2, node), src in zip(_LG_KEYS, (_metadata(a) if "metadata" in a else {},
                                                   a if not _LS_KEYS.isdisjoint(a) else {})):
        if not src:
            continue
        # LangGraph's plumbing nodes (``__start__``, ``ChannelWrite…``) are no agents
        if src.get(lc):
            return agent_name(src[lc])
        ns = src.get(cns) or src.get(ns2)
        if isinstance(ns, str) and ns:
            return agent_name(ns.split("|", 1)[0].split(":", 1)[0])
        if is_plumbing(src.get(node)):
            return None
    if a.get("graph.node.id") and str(a.get("openinference.span.kind", "")).upper() == "AGENT":
        return agent_name(str(a["graph.node.id"]).strip())
    if a.get("agent.name"):
        return str(a["agent.name"])
    if a.get("gen_ai.agent.name") and not (s.scope or "").startswith("crewai"):
        return str(a["gen_ai.agent.name"])
    return None


def tool_nodes(spans: list[Span], kinds: dict[int, str], own=None) -> set[str]:
    """LangGraph nodes that only run tools (a ``ToolNode``, "tools"): no model call carries
    their name, so they are no agents; their tool steps are the calling agent's.
    ``own``: :func:`own_agent`, or a caller's cache of it."""
    own = own or own_agent
    cand = {own(x) for x in spans if kinds[id(x)] == "tool"
            and _metadata(x.attrs).get("langgraph_node") == own(x)} - {None}
    if not cand:
        return set()
    return cand - {own(x) for x in spans if kinds[id(x)] == "llm"}


def json_maybe(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _parts_text(msgs: Any) -> tuple[str | None, list[tuple[str | None, str | None, Any]]]:
    """Text and tool calls from GenAI ``parts`` messages (the newer convention)."""
    msgs = json_maybe(msgs)
    if not isinstance(msgs, list):
        return (as_text(msgs) if msgs else None), []
    texts, calls = [], []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        parts = m.get("parts")
        if isinstance(parts, list):
            for p in parts:
                if not isinstance(p, dict):
                    continue
                if p.get("type") in ("text", "reasoning") and p.get("content") is not None:
                    if p.get("type") == "text":
                        texts.append(str(p["content"]))
                elif p.get("type") == "tool_call":
                    calls.append((p.get("id"), p.get("name"), p.get("arguments")))
        elif "content" in m:  # a plain {role, content} list
            t = text_of(m.get("content"))
            if t:
                texts.append(t)
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                calls.append((c.get("id"), fn.get("name") or c.get("name"), fn.get("arguments", c.get("arguments"))))
    return ("\n".join(texts) if texts else None), calls


def _flat_messages(a: dict, prefix: str) -> list[dict]:
    """OpenInference flattened ``llm.output_messages.N.message.*`` → a list of messages."""
    out: dict[int, dict] = {}
    p = prefix + "."
    for k, v in a.items():
        if not k.startswith(p):
            continue
        rest = k[len(p):]
        idx, _, field_ = rest.partition(".")
        if not idx.isdecimal():
            continue
        m = out.setdefault(int(idx), {"tool_calls": {}})
        field_ = field_.removeprefix("message.")
        if field_.startswith("tool_calls."):
            j, _, tf = field_[len("tool_calls."):].partition(".")
            if j.isdecimal():
                m["tool_calls"].setdefault(int(j), {})[tf.removeprefix("tool_call.")] = v
        else:
            m[field_] = v
    return [out[i] for i in sorted(out)]


def _old_gen(a: dict, prefix: str) -> list[dict]:
    """OpenLLMetry-style ``gen_ai.completion.N.{role,content,tool_calls.M.*}``."""
    out: dict[int, dict] = {}
    p = prefix + "."
    for k, v in a.items():
        if k.startswith(p):
            idx, _, f = k[len(p):].partition(".")
            if idx.isdecimal():
                out.setdefault(int(idx), {})[f] = v
    return [out[i] for i in sorted(out)]


def llm_output(s: Span) -> tuple[str | None, list[str | None]]:
    a = s.attrs
    if a.get("gen_ai.output.messages") is not None:
        t, calls = _parts_text(a["gen_ai.output.messages"])
        return t, [c[1] for c in calls]
    fm = _flat_messages(a, "llm.output_messages")
    if fm:
        text = "\n".join(str(m["content"]) for m in fm if m.get("content")) or None
        names = [tc.get("function.name") for m in fm for tc in m["tool_calls"].values()]
        return text, names
    og = _old_gen(a, "gen_ai.completion")
    if og:
        text = "\n".join(str(m["content"]) for m in og if m.get("content")) or None
        names = [v for m in og for k, v in m.items() if k.startswith("tool_calls.") and k.endswith(".name")]
        return text, names
    if a.get("gen_ai.completion") is not None:
        return _langsmith_completion(a["gen_ai.completion"])
    for e in s.events:  # the event generation of the conventions
        if e["name"] in ("gen_ai.choice", "gen_ai.content.completion"):
            ea = e["attrs"]
            body = json_maybe(ea.get("message") or ea.get("body") or ea.get("gen_ai.completion"))
            if isinstance(body, dict):
                return text_of(body.get("content")), [((c.get("function") or {}).get("name")) for c in body.get("tool_calls") or []]
            if body:
                return as_text(body), []
    if a.get("output.value") is not None:
        return value_text(a["output.value"]), []
    return None, []


def _langsmith_completion(v: Any) -> tuple[str | None, list]:
    v = json_maybe(v)
    if isinstance(v, dict):
        gens = v.get("generations")
        if isinstance(gens, list) and gens:
            g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
            if isinstance(g, dict):
                m = as_message(g.get("message"))
                if m:
                    return text_of(m.get("content")), [c.get("name") for c in m.get("tool_calls") or []]
                return g.get("text") or None, []
    return (as_text(v) if v not in (None, "") else None), []


def value_text(v: Any) -> str | None:
    """``input.value`` / ``output.value``: the last message's text when it is a message dump."""
    return _value_text(v, json_maybe(v))


def _value_text(v: Any, j: Any) -> str | None:
    """:func:`value_text` of ``v``, given ``j = json_maybe(v)`` (decoded once by the caller)."""
    if isinstance(j, dict) and isinstance(j.get("messages"), list):
        j = j["messages"]
    if isinstance(j, list) and j:
        last = j[-1]
        m = as_message(last)
        if m:
            return text_of(m.get("content"))
        if isinstance(last, dict) and "content" in last:
            return text_of(last["content"])
    if isinstance(j, dict) and "output" in j and len(j) == 1:
        return as_text(j["output"])
    return as_text(v) if v not in (None, "") else None


def tool_output(v: Any) -> tuple[str | None, bool]:
    """A tool span's result text, and whether the result itself says the tool failed.

    OpenInference-LangChain writes a tool's output as the whole serialised ``ToolMessage``
    when the tool was called with a tool call; a handled error (``handle_tool_error``,
    ToolNode's error handling) is such a message with ``status: "error"`` on a span whose
    own status is OK.  The result is then the message's content."""
    j = json_maybe(v)
    m = as_message(j) if isinstance(j, dict) else None
    if m and m.get("type") == "tool":
        return text_of(m.get("content")), m.get("status") == "error"
    return (_value_text(v, j) if v is not None else None), False


def input_text(s: Span) -> str | None:
    """The task a root span was given."""
    a = s.attrs
    if a.get("gen_ai.input.messages") is not None:
        msgs = json_maybe(a["gen_ai.input.messages"])
        if isinstance(msgs, list):
            users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
            if users:
                return _parts_text([users[0]])[0]
    if a.get("crewai.crew.inputs") is not None:
        return as_text(json_maybe(a["crewai.crew.inputs"]))
    for key in ("input.value", "gen_ai.prompt"):
        if a.get(key) is None:
            continue
        j = json_maybe(a[key])
        if isinstance(j, dict) and isinstance(j.get("messages"), list):
            for it in j["messages"]:
                m = as_message(it[0] if isinstance(it, list) and it else it)
                if m and m.get("type") == "human":
                    return text_of(m.get("content"))
                if isinstance(it, dict) and it.get("role") == "user":
                    return text_of(it.get("content"))
                if isinstance(it, list) and len(it) == 2 and it[0] in ("user", "human") and isinstance(it[1], str):
                    return it[1]  # LangChain's ("user", text) message tuple
        return as_text(j)
    fm = _flat_messages(a, "llm.input_messages")
    users = [m for m in fm if m.get("role") == "user" and m.get("content")]
    if users:
        return str(users[0]["content"])
    return None


def root_output(s: Span) -> str | None:
    a = s.attrs
    if a.get("crewai.crew.output") is not None:
        return as_text(a["crewai.crew.output"])
    if a.get("gen_ai.output.messages") is not None:
        return _parts_text(a["gen_ai.output.messages"])[0]
    if a.get("output.value") is not None:
        return value_text(a["output.value"])
    if a.get("gen_ai.completion") is not None:
        return value_text(a["gen_ai.completion"])
    return None


def span_tokens(a: dict) -> tuple[int | None, int | None]:
    def first(*keys):
        for k in keys:
            if a.get(k) is not None:
                try:
                    return int(a[k])
                except (TypeError, ValueError):
                    return None
        return None
    return (first("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                  "llm.usage.prompt_tokens"),
            first("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                  "llm.usage.completion_tokens"))


def error_text(s: Span) -> str | None:
    for e in s.events:
        if e["name"] == "exception":
            ea = e["attrs"]
            msg = ea.get("exception.message")
            typ = ea.get("exception.type")
            if msg or typ:
                return f"{typ}: {msg}" if typ and msg else str(msg or typ)
    return s.status_msg


def tool_name_of(s: Span) -> str:
    a = s.attrs
    for k in ("gen_ai.tool.name", "tool.name"):
        if a.get(k):
            return str(a[k])
    n = s.name
    for pre in ("execute_tool ", "call tool ", "tool "):
        if n.startswith(pre):
            return n[len(pre):]
    return n[:-4] if n.endswith(".run") else n


def system_name(spans: list[Span], main: Span) -> str | None:
    svc = main.resource.get("service.name") or next((s.resource.get("service.name") for s in spans
                                                     if s.resource.get("service.name")), None)
    if svc and not str(svc).startswith("unknown_service") and str(svc).lower() not in _DEFAULT_SERVICES:
        return str(svc)
    for key in ("crewai.crew.name", "gen_ai.workflow.name", "langsmith.trace.name"):
        for s in [main, *spans]:
            # CrewAI's, LangGraph's and OpenAI Agents' default names name nothing
            if s.attrs.get(key) and str(s.attrs[key]) not in ("crew", "LangGraph", "Agent workflow"):
                return str(s.attrs[key])
    return None


def is_smolagents(spans: list[Span], scopes: set | None = None) -> bool:
    """Spans from OpenInference's smolagents instrumentation (its scope, or its ``smolagents.*`` attributes).
    ``scopes``: the spans' scopes, if the caller has them."""
    scopes = {s.scope for s in spans} if scopes is None else scopes
    return any(sc and sc.endswith(".smolagents") for sc in scopes) or any("smolagents.max_steps" in s.attrs
                                                                         for s in spans)


def is_openai_agents(spans: list[Span], scopes: set | None = None) -> bool:
    """Spans of an OpenAI Agents SDK run (OpenInference's instrumentation, or the SDK's own export)."""
    scopes = {s.scope for s in spans} if scopes is None else scopes
    return any(sc and (sc.endswith(".openai_agents") or sc == "openai-agents") for sc in scopes)


def framework_of(spans: list[Span], scopes: set | None = None) -> str:
    """The framework that made the spans; ``scopes``: their scopes, if the caller has them."""
    scopes = {s.scope for s in spans} if scopes is None else scopes
    if is_smolagents(spans, scopes):
        return "smolagents"
    if is_openai_agents(spans, scopes):
        return "openai-agents"
    joined = " ".join(sorted({sc or "" for sc in scopes}))
    if "crewai" in joined or any("crewai.crew.id" in s.attrs or "crew_id" in s.attrs for s in spans):
        return "crewai"
    if "ag2" in joined or any("ag2.span.type" in s.attrs for s in spans):
        return "ag2"
    if "autogen" in joined.lower() or any(str(s.attrs.get("gen_ai.system")) == "autogen" for s in spans):
        return "autogen"
    if any("langgraph_node" in _metadata(s.attrs) or "langsmith.metadata.langgraph_node" in s.attrs for s in spans):
        return "langgraph"
    if "langchain" in joined or "langsmith" in joined:
        return "langchain"
    return "otel"


def dialects_of(spans: list[Span]) -> set[str]:
    out = set()
    for s in spans:
        a = s.attrs
        if "openinference.span.kind" in a:
            out.add("openinference")
        if "langsmith.span.kind" in a:
            out.add("langsmith")
        if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a:
            out.add("gen_ai")
    # the key prefixes searched in one string of all the spans' keys (a scan in C, not a
    # Python loop over every key of every span)
    keys = "\n" + "\n".join([k for s in spans for k in s.attrs])
    if "\ncrewai." in keys:
        out.add("crewai")
    if "\ngen_ai.prompt." in keys or "\ngen_ai.completion." in keys:
        out.add("gen_ai_legacy")
        # a span with the operation name and no legacy keys speaks the newer conventions
        for s in spans:
            if "gen_ai.operation.name" in s.attrs:
                k = "\n" + "\n".join(s.attrs)
                if "\ngen_ai.prompt." not in k and "\ngen_ai.completion." not in k:
                    out.add("gen_ai")
                    break
    elif any("gen_ai.operation.name" in s.attrs for s in spans):
        out.add("gen_ai")
    return out

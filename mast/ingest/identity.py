"""Run identity: which run of a system a trace is, so that the artefacts of one run become one trace.

A user keeps several artefacts of one run side by side (AgentChat's ``TaskResult``, its
``run_stream`` lines and its event log; the same spans as SDK ``to_json`` lines and as
OTLP JSON).  Each importer reads its artefact as one trace; ingest then asks this module
for the trace's **run key**, made from an id the framework itself gave the run, and the
store keeps one trace per key: the one read from the richest artefact
(:data:`RANKS`), the others recorded as its alternate sources (``run_sources``).

The keys, per format (trace metadata ``run_key`` and ``run_key_kind``):

==========================================  ===================  =========================================
formats                                     kind                 id
==========================================  ===================  =========================================
otel, phoenix, langfuse, spantree          ``otel-trace``       the trace id(s) of the run's spans
openai-agents                               ``agents-sdk-trace`` the SDK's trace id(s) (``trace_…``)
otel, openai-agents (Responses API calls)   ``openai-response``  the ids of the run's Responses API calls
openai-agents-state                         ``agents-sdk-run``   the id of the run's first model response
autogen (0.6+), autogen-events,             ``agentchat-message``  the ``id`` of the run's first message
autogen-state
ag2-runtime-db, ag2-runtime-log             ``ag2-session``      the runtime logger's session id
ag2-chat                                    ``ag2-chat``         ``ChatResult.chat_id``
ag2-events                                  ``ag2-event``        the uuid of the first event
ag2x-wal, ag2x-audit, otel (ag2 1.x spans)  ``ag2x-channel``     the hub channel's id
crewai-events, crewai-checkpoint            ``crewai-kickoff``   the id of the ``crew_kickoff_started`` event
langsmith, langgraph-events                 ``langchain-run``    the root run id
==========================================  ===================  =========================================

Kinds never match across families (an AG2 session id is not an OTel trace id), so an id
merges only artefacts that carry the *same* id; without a key, identical content (one
trace id) ties two artefacts.  AgentChat 0.4/0.5 messages, CrewAI's ``CrewOutput`` /
task callbacks / output log and LangGraph's stream and final state carry no run id (a
LangGraph ``thread_id`` names a conversation, which holds many runs).  For those, and
for two artefacts whose keys are of different kinds, what the trace holds decides
(:mod:`mast.store.run_match`): the **fingerprint** (framework, task and the opening
messages), the agents, the **window** of its times and the digests of its first
messages, all put on the metadata here.  Two keys of one kind that differ are two runs by
the framework's own word (docs/formats/run-identity.md).
"""

from __future__ import annotations

import hashlib
import re
import json
from typing import TYPE_CHECKING, Any, Sequence

from mast.model import Step, StepKind, Trace
from mast.store.rows import RowTables

if TYPE_CHECKING:
    from mast.store.encode import TraceTables

#: How rich each artefact is, highest first within a family: the trace of a run is built
#: from the highest-ranked artefact that carries its key (ties: more steps, then the
#: format name and the path, so the choice never depends on the order files arrive in).
#: ``(format, artefact)`` refines a format whose files differ (metadata ``artefact``).
RANKS: dict[tuple[str, str | None], tuple[int, str]] = {
    # AgentChat: the event log has every LLM call with its prompt and tokens and the
    # speaker selections; OTel has the LLM calls but (0.7) not the selector's; run_stream
    # and TaskResult hold the messages and the stop reason; a bare message list not even that.
    ("autogen-events", None): (50, "event log: every LLM call with prompt and tokens, speaker selections"),
    ("otel", "agentchat"): (40, "OTel spans: LLM calls with tokens"),
    ("autogen", "run_stream"): (30, "run_stream: the messages and the stop reason"),
    ("autogen", "TaskResult"): (20, "TaskResult: the messages and the stop reason"),
    ("autogen", "message list"): (10, "message list: the messages only"),
    ("autogen-state", None): (15, "save_state: the message threads and the manager's state"),
    # AG2: only the .run() events mark failed tool executions; the sqlite and file
    # loggers have every LLM call with tokens; ChatResult the messages only.
    ("ag2-events", None): (50, ".run() events: tool errors marked, handoffs, termination"),
    ("ag2-runtime-db", None): (40, "runtime_logging sqlite: every LLM call with tokens"),
    ("ag2-runtime-log", None): (35, "runtime_logging file: every LLM call with tokens"),
    ("ag2-chat", None): (10, "ChatResult: the messages only"),
    ("ag2-chat", "chat_history"): (8, "message list (GroupChat.messages, chat_history): the messages only"),
    # ag2 1.x: the spans have every model call with tokens and the tool calls; the
    # channel WAL the envelopes (messages, handoffs, the close); an agent's history its own
    # turns only; the audit log the channel's life.
    ("otel", "ag2x"): (45, "OTel spans: every model call with tokens, the tool calls"),
    ("ag2x-wal", None): (35, "channel WAL: every envelope, the handoffs and the close"),
    ("ag2x-events", None): (20, "an agent's history: its own turns only"),
    ("ag2x-audit", None): (10, "audit log: the channel's life only"),
    # CrewAI: the bus has every event in the run (the last checkpoint repeats them).
    ("crewai-events", None): (50, "event bus: every event of the run"),
    ("crewai-checkpoint", None): (45, "checkpoint: the run's events as of the last checkpoint"),
    ("crewai-output", None): (20, "CrewOutput: the task results only"),
    ("crewai-output", "task_callback"): (20, "task callback: the task results only"),
    ("crewai-log", None): (10, "output log: the task results only"),
    # LangGraph / LangSmith: astream_events has every chain, model and tool event with
    # its run id; LangSmith the run tree; the stream and final state only messages.
    ("langgraph-events", None): (50, "astream_events: every model and tool run"),
    ("langsmith", None): (45, "LangSmith runs: the run tree with tokens"),
    ("langgraph-stream", None): (30, "graph stream: updates and messages"),
    ("langgraph-messages", None): (10, "final state: the messages only"),
    # OpenAI Agents SDK: its own export has the calls with tokens but not a Responses API
    # call's input (OpenInference's spans do).
    ("openai-agents", None): (35, "Agents SDK export: the calls with tokens, not a Responses call's input"),
    # its run state names every item's agent and has each response's usage, but no times
    ("openai-agents-state", None): (30, "run state: every item with its agent, each response's usage, no times"),
    ("openai-agents-session", None): (10, "session: a conversation's items, no agent but a handoff's target"),
    # Spans: all exports of the same spans are equally rich; the steps decide.
    ("otel", None): (40, "OTel spans"),
    ("phoenix", None): (40, "Phoenix spans"),
    ("langfuse", None): (40, "Langfuse observations"),
    ("spantree", None): (40, "span tree"),
}

_OTEL = {"otel", "phoenix", "langfuse", "spantree"}
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
#: Formats whose artefact holds one agent's view of its run, not the run: it joins the run
#: whose agents include its own and whose times contain its times (mast.store.run_match).
PARTS = {"ag2x-events"}
#: Messages compared (as digests) between two artefacts that have no times.
DIGESTS = 8
#: Opening steps compared by the fingerprint (what every artefact of a run starts with).
OPENING = 2
_OPENING_KINDS = (StepKind.MESSAGE, StepKind.HANDOFF)
#: astream_events' model replies are ``llm_call`` steps (as LangSmith and OTel store them),
#: but each is the AIMessage the graph's state and stream of the run hold as a message: for
#: the fingerprint they are messages, so the fingerprint reads as it did when they were stored as such.
_OPENING_KINDS_BY_FORMAT = {"langgraph-events": (*_OPENING_KINDS, StepKind.LLM_CALL)}


def rank(trace: Trace) -> tuple[int, str]:
    """How rich the artefact the trace came from is (:data:`RANKS`), and why; (0, …) if unranked."""
    fmt = trace.source_format
    art = trace.metadata.get("artefact")
    if fmt == "otel" and trace.framework == "autogen":
        art = "agentchat"
    elif fmt == "otel" and trace.metadata.get("channel_id"):
        art = "ag2x"
    return RANKS.get((fmt, art)) or RANKS.get((fmt, None)) or (0, f"{fmt}: not ranked")


def _first_message_id(trace: Trace) -> str | None:
    for s in trace.steps[:4]:
        mid = (s.attributes or {}).get("message_id")
        if isinstance(mid, str) and mid:
            return mid
    return None


def _plain_id(v: Any) -> str | None:
    """A run id as a string: LangSmith dumps may spell one ``UUID('…')``."""
    if v is None:
        return None
    s = str(v)
    m = _UUID.search(s)
    return m.group(0).lower().replace("-", "") if m else (s or None)


def run_key(trace: Trace) -> tuple[str, str] | None:
    """``(key, kind)`` from the framework's own ids (see the module doc), or None."""
    fmt, md = trace.source_format, trace.metadata
    sid = md.get("source_id")
    if md.get("channel_id") and fmt in ("ag2x-wal", "ag2x-audit", "otel"):
        # ag2 1.x: the channel is the run; its WAL, audit log and spans all name it
        return "ag2x-channel:" + str(md["channel_id"]), "ag2x-channel"
    if md.get("response_ids") and fmt in ("otel", "openai-agents"):
        # Responses API calls: the SDK's export and OpenInference's spans both hold their ids
        return "openai-response:" + ",".join(md["response_ids"]), "openai-response"
    if fmt in _OTEL:
        ids = sid if isinstance(sid, list) else [sid] if sid else []
        ids = sorted({str(i).lower() for i in ids if i})
        return ("otel-trace:" + ",".join(ids), "otel-trace") if ids else None
    if fmt == "openai-agents":
        # The SDK's own trace ids (trace_…) are not OTel trace ids: OpenInference's spans of
        # the same run carry other ids, so the two must not read as two runs of one kind.
        ids = sid if isinstance(sid, list) else [sid] if sid else []
        ids = sorted({str(i).lower() for i in ids if i})
        return ("agents-sdk-trace:" + ",".join(ids), "agents-sdk-trace") if ids else None
    if fmt == "openai-agents-state":
        # the API's id of the run's first model response: in every snapshot of the run (a
        # paused one and the one it resumed to), where the trace id is only in a paused one
        first = md.get("first_response_id")
        return ("agents-sdk-run:" + str(first), "agents-sdk-run") if first else None
    if fmt in ("autogen", "autogen-events", "autogen-state"):
        mid = _first_message_id(trace)
        return ("agentchat-message:" + mid, "agentchat-message") if mid else None
    if fmt in ("ag2-runtime-db", "ag2-runtime-log"):
        sess = md.get("session_id") or sid
        return ("ag2-session:" + str(sess), "ag2-session") if sess else None
    if fmt == "ag2-chat":
        cid = md.get("chat_id") or sid
        return ("ag2-chat:" + str(cid), "ag2-chat") if cid else None
    if fmt == "ag2-events":
        return ("ag2-event:" + str(sid), "ag2-event") if sid else None
    if fmt in ("crewai-events", "crewai-checkpoint"):
        return ("crewai-kickoff:" + str(sid), "crewai-kickoff") if sid else None
    if fmt in ("langsmith", "langgraph-events"):
        rid = _plain_id(sid)
        return ("langchain-run:" + rid, "langchain-run") if rid else None
    return None


#: Characters the fingerprint keeps of a text, whitespace runs made one space.
NORM_CHARS = 500
_NORM_PREFIX = 4 * NORM_CHARS


def _norm(text: str | None) -> str:
    if not text:
        return ""
    # Whitespace-normalising a prefix gives a prefix of the normalised whole (a word cut
    # at the end is a prefix of the word), so a long text is read only as far as needed.
    if len(text) > _NORM_PREFIX:
        head = " ".join(text[:_NORM_PREFIX].split())
        if len(head) >= NORM_CHARS:
            return head[:NORM_CHARS]
    return " ".join(text.split())[:NORM_CHARS]


def _opening(trace: Trace, n: int) -> list[tuple[Step, str]]:
    """The first ``n`` messages with text, each with its normalised text (one pass, stops early)."""
    out = []
    kinds = _OPENING_KINDS_BY_FORMAT.get(trace.source_format, _OPENING_KINDS)
    for s in trace.steps:
        # a prompt the framework sent its model (CrewAI's task transcripts) is in one
        # artefact of the run and not in another: not what was said in the run
        if s.kind in kinds and s.content and not (s.attributes and s.attributes.get("prompt")) \
                and (text := _norm(s.content)):
            out.append((s, text))
            if len(out) >= n:
                break
    return out


def fingerprint(trace: Trace, opening: list[tuple[Step, str]] | None = None) -> str:
    """What two artefacts of one run share whatever their format: the framework, the task
    and the opening messages (agent and text of the first :data:`OPENING` messages with text)."""
    h = hashlib.sha256()
    h.update((trace.framework or "").encode())
    task = _norm(trace.task)
    h.update(b"\x1f" + task.encode("utf-8", "surrogatepass"))
    for s, text in (opening if opening is not None else _opening(trace, OPENING))[:OPENING]:
        # The task as the opening message is "user" in one rendering and nobody in another
        # (AgentChat's event log against its OTel spans): its author says nothing of the run.
        agent = "" if text == task else (s.agent or "")
        h.update(b"\x1e" + agent.encode("utf-8", "surrogatepass") + b"\x1f" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:24]


def messages(trace: Trace, n: int = DIGESTS, opening: list[tuple[Step, str]] | None = None) -> list[str]:
    """Short digests of the first ``n`` messages with text (normalised): what two artefacts
    with no times must share (one's a prefix of the other's) to be taken for one run."""
    return [_digest(text) for _, text in (opening if opening is not None else _opening(trace, n))[:n]]


def window(trace: Trace) -> tuple[str, str] | None:
    """When the run took place, as the artefact says (ISO 8601 UTC), or None if it has no times."""
    times = [x for s in trace.steps for x in (s.started_at, s.ended_at) if x]
    if trace.started_at:
        times.append(trace.started_at)
    if trace.ended_at:
        times.append(trace.ended_at)
    return (min(times), max(times)) if times else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def agents(trace: Trace) -> list[str]:
    """Digests of the agents that spoke or acted in the run (what the content rule compares:
    digests, so that a name holding a credential is not copied past redaction)."""
    return sorted(_digest(a) for a in {s.agent for s in trace.steps if s.agent})


def identify(trace: Trace) -> None:
    """Put the run key, its kind, the artefact's rank and the fingerprint on the trace's metadata."""
    md = trace.metadata
    key = run_key(trace)
    if key:
        md["run_key"], md["run_key_kind"] = key
    else:
        md.pop("run_key", None)
        md.pop("run_key_kind", None)
    r, why = rank(trace)
    md["run_rank"], md["run_rank_why"] = r, why
    opening = _opening(trace, max(OPENING, DIGESTS))
    md["run_fingerprint"] = fingerprint(trace, opening)
    w = window(trace)
    if w:
        md["run_window"] = list(w)
    md["run_agents"] = agents(trace)
    md["run_framework"] = _digest(trace.framework or "")
    md["run_messages"] = messages(trace, DIGESTS, opening)
    if trace.source_format in PARTS:
        md["run_part"] = True


def poorer_in_group(paths: Sequence[str], formats: Sequence[str],
                    runs: Sequence[Sequence[tuple[str, int, str | None]]]) -> set[str]:
    """The traces of a group of files that another trace of the group beats for its run (same
    run key, a richer artefact: the order of :meth:`mast.store.Store.record_sources`), so
    that they need not be written only to be dropped in the same transaction.  ``runs``:
    per path, ``run_rows()`` as encoded (trace id, steps, metadata JSON first).  Runs
    matched by content, and runs whose stored trace is richer, are still settled after writing."""
    best: dict[str, tuple] = {}
    everyone: dict[str, list[str]] = {}
    for path, fmt, rows in zip(paths, formats, runs):
        for tid, steps, meta, *_ in rows:
            if not meta or '"run_key"' not in meta:
                continue
            md = json.loads(meta)
            key = md.get("run_key") if isinstance(md, dict) else None
            if not key:
                continue
            r = md.get("run_rank")
            order = (-(r if isinstance(r, int) else 0), -int(steps or 0), fmt, path, tid)
            everyone.setdefault(key, []).append(tid)
            if key not in best or order < best[key]:
                best[key] = order
    return {tid for key, tids in everyone.items() if len(tids) > 1 for tid in tids if tid != best[key][4]}


def without(parts: Sequence["TraceTables | RowTables"], sizes: Sequence[int],
            drop: set[str]) -> tuple[list["TraceTables | RowTables"], list[int]]:
    """``parts`` without the traces ``drop`` (steps and labels with them), and the new sizes.
    ``_seq`` (a row of the part's traces) is renumbered to the rows that stay."""
    out: list = []
    kept: list[bool] = []
    for t in parts:
        keep = [i not in drop for i in t.traces.column("trace_id").to_pylist()]
        kept += keep
        if all(keep):
            out.append(t)
            continue
        rows, n = [], 0
        for k in keep:
            rows.append(n if k else -1)
            n += k
        out.append(_rows_kept(t, keep, rows))
    new_sizes, off = [], 0
    for k in sizes:
        new_sizes.append(sum(kept[off:off + k]))
        off += k
    return out, new_sizes


def _rows_kept(t: "TraceTables | RowTables", keep: list[bool], rows: list[int]):
    if hasattr(t, "kept"):  # rows a parser made ready (mast.store.ready): they renumber their own
        return t.kept(keep)
    if isinstance(t, RowTables):  # a small job's lists (no pyarrow loaded)
        sel = {i for i, k in enumerate(keep) if k}
        subs = []
        for tb in (t.steps, t.annotations, t.attributions):
            sub = tb.where_seq(sel)
            sub.data[0] = [rows[s] for s in sub.data[0]]
            subs.append(sub)
        return RowTables(t.traces.take([i for i, k in enumerate(keep) if k]), *subs)
    import pyarrow as pa  # loaded already: the parts are Arrow tables
    from mast._arrow import compute
    pc = compute()  # only when a group holds two artefacts of a run: ~0.05 s to import

    from mast.store.encode import TraceTables
    new_row = pa.array(rows, pa.int32())

    def sub(tb):
        tb = tb.filter(pc.greater_equal(pc.take(new_row, tb.column("_seq")), 0))
        return tb.set_column(0, "_seq", pc.take(new_row, tb.column("_seq")))
    return TraceTables(t.traces.filter(pa.array(keep)), sub(t.steps), sub(t.annotations), sub(t.attributions))

"""The normalised model every importer produces and everything downstream reads.

A :class:`Trace` is one run of one multi-agent system on one task; a :class:`Step` is
one thing that happened in it.  Nothing downstream of an importer knows which framework
a trace came from.  Field meanings are documented in ``DESIGN.md`` ("The normalised
model") and mirrored by the DuckDB schema in :mod:`mast.store.schema`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

# The taxonomy a label belongs to unless it says otherwise, named here for the defaults below.
from mast.settings import DEFAULT_TAXONOMY  # noqa: F401

#: Bumped when the meaning of a stored field changes; stored on every trace.
SCHEMA_VERSION = 1

#: Trace ids are tagged content hashes: the tag names the algorithm so that a future
#: change of hashing is detectable (the same idea as simonw/llm's content ids).
TRACE_ID_TAG = "t1"


#: The step fields a trace id hashes after ``agent`` and ``kind``, in hashing order.
_ID_FIELDS = attrgetter("role", "tool_name", "tool_args", "target_agent", "span_id", "started_at", "content")


def trace_id(source_format: str, task: str | None, rows: list[str], source_id: Any = None) -> str:
    """The id of a trace from its steps' :func:`id_rows` (what :meth:`Trace.compute_id` hashes).

    SHA-256 over the format, NUL, the task, then per step RS and per field US plus its
    text (nothing for None), then GS and the JSON of the source id if there is one; UTF-8,
    lone surrogates passed through.  The text is joined first and encoded once: hashing
    it piecewise, as the first version did, gives the same digest for ten times the calls.
    """
    h = hashlib.sha256(source_format.encode())
    h.update(b"\x00")
    h.update((task or "").encode("utf-8", "surrogatepass"))
    if rows:
        h.update(("\x1e\x1f" + "\x1e\x1f".join(rows)).encode("utf-8", "surrogatepass"))
    # Ids found in the source (chat ids, run ids) separate otherwise identical runs.
    if source_id is not None:
        h.update(b"\x1d" + json.dumps(source_id, sort_keys=True, default=str).encode())
    return f"{TRACE_ID_TAG}-{h.hexdigest()[:32]}"


def id_rows(cols: list[list]) -> list[str]:
    """Each step's hashed fields joined by US, from the columns ``agent``, ``kind`` (its value),
    ``role``, ``tool_name``, ``tool_args``, ``target_agent``, ``span_id``, ``started_at``,
    ``content`` (nine equal lists; None spelled as nothing)."""
    # a value that is not exactly a str (an importer's int, a str subclass) is spelled as str() does
    return list(map("\x1f".join, zip(*(["" if v is None else v if type(v) is str else str(v) for v in c]
                                        for c in cols))))


class StepKind(str, enum.Enum):
    MESSAGE = "message"
    LLM_CALL = "llm_call"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    HANDOFF = "handoff"
    TERMINATION = "termination"
    ERROR = "error"
    EVENT = "event"


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class Label(str, enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


#: Annotators named ``<name>:signal`` store *signals*: findings with label ``unknown``,
#: evidence steps and a rationale, from a detector whose precision does not make it a
#: failure label (``-- role: signal`` in classifiers/rules).  A signal is a hint for the
#: judge and for a reader of the report, never a label: being ``unknown`` it is not an
#: assessment, so exposure, agreement and ``mast evaluate`` leave it out.
SIGNAL_SUFFIX = ":signal"


def signal_annotator(annotator: str) -> str:
    """The annotator under which ``annotator``'s signals are stored."""
    return annotator + SIGNAL_SUFFIX


@dataclass(slots=True)
class Step:
    agent: str | None
    content: str | None
    kind: StepKind = StepKind.MESSAGE
    role: str | None = None
    tool_name: str | None = None
    tool_args: str | None = None
    target_agent: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    ended_at: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    status: str | None = None
    attributes: dict[str, Any] | None = None


@dataclass(slots=True)
class Trace:
    system: str | None
    framework: str | None
    source_format: str
    source_path: str
    source_index: int
    steps: list[Step] = field(default_factory=list)
    task: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    started_at: str | None = None
    ended_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    annotations: list["Annotation"] = field(default_factory=list)
    attributions: list["Attribution"] = field(default_factory=list)
    trace_id: str = ""

    def compute_id(self) -> str:
        """Content hash over what the trace *is* (not where it was read from).

        Re-importing the same record from another path is a no-op; two records that
        differ in any step are two traces.  :func:`trace_id` has the exact recipe.
        """
        steps = self.steps
        rows = id_rows([[s.agent for s in steps], [s.kind._value_ for s in steps],
                        *map(list, zip(*map(_ID_FIELDS, steps)))]) if steps else []
        return trace_id(self.source_format, self.task, rows, self.metadata.get("source_id"))

    def totals(self) -> "TraceTotals":
        """The per-trace figures the store keeps beside the steps (see ``traces`` in DESIGN.md).

        Token and cost totals are ``None`` when no step reports any; the start and end
        times fall back to the first and last step that has one.
        """
        tin = tout = 0
        cost = 0.0
        has_tok = has_cost = False
        agents = set()
        for s in self.steps:
            if s.agent:
                agents.add(s.agent)
            if s.tokens_in is not None or s.tokens_out is not None:
                has_tok = True
                tin += s.tokens_in or 0
                tout += s.tokens_out or 0
            if s.cost_usd is not None:
                has_cost = True
                cost += s.cost_usd
        started = self.started_at or next((s.started_at for s in self.steps if s.started_at), None)
        ended = self.ended_at or next((s.ended_at or s.started_at for s in reversed(self.steps)
                                       if s.ended_at or s.started_at), None)
        return TraceTotals(len(self.steps), len(agents), tin if has_tok else None, tout if has_tok else None,
                           cost if has_cost else None, started, ended)

    def finalise(self) -> "Trace":
        if not self.trace_id:
            self.trace_id = self.compute_id()
        return self


@dataclass(frozen=True, slots=True)
class TraceTotals:
    """What :meth:`Trace.totals` returns."""

    n_steps: int
    n_agents: int
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    started_at: str | None
    ended_at: str | None


@dataclass(slots=True)
class Annotation:
    """One label for one mode of one trace, from any annotator (human, rule, judge)."""

    mode: str
    label: Label
    annotator: str
    taxonomy: str = DEFAULT_TAXONOMY
    run_id: str | None = None
    confidence: float | None = None
    evidence_steps: list[int] = field(default_factory=list)
    rationale: str | None = None
    trace_id: str = ""


@dataclass(slots=True)
class Attribution:
    """Root cause of a failed trace: which agent, which step (the Who&When question)."""

    annotator: str
    agent: str | None
    step: int | None
    run_id: str | None = None
    confidence: float | None = None
    rationale: str | None = None
    trace_id: str = ""

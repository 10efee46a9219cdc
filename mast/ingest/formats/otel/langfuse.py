"""Langfuse exports: a trace with its observations, as the UI and the public API give them.

Accepted documents (one trace each; a file may hold one, a JSON array of them, or one per
line):
- ``GET /api/public/traces/{id}``: the trace object with ``observations`` inside it;
- the UI's / SDK's download, ``{"trace": {...}, "observations": [...]}``;
- pages of observations, ``GET /api/public/observations`` (``{"data": [...], "meta": {"page",
  "limit", "totalItems", "totalPages"}}``) and ``GET /api/public/v2/observations``
  (``{"data": [...], "meta": {"cursor"}}``, the fields its ``fields`` groups asked for): a
  file of pages (one, one per line, or a JSON array of them) is one export, its
  observations grouped by ``traceId`` into traces.  What only the trace object holds
  (its ``input``/``output``, ``name``, ``sessionId``, ``tags``) is missing from them, except
  what v2's ``basic`` and ``trace_context`` groups copy onto each observation.

An observation (``id``, ``traceId``, ``parentObservationId``, ``type``, ``name``,
``startTime``/``endTime``, ``level``, ``statusMessage``, ``input``/``output``, ``model``,
``usageDetails``, ``totalCost``, ``metadata``) becomes the OTel importer's :class:`Span`:
Langfuse keeps an OTel-ingested span's original attributes in ``metadata.attributes`` and
its resource in ``metadata.resourceAttributes``, so OpenInference / GenAI attributes are
read by the same mapping as OTel files; what Langfuse itself adds fills the gaps:
``type`` GENERATION / TOOL / AGENT / CHAIN / … → ``openinference.span.kind``,
``input``/``output`` → ``input.value``/``output.value``, ``usageDetails`` →
token counts, ``totalCost`` → cost, ``level: ERROR`` → an error status.  The trace's own
``input``/``output`` are the run's task and answer when the root observation has none;
its ``name`` is the system when the spans name none.

Format notes: docs/formats/spans.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.errors import IngestError
from mast.ingest._util import (DeclineDetects, as_text, first_char, first_json, first_line_object, iter_jsonl,
                               load_json, strip_bom)
from mast.ingest.formats.otel.spans import Span, _ns, covered, span_union
from mast.ingest.formats.otel.steps import build_trace
from mast.model import Trace

_TYPE_KIND = {"GENERATION": "LLM", "TOOL": "TOOL", "AGENT": "AGENT", "CHAIN": "CHAIN", "RETRIEVER": "RETRIEVER",
              "EMBEDDING": "EMBEDDING", "EVALUATOR": "EVALUATOR", "GUARDRAIL": "GUARDRAIL"}
_TYPES = set(_TYPE_KIND) | {"SPAN", "EVENT"}
_LEVELS = {"DEBUG", "DEFAULT", "WARNING", "ERROR"}
_OBS_RX = re.compile(rb'"parentObservationId"\s*:')
_IDS_RX = re.compile(rb'"observations"\s*:\s*\[\s*"')
#: What v2's ``basic`` and ``trace_context`` field groups copy of its trace onto an observation.
_TRACE_FIELDS = (("traceName", "name"), ("sessionId", "sessionId"), ("userId", "userId"), ("tags", "tags"),
                 ("release", "release"))
_PAGE_RX = re.compile(rb'^\s*\[?\s*\{\s*"data"\s*:\s*\[')
_TRACE_LIST = ("a page of GET /api/public/traces: {what}; export each trace with GET /api/public/traces/{{id}} "
               "or its observations with GET /api/public/observations?traceId=…")
#: How a Langfuse trace starts (the UI download's ``{"trace": {"id", "projectId", …`` or the
#: API's trace object): its ``input`` / ``output`` come before the observations and are
#: often longer than the head (a LangGraph run's message history).
_TRACE_START_RX = re.compile(rb'^\s*\[?\s*\{\s*(?:"trace"\s*:\s*\{\s*)?"id"\s*:\s*"[^"]*"\s*,\s*"projectId"\s*:')


def _json_obj(v: Any) -> dict:
    if isinstance(v, str) and v[:1] == "{":
        try:
            v = json.loads(v)
        except ValueError:
            return {}
    return v if isinstance(v, dict) else {}


def _value(v: Any) -> str:
    """An input/output as text; Langfuse stores some JSON-encoded twice (``"\"{...}\""``)."""
    if isinstance(v, str) and v[:1] == '"':
        try:
            inner = json.loads(v)
        except ValueError:
            return v
        return inner if isinstance(inner, str) else as_text(inner)
    return v if isinstance(v, str) else as_text(v)


def _span(path: Path, where: str, o: Any, trace_id: str) -> Span:
    if not isinstance(o, dict):
        raise IngestError(str(path), where, f"expected an observation object, found {type(o).__name__}")
    missing = [k for k in ("id", "type", "startTime") if k not in o]
    if missing:
        raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
    typ = str(o["type"]).upper()
    if typ not in _TYPES:
        raise IngestError(str(path), where, f"unknown observation type {o['type']!r} (newer Langfuse version?)",
                          "Upgrade mast.")
    level = str(o.get("level") or "DEFAULT").upper()
    if level not in _LEVELS:
        raise IngestError(str(path), where, f"unknown level {o.get('level')!r}")
    md = _json_obj(o.get("metadata"))
    attrs = dict(_json_obj(md.get("attributes")))
    rest = {k: v for k, v in md.items() if k not in ("attributes", "resourceAttributes", "scope")}
    if rest and "metadata" not in attrs:
        attrs["metadata"] = rest  # LangChain's langgraph_node / checkpoint_ns name the agent
    if typ in _TYPE_KIND:
        attrs.setdefault("openinference.span.kind", _TYPE_KIND[typ])
    for side in ("input", "output"):
        if o.get(side) is not None and f"{side}.value" not in attrs:
            attrs[f"{side}.value"] = _value(o[side])
    usage = o.get("usageDetails") if isinstance(o.get("usageDetails"), dict) else {}
    tin = usage.get("input", o.get("inputUsage") or None)
    tout = usage.get("output", o.get("outputUsage") or None)
    if typ == "GENERATION":
        # Langfuse's usage is what it bills by: it wins over the span's own token attributes
        for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.prompt_tokens",
                  "gen_ai.usage.completion_tokens"):
            attrs.pop(k, None)
        if tin is not None:
            attrs["llm.token_count.prompt"] = tin
        if tout is not None:
            attrs["llm.token_count.completion"] = tout
        cost = o.get("totalCost") or o.get("calculatedTotalCost")  # (the v1 observations API's name)
        if cost:
            attrs["llm.cost.total"] = cost
        if o.get("model"):
            attrs.setdefault("llm.model_name", o["model"])
    if typ == "TOOL" and "tool.name" not in attrs:
        attrs["tool.name"] = o.get("name")
    parent = o.get("parentObservationId")
    scope = md.get("scope") if isinstance(md.get("scope"), dict) else {}
    return Span(trace_id=str(o.get("traceId") or trace_id), span_id=str(o["id"]),
                parent_id=str(parent) if parent else None, name=str(o.get("name") or typ.lower()), kind=typ,
                start_ns=_ns(path, where, o["startTime"], "startTime", True),
                end_ns=_ns(path, where, o.get("endTime"), "endTime", False),
                status="ERROR" if level == "ERROR" else "UNSET", status_msg=o.get("statusMessage") or None,
                attrs=attrs, events=[], links=[], resource=_json_obj(md.get("resourceAttributes")),
                scope=scope.get("name"), where=where)


def _document(path: Path, index: int, doc: Any) -> tuple[dict, list]:
    if not isinstance(doc, dict):
        raise IngestError(str(path), index, f"expected a Langfuse trace object, found {type(doc).__name__}")
    trace = doc.get("trace") if isinstance(doc.get("trace"), dict) else doc
    obs = doc.get("observations") if "observations" in doc else trace.get("observations")
    if "id" not in trace:
        raise IngestError(str(path), index, "missing required field: trace id")
    if not isinstance(obs, list):
        raise IngestError(str(path), index, "missing required field: observations (a list)")
    return trace, obs


def _page(doc: Any) -> list | None:
    """The ``data`` of a page of a Langfuse list endpoint (``{"data": [...], "meta": {...}}``), else None."""
    if isinstance(doc, dict) and isinstance(doc.get("data"), list) and "observations" not in doc and "trace" not in doc:
        return doc["data"]
    return None


def _page_decline(obj: Any) -> tuple[int, str] | None:
    """Why a page of a Langfuse list endpoint is not one of observations (None: it is)."""
    items = _page(obj)
    if not items:
        return 2, "an empty page (no data)" if items == [] else "not a page of observations"
    first = items[0]
    if not isinstance(first, dict):
        return 2, "a page whose data are not objects"
    if "observations" in first:
        return 3, _TRACE_LIST.format(what="observations are ids only")
    if all(k in first for k in ("id", "traceId", "type", "startTime")):
        return None
    if "timestamp" in first and "projectId" in first:
        return 3, _TRACE_LIST.format(what="traces without their observations")
    return 2, "a page of data that are not Langfuse observations (no id, traceId, type, startTime)"


class LangfuseImporter(DeclineDetects):
    name = "langfuse"
    description = ("Langfuse exports: a trace with its observations (UI download, GET /api/public/traces/{id}), "
                   "pages of GET /api/public/observations and /api/public/v2/observations")
    example = '{"trace": {"id": "1b72c51f…", "name": "autogen-chat-trace", …}, "observations": [{"id": …, "parentObservationId": …'

    def companion(self, path: Path, head: bytes) -> str | None:
        """An empty page saved beside the others (a script paging until ``data`` is empty):
        nothing to read, and no error (mast.ingest.registry.companion_note)."""
        if not _PAGE_RX.match(strip_bom(head)):
            return None
        obj = first_json(head)
        if isinstance(obj, dict) and obj.get("data") == [] and isinstance(obj.get("meta"), dict) \
                and set(obj) == {"data", "meta"}:
            return "an empty page of a Langfuse list endpoint (the end of a paged export): nothing to read"
        return None

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a Langfuse export, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        body = strip_bom(head)
        if _PAGE_RX.match(body):
            try:
                return _page_decline(first_json(head))
            except ValueError:
                # an observation longer than the head (a long input); core fields are always there
                if b'"traceId"' in body and b'"startTime"' in body and b'"parentObservationId"' in body \
                        and b'"observations"' not in body:
                    return None
                return 1, "a page that is not JSON (or whose first record is longer than the head)"
        if not _OBS_RX.search(body) and _TRACE_START_RX.match(body) and path.stat().st_size > len(head):
            return None  # a trace whose observations start past the head: read() checks them
        if _IDS_RX.search(body):
            return 3, ("observations are ids only (the trace list's shape): "
                       "export each trace with GET /api/public/traces/{id}")
        if not _OBS_RX.search(body):
            return (2 if b'"observations"' in body else 0), "no observation with parentObservationId"
        if b'"observations"' not in body:
            return 3, "observations without their trace (expected a trace with an observations list)"
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        by_trace: dict[str, tuple[dict, dict[Any, Span]]] = {}
        last = -1
        for i, doc in self._pages(path, by_trace):
            last = i
            if doc is not None:
                yield self._trace(path, i, doc)
        # pages list the newest first and a trace may span pages: a trace is all its observations
        groups = sorted(((t, list(obs.values())) for t, obs in by_trace.values()),
                        key=lambda g: min(s.start_ns for s in g[1]))
        for k, (trace, spans) in enumerate(groups):
            yield self._build(path, last + 1 + k, trace, spans)

    def read_pieces(self, paths: Sequence[Path]) -> Iterator[tuple[Trace, bool]]:
        """Several files as one export (mast.ingest.pieces): pages saved one per file; each
        trace of their observations, and whether one file alone holds all of them.  A
        trace document among them gives its trace's fields and observations like a page."""
        traces: dict[str, dict] = {}
        pieces: list[list[Span]] = []
        for path in paths:
            by_trace: dict[str, tuple[dict, dict[Any, Span]]] = {}
            piece: list[Span] = []
            for i, doc in self._pages(path, by_trace):
                if doc is not None:
                    trace, obs = _document(path, i, doc)
                    tid = str(trace["id"])
                    piece += [_span(path, f"{i}, observations[{j}]", o, tid) for j, o in enumerate(obs)]
                    for k, v in trace.items():
                        traces.setdefault(tid, {}).setdefault(k, v)
            for tid, (trace, obs) in by_trace.items():
                piece += obs.values()
                for k, v in trace.items():
                    traces.setdefault(tid, {}).setdefault(k, v)
            pieces.append(piece)
        spans, sets = span_union(pieces)
        by_id: dict[str, list[Span]] = {}
        for sp in spans:
            by_id.setdefault(sp.trace_id, []).append(sp)
        groups = sorted(by_id.items(), key=lambda g: min(sp.start_ns for sp in g[1]))
        for k, (tid, group) in enumerate(groups):
            trace = traces.get(tid) or {"id": tid}
            yield self._build(paths[0], k, trace, group), covered(group, sets)

    def _pages(self, path: Path, by_trace: dict[str, tuple[dict, dict[Any, Span]]]) -> Iterator[tuple[int, Any]]:
        """The documents of a file: ``(index, doc)`` for a trace document, ``(index, None)``
        for a page, whose observations go into ``by_trace`` (trace id: its fields, its spans)."""
        if path.suffix in (".jsonl", ".ndjson") or first_line_object(path) is not None:
            docs: Any = ((i, f"line {i + 1}", d) for i, d in iter_jsonl(path))
        else:
            data = load_json(path)
            docs = ((i, i, d) for i, d in enumerate(data if isinstance(data, list) else [data]))
        for i, where, doc in docs:
            items = _page(doc)
            if items is None:
                yield i, doc
                continue
            for j, o in enumerate(items):
                w = f"{where}, data[{j}]"
                if isinstance(o, dict) and "observations" in o:
                    raise IngestError(str(path), w, _TRACE_LIST.format(what="a trace, not an observation"))
                tid = o.get("traceId") if isinstance(o, dict) else None
                if isinstance(o, dict) and not tid:
                    if not any(k in o for k in ("type", "startTime", "parentObservationId")):
                        raise IngestError(str(path), w, "not a Langfuse observation (no id, traceId, type, startTime): "
                                          "a page of another API?")
                    raise IngestError(str(path), w, "observation without a traceId: it belongs to no trace")
                trace, spans = by_trace.setdefault(str(tid), ({"id": str(tid)}, {}))
                # v1 pages by offset: an observation written while they were fetched shifts the
                # next page by one, which then repeats one already seen (the later copy is newer)
                spans[o.get("id")] = _span(path, w, o, str(tid))
                for src, dst in _TRACE_FIELDS:
                    if o.get(src) is not None:
                        trace.setdefault(dst, o[src])
            yield i, None

    def _trace(self, path: Path, index: int, doc: Any) -> Trace:
        trace, obs = _document(path, index, doc)
        tid = str(trace["id"])
        spans = [_span(path, f"{index}, observations[{j}]", o, tid) for j, o in enumerate(obs)]
        if not spans:
            raise IngestError(str(path), index, "trace has no observations")
        return self._build(path, index, trace, spans)

    def _build(self, path: Path, index: int, trace: dict, spans: list[Span]) -> Trace:
        tid = str(trace["id"])
        roots = [s for s in spans if not s.parent_id]
        main = max(roots or spans, key=lambda r: r.end_ns or r.start_ns)
        for side in ("input", "output"):
            v = trace.get(side)
            if v is not None and not any(f"{side}.value" in r.attrs for r in roots):
                main.attrs[f"{side}.value"] = _value(v)
        t = build_trace(path, index, spans, source_format=self.name, name_agents=True)
        if t.system is None and trace.get("name"):
            t.system = str(trace["name"])
        t.metadata.update({k: v for k, v in (("langfuse_trace_id", tid), ("session_id", trace.get("sessionId")),
                                              ("user_id", trace.get("userId")), ("tags", trace.get("tags") or None),
                                              ("release", trace.get("release"))) if v is not None})
        return t

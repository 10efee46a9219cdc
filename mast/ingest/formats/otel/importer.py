"""OpenTelemetry spans: OTLP/JSON files, span JSON Lines and the SDK's ``to_json`` dumps.

Accepted files (one importer, ``otel``):
- OTLP/JSON ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``), one document
  or one per line (the Collector ``file`` exporter);
- span JSON Lines: one span per line, in OTLP shape (``traceId``/``spanId``, attributes
  as a ``[{key, value}]`` list or a flat object) or the SDK's ``ReadableSpan.to_json()``
  shape (``context.trace_id``, ``kind: "SpanKind.X"``), also pretty-printed and
  concatenated as ``ConsoleSpanExporter`` writes it.
Required per span: trace id, span id, name, start time.  Ids may be hex (optionally
``0x``-prefixed) or protobuf's base64; both become lower-case hex.  An attribute value of
an unknown OTLP type is refused as a newer format.

Three attribute dialects are read (docs/formats/otel.md, "Dialects"):
- OTel GenAI semantic conventions, both generations: ``gen_ai.operation.name``,
  ``gen_ai.input/output.messages`` (parts JSON, possibly as strings), and the older
  ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes and ``gen_ai.*`` span
  events; tokens from ``gen_ai.usage.{input,output}_tokens`` (or the deprecated
  ``prompt_tokens``/``completion_tokens``);
- OpenInference (``openinference.span.kind``, ``input.value``/``output.value``,
  flattened ``llm.input_messages.N.*`` / ``llm.output_messages.N.*``, ``llm.token_count.*``,
  ``llm.cost.total``);
- extras: LangSmith (``langsmith.span.kind``, ``langsmith.metadata.*``, ``gen_ai.prompt``/
  ``gen_ai.completion`` as JSON) and CrewAI (``crewai.agent.role``, ``crewai.crew.*``;
  CrewAI's ``gen_ai.agent.name`` is a hash, so the role wins).

Traces: spans are grouped by trace id, and the traces of one run are stitched into one
(``spans.group_traces``): joined by span ``links`` (AgentChat splits a run into many
traces), by a parent span exported under another trace id, or by a shared run id
attribute (ag2 1.x's ``ag2.network.channel_id``: its hub traces every envelope apart;
``gen_ai.conversation.id``).  A trace made only of LLM spans that
sits, in time, inside an LLM span of another trace is a duplicate (OpenInference's
CrewAI event-listener mode re-emits every OpenAI call as its own root) and is dropped; an
LLM span with an LLM span below it yields one step (the inner one, which has the tokens).

AutoGen AgentChat keeps the conversation only in the ``message`` attribute of its runtime
``autogen process`` spans: when those are present the steps are its chat messages
(deduplicated by message id; a transfer tool call, its result and the ``HandoffMessage``
are one ``handoff``), with tokens from ``models_usage``.

Otherwise, steps follow the depth-first order of the span tree (children by start time): LLM spans →
``llm_call``; tool spans → ``tool_call`` + ``tool_result`` (``tool_call.span_id`` =
``tool_result.parent_span_id`` = the span id) or, for ``transfer_to_X`` and CrewAI
delegation tools, one ``handoff``; an agent span for another agent than the last
handoff's target → implicit ``handoff``; ERROR status → ``error`` once, at the innermost
span with that message (langgraph-supervisor ``ParentCommand`` is a handoff, not an
error); the root's input → the first ``message`` (the task); the root's end →
``termination``.  Agent = the span's own agent attribute, else its nearest ancestor's.
System name: ``service.name`` (unless a default or the library's own name), else the crew
/ workflow / graph name, else ``--system``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator, Sequence

from mast.errors import IngestError
from mast.ingest._util import first_json, strip_bom
from mast.ingest.formats.otel.spans import covered, group_traces, load_spans, span_union
from mast.ingest.formats.otel.steps import build_otlp_trace, drop_duplicate_llm_groups
from mast.model import Trace


class OTelImporter:
    name = "otel"
    description = "OpenTelemetry spans: OTLP/JSON, span JSONL or SDK to_json (GenAI semconv, OpenInference, LangSmith, CrewAI)"
    example = '{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as OpenTelemetry spans, and why they are not (None: they are)."""
        if self.detect(path, head):
            return None
        text = strip_bom(head).decode("utf-8", "replace")
        if not text.lstrip()[:1] in ("{", "["):
            return 0, "not JSON"
        if re.search(r'"(traceId|trace_id)"', text) and re.search(r'"(spanId|span_id)"', text):
            return 2, ("span ids, but neither an OTLP request (resourceSpans), an OTLP span "
                       "(traceId, spanId, name, startTimeUnixNano) nor an SDK span (context.trace_id, name)")
        return 0, "no resourceSpans, traceId/spanId or context.trace_id"

    def detect(self, path: Path, head: bytes) -> bool:
        text = strip_bom(head).decode("utf-8", "replace").lstrip()
        if not text.startswith("{") and not text.startswith("["):
            return False
        if re.match(r'[\[\s]*\{\s*"(resourceSpans|resource_spans)"\s*:', text):
            return True  # the proto's own field names too (MessageToDict(preserving_proto_field_name=True))
        # one span per line / concatenated SDK spans: look at the first object's keys
        body = text[1:].lstrip() if text.startswith("[") else text
        try:
            obj = first_json(head)  # (the same decode of the same text: shared with other detectors)
        except ValueError:
            m = re.match(r'\{\s*"name"\s*:\s*"[^"]*",\s*"context"\s*:\s*\{\s*"trace_id"\s*:\s*"0x', body)
            return bool(m)
        if not isinstance(obj, dict):
            return False
        if "resourceSpans" in obj or "resource_spans" in obj:
            return True
        ctx = obj.get("context")
        if isinstance(ctx, dict) and "trace_id" in ctx and "span_id" in ctx and "name" in obj:
            return True
        return ("traceId" in obj and "spanId" in obj and "name" in obj
                and ("startTimeUnixNano" in obj or "attributes" in obj))

    def read(self, path: Path) -> Iterator[Trace]:
        spans = load_spans(path)
        if not spans:
            raise IngestError(str(path), None, "no spans in file")
        groups = group_traces(spans)
        groups = drop_duplicate_llm_groups(groups)
        for idx, g in enumerate(groups):
            yield build_otlp_trace(path, idx, g)

    def read_pieces(self, paths: Sequence[Path]) -> Iterator[tuple[Trace, bool]]:
        """Several files as one export (mast.ingest.pieces): each trace of their spans, and
        whether one file alone holds all of its spans."""
        spans, sets = span_union([load_spans(p) for p in paths])
        for idx, g in enumerate(drop_duplicate_llm_groups(group_traces(spans))):
            yield build_otlp_trace(paths[0], idx, g), covered(g, sets)

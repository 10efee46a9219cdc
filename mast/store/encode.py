"""Traces, annotations and attributions laid out as Arrow tables: the store's input.

Encoding is pure Python with no DuckDB, so ingest workers run it in other processes and
hand the (picklable) tables to the one writer.  Each table has the stored table's
columns before redaction and casting (timestamps as ISO text, JSON as text); steps and
labels carry ``_seq``, the row of their trace in the batch, so that the writer can drop
already-stored traces with one vectorised filter.  :meth:`mast.store.Store.write_tables`
writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Iterable, Sequence

import pyarrow as pa

from mast.model import Annotation, Attribution, Trace

TRACE_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("system", pa.string()), ("framework", pa.string()),
    ("source_format", pa.string()), ("source_path", pa.string()), ("source_index", pa.int32()),
    ("task", pa.large_string()), ("outcome", pa.string()), ("started_at", pa.string()),
    ("ended_at", pa.string()), ("n_steps", pa.int32()), ("n_agents", pa.int32()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("cost_usd", pa.float64()),
    ("metadata", pa.large_string()),
])
STEP_SCHEMA = pa.schema([
    ("_seq", pa.int32()),
    ("trace_id", pa.string()), ("step", pa.int32()), ("span_id", pa.string()),
    ("parent_span_id", pa.string()), ("agent", pa.string()), ("role", pa.string()),
    ("kind", pa.string()), ("content", pa.large_string()), ("tool_name", pa.string()),
    ("tool_args", pa.large_string()), ("target_agent", pa.string()), ("started_at", pa.string()),
    ("ended_at", pa.string()), ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
    ("cost_usd", pa.float64()), ("status", pa.string()), ("attributes", pa.large_string()),
])
ANNOTATION_SCHEMA = pa.schema([
    ("_seq", pa.int32()), ("trace_id", pa.string()), ("taxonomy", pa.string()), ("mode", pa.string()),
    ("annotator", pa.string()), ("run_id", pa.string()), ("label", pa.string()),
    ("confidence", pa.float64()), ("evidence_steps", pa.list_(pa.int32())), ("rationale", pa.large_string()),
])
ATTRIBUTION_SCHEMA = pa.schema([
    ("_seq", pa.int32()), ("trace_id", pa.string()), ("annotator", pa.string()), ("run_id", pa.string()),
    ("agent", pa.string()), ("step", pa.int32()), ("confidence", pa.float64()), ("rationale", pa.large_string()),
])
# Step fields copied as they are, in STEP_SCHEMA order (kind and attributes are converted).
_get_plain = attrgetter("span_id", "parent_span_id", "agent", "role")
_get_plain2 = attrgetter("content", "tool_name", "tool_args", "target_agent", "started_at", "ended_at",
                         "tokens_in", "tokens_out", "cost_usd", "status")


@dataclass(frozen=True, slots=True)
class TraceTables:
    """Traces encoded as Arrow tables, ready for :meth:`Store.write_tables` (picklable)."""

    traces: pa.Table
    steps: pa.Table
    annotations: pa.Table
    attributions: pa.Table

    @property
    def nbytes(self) -> int:
        return self.traces.nbytes + self.steps.nbytes + self.annotations.nbytes + self.attributions.nbytes

    def select(self, start: int, n: int) -> "TraceTables":
        """Traces ``start .. start+n-1`` with their steps and labels (``_seq`` renumbered)."""
        import pyarrow.compute as pc  # only for split batches: it costs a small ingest ~0.05 s to import

        def part(t: pa.Table) -> pa.Table:
            seq = t.column("_seq")
            t = t.filter(pc.and_(pc.greater_equal(seq, start), pc.less(seq, start + n)))
            return t.set_column(0, "_seq", pc.subtract(t.column(0), pa.scalar(start, pa.int32())))
        return TraceTables(self.traces.slice(start, n), part(self.steps), part(self.annotations),
                           part(self.attributions))

    @staticmethod
    def concat(parts: Sequence["TraceTables"]) -> "TraceTables":
        """One batch from several, renumbering ``_seq`` so it stays a row index of ``traces``."""
        if len(parts) == 1:
            return parts[0]
        import pyarrow.compute as pc  # only for several parts: it costs a small ingest ~0.05 s to import

        offset, st, ann, att = 0, [], [], []
        for p in parts:
            for src, dst in ((p.steps, st), (p.annotations, ann), (p.attributions, att)):
                if offset and src.num_rows:
                    src = src.set_column(0, "_seq", pc.add(src.column(0), pa.scalar(offset, pa.int32())))
                dst.append(src)
            offset += p.traces.num_rows
        return TraceTables(pa.concat_tables([p.traces for p in parts]), pa.concat_tables(st),
                           pa.concat_tables(ann), pa.concat_tables(att))


def encode_traces(traces: Sequence[Trace]) -> TraceTables:
    """Finalise ids and lay traces out as Arrow columns, with their totals and labels (no DuckDB)."""
    tcols: list[list] = [[] for _ in TRACE_SCHEMA]
    srows: list[tuple] = []
    ann: list[tuple] = []
    att: list[tuple] = []
    for seq, t in enumerate(traces):
        t.finalise()
        tid = t.trace_id
        for i, s in enumerate(t.steps):
            a = s.attributes
            srows.append((seq, tid, i, *_get_plain(s), s.kind.value, *_get_plain2(s),
                          json.dumps(a, ensure_ascii=False, default=str) if a else None))
        tt = t.totals()
        row = (tid, t.system, t.framework, t.source_format, t.source_path, t.source_index, t.task,
               t.outcome.value, tt.started_at, tt.ended_at, tt.n_steps, tt.n_agents,
               tt.tokens_in, tt.tokens_out, tt.cost_usd, _json(t.metadata))
        for col, v in zip(tcols, row):
            col.append(v)
        for a in t.annotations:
            a.trace_id = tid
            ann.append(_annotation_row(seq, a))
        for a in t.attributions:
            a.trace_id = tid
            att.append(_attribution_row(seq, a))
    return TraceTables(_table(tcols, TRACE_SCHEMA, columns=True), _table(srows, STEP_SCHEMA),
                       _table(ann, ANNOTATION_SCHEMA), _table(att, ATTRIBUTION_SCHEMA))


def encode_annotations(rows: Iterable[Annotation]) -> pa.Table:
    """Annotations of stored traces (``trace_id`` set), in the layout of :attr:`TraceTables.annotations`."""
    return _table([_annotation_row(0, a) for a in rows], ANNOTATION_SCHEMA)


def encode_attributions(rows: Iterable[Attribution]) -> pa.Table:
    """Attributions of stored traces, in the layout of :attr:`TraceTables.attributions`."""
    return _table([_attribution_row(0, a) for a in rows], ATTRIBUTION_SCHEMA)


def _annotation_row(seq: int, a: Annotation) -> tuple:
    return (seq, a.trace_id, a.taxonomy, a.mode, a.annotator, a.run_id,
            a.label.value if hasattr(a.label, "value") else str(a.label), a.confidence,
            list(a.evidence_steps or []), a.rationale)


def _attribution_row(seq: int, a: Attribution) -> tuple:
    return (seq, a.trace_id, a.annotator, a.run_id, a.agent, a.step, a.confidence, a.rationale)


def _json(v: Any) -> str | None:
    if v is None or v == {}:
        return None
    return json.dumps(v, ensure_ascii=False, default=str)


def _table(rows: list, schema: pa.Schema, columns: bool = False) -> pa.Table:
    # Typed arrays: letting pyarrow infer types costs a failed `import dateutil` per column.
    cols = rows if columns else (list(zip(*rows)) if rows else [[] for _ in schema])
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, schema)], schema=schema)

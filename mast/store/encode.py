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

from mast._arrow import compute, pa
from mast.model import Annotation, Attribution, Trace, id_rows, trace_id
from mast.store.rows import RUN_COLUMNS

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
# Step fields copied as they are, in STEP_SCHEMA order after ``_seq, trace_id, step``
# (``kind`` and ``attributes`` are converted).
_STEP_FIELDS = ("span_id", "parent_span_id", "agent", "role", "kind", "content", "tool_name", "tool_args",
                "target_agent", "started_at", "ended_at", "tokens_in", "tokens_out", "cost_usd", "status")
#: What :func:`mast.model.trace_id` hashes, as names of the step columns above.
_ID_COLUMNS = ("agent", "kind", "role", "tool_name", "tool_args", "target_agent", "span_id", "started_at", "content")
_KIND = attrgetter("kind._value_")  # the enum's value without its property's cost
_ATTRS = attrgetter("attributes")


def _json_encoder():
    """``json.dumps(v, ensure_ascii=False, default=str)``, with the C encoder made once.

    The standard ``JSONEncoder.encode`` builds a new C encoder (and a closure) on every
    call, which cost more than encoding a step's few attributes (66,240 steps: 1.7 of 3.4
    profiled seconds).  The same C encoder with the same settings gives the same text.
    No circular-reference markers: shared by threads, and values decoded from JSON hold no
    cycle (one would end in RecursionError rather than ValueError)."""
    std = json.JSONEncoder(ensure_ascii=False, default=str)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return std.encode
    text = json.encoder.encode_basestring
    it = make(None, std.default, text, None, std.key_separator, std.item_separator, False, False, True)

    def encode(v: Any) -> str:
        if isinstance(v, str):
            return text(v)
        return "".join(it(v, 0))
    return encode


_JSON = _json_encoder()


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

    def run_rows(self) -> list[tuple]:
        """``(trace_id, n_steps, metadata JSON, task, system, outcome, tokens_in, tokens_out)`` per
        trace: what :meth:`Store.record_sources` takes (:data:`mast.store.rows.RUN_COLUMNS`)."""
        t = self.traces
        return list(zip(*(t.column(c).to_pylist() for c in RUN_COLUMNS)))

    def select(self, start: int, n: int) -> "TraceTables":
        """Traces ``start .. start+n-1`` with their steps and labels (``_seq`` renumbered)."""
        return TraceTables(self.traces.slice(start, n), seq_range(self.steps, start, n),
                           seq_range(self.annotations, start, n), seq_range(self.attributions, start, n))

    @staticmethod
    def concat(parts: Sequence["TraceTables"]) -> "TraceTables":
        """One batch from several, renumbering ``_seq`` so it stays a row index of ``traces``."""
        if len(parts) == 1:
            return parts[0]
        offset, st, ann, att = 0, [], [], []
        for p in parts:
            for src, dst in ((p.steps, st), (p.annotations, ann), (p.attributions, att)):
                dst.append(seq_shift(src, offset))
            offset += p.traces.num_rows
        return TraceTables(pa.concat_tables([p.traces for p in parts]), pa.concat_tables(st),
                           pa.concat_tables(ann), pa.concat_tables(att))


# A batch's rows point at their trace by ``_seq``, the trace's row in ``traces`` (column 0):
# these keep it so when a batch is cut or joined (here and in mast.store.ready).

def seq_range(t: pa.Table, start: int, n: int) -> pa.Table:
    """The rows of traces ``start .. start+n-1``, ``_seq`` renumbered from 0."""
    pc = compute()  # only for split batches: it costs a small ingest ~0.05 s to import

    seq = t.column("_seq")
    t = t.filter(pc.and_(pc.greater_equal(seq, start), pc.less(seq, start + n)))
    return t.set_column(0, "_seq", pc.subtract(t.column(0), pa.scalar(start, pa.int32())))


def seq_shift(t: pa.Table, offset: int) -> pa.Table:
    """``t`` with ``_seq`` moved by ``offset`` (its batch placed after ``offset`` traces)."""
    if not offset or not t.num_rows:
        return t
    pc = compute()  # only for several parts: it costs a small ingest ~0.05 s to import

    return t.set_column(0, "_seq", pc.add(t.column(0), pa.scalar(offset, pa.int32())))


def encode_traces(traces: Sequence[Trace]) -> TraceTables:
    """Finalise ids and lay traces out as Arrow columns, with their totals and labels (no DuckDB).

    Built column by column over the whole batch (one list per column, one ``pa.array``
    each), not row by row: a tuple per step and its transposition cost more than the data.
    """
    steps = [s for t in traces for s in t.steps]
    col: dict[str, list] = {f: list(map(attrgetter(f), steps)) for f in _STEP_FIELDS if f != "kind"}
    col["kind"] = list(map(_KIND, steps))
    id_cols = [col[f] for f in _ID_COLUMNS]
    tcols: list[list] = [[] for _ in TRACE_SCHEMA]
    seqs: list[int] = []
    tids: list[str] = []
    nums: list[int] = []
    ann: list[tuple] = []
    att: list[tuple] = []
    lo = 0
    for seq, t in enumerate(traces):
        n = len(t.steps)
        hi = lo + n
        if not t.trace_id:  # kept when set: a retry after scrubbing keeps the id of the text as read
            # one trace's text at a time: a copy of the whole batch's would raise peak memory
            rows = id_rows([c[lo:hi] for c in id_cols]) if n else []
            t.trace_id = trace_id(t.source_format, t.task, rows, t.metadata.get("source_id"))
        tid = t.trace_id
        seqs += [seq] * n
        tids += [tid] * n
        nums += range(n)
        row = (tid, t.system, t.framework, t.source_format, t.source_path, t.source_index, t.task,
               t.outcome.value, *_totals(t, col, lo, hi), _json(t.metadata))
        for c, v in zip(tcols, row):
            c.append(v)
        for a in t.annotations:
            a.trace_id = tid
            ann.append(_annotation_row(seq, a))
        for a in t.attributions:
            a.trace_id = tid
            att.append(_attribution_row(seq, a))
        lo = hi
    memo: dict = {}  # JSON of the attributes repeated in this batch
    # ... and of one dict that several steps share (an importer's choice, e.g. a CrewAI
    # action's call and result), found by identity: no look at its items, which for a
    # one-item dict costs as much as encoding it (the dicts are alive, so ids stay unique)
    shared: dict[int, str] = {}
    get = shared.get
    # (a JSON text is never empty, so ``or`` falls through only when the dict is new)
    attrs = [None if not a else get(id(a)) or _shared(a, memo, shared) for a in map(_ATTRS, steps)]
    scols = [seqs, tids, nums, *(col[f] for f in _STEP_FIELDS), attrs]
    return TraceTables(_table(tcols, TRACE_SCHEMA, columns=True), _table(scols, STEP_SCHEMA, columns=True),
                       _table(ann, ANNOTATION_SCHEMA), _table(att, ATTRIBUTION_SCHEMA))


def _totals(t: Trace, col: dict[str, list], lo: int, hi: int) -> tuple:
    """:meth:`Trace.totals` (after ``n_steps``: agents, tokens, cost, start, end) from the columns."""
    n = hi - lo
    agents = len(set(filter(None, col["agent"][lo:hi])))
    tin, tout = col["tokens_in"][lo:hi], col["tokens_out"][lo:hi]
    if tin.count(None) == n and tout.count(None) == n:
        tok_in = tok_out = None
    else:
        tok_in, tok_out = sum(v or 0 for v in tin), sum(v or 0 for v in tout)
    costs = col["cost_usd"][lo:hi]
    cost = None
    if costs.count(None) != n:
        cost = 0.0
        for v in costs:  # in step order, as Trace.totals adds them (not math.fsum)
            if v is not None:
                cost += v
    started = t.started_at or next(filter(None, col["started_at"][lo:hi]), None)
    ended = t.ended_at or next(filter(None, (e or s for e, s in zip(reversed(col["ended_at"][lo:hi]),
                                                                     reversed(col["started_at"][lo:hi])))), None)
    return started, ended, n, agents, tok_in, tok_out, cost


def _shared(a: dict, memo: dict, shared: dict[int, str]) -> str:
    text = shared[id(a)] = _attrs(a, memo)
    return text


def _attrs(a: dict, memo: dict) -> str:
    """A step's attributes as JSON; flat all-text ones (a few distinct per batch) are remembered."""
    if len(a) <= 4:
        # only text keys and values are remembered (1 and True are equal keys but different
        # JSON); checked first, since hashing a list value would raise and a raise costs more
        for k, v in a.items():
            if type(v) is not str or type(k) is not str:
                return _JSON(a)
        key = tuple(a.items())
        text = memo.get(key)
        if text is None:
            text = _JSON(a)
            if len(memo) < 4096:
                memo[key] = text
        return text
    return _JSON(a)


def encode_annotations(rows: Iterable[Annotation]) -> pa.Table:
    """Annotations of stored traces (``trace_id`` set), in the layout of :attr:`TraceTables.annotations`."""
    return _table([_annotation_row(0, a) for a in rows], ANNOTATION_SCHEMA)


def encode_attributions(rows: Iterable[Attribution]) -> pa.Table:
    """Attributions of stored traces, in the layout of :attr:`TraceTables.attributions`."""
    return _table([_attribution_row(0, a) for a in rows], ATTRIBUTION_SCHEMA)


def _annotation_row(seq: int, a: Annotation) -> tuple:
    # the enum's value without its property's cost (twice per label with hasattr: a third
    # of this function's time for the 21,280 labels of MAST human x20); a plain str has none
    label = getattr(a.label, "_value_", None)
    return (seq, a.trace_id, a.taxonomy, a.mode, a.annotator, a.run_id,
            label if label is not None else str(a.label), a.confidence,
            list(a.evidence_steps or []), a.rationale)


def _attribution_row(seq: int, a: Attribution) -> tuple:
    return (seq, a.trace_id, a.annotator, a.run_id, a.agent, a.step, a.confidence, a.rationale)


def _json(v: Any) -> str | None:
    if v is None or v == {}:
        return None
    return _JSON(v)


def _table(rows: list, schema: pa.Schema, columns: bool = False) -> pa.Table:
    # Typed arrays: letting pyarrow infer types costs a failed `import dateutil` per column.
    cols = rows if columns else (list(zip(*rows)) if rows else [[] for _ in schema])
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, schema)], schema=schema)

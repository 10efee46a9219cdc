"""A small batch on its way to DuckDB without pyarrow: columns as Python lists.

Importing pyarrow (and numpy, which it brings) is the largest single cost of a small
ingest's start, ~0.15 s, more than a file of a few KB takes to parse and store.  So a
small job's batches are laid out here as plain lists, one per column, with the same
columns and types as :mod:`mast.store.encode` (a test holds the two to each other), and
loaded into a temporary table by one ``unnest`` of list parameters, which DuckDB converts
in C++.  Everything after that (redaction, casts, hooks) is the same SQL over the same
column names and types, so the stored rows are the same.  Big batches keep the Arrow path
(:func:`encode`): there the import is paid once and Arrow's bulk conversion wins.

:class:`Columns` stands in for the few ``pyarrow.Table`` members the write path uses
(``num_rows``, ``nbytes``, ``column(name).to_pylist()`` / ``.null_count``,
``combine_chunks``); :func:`attach` / :func:`detach` make either kind readable by SQL
under a name.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from mast.model import Annotation, Attribution, Trace

#: A job of at most this many bytes of source files is written by the list path.
SMALL_JOB_BYTES = 1_000_000

# The columns of mast.store.encode's schemas, in the same order, as DuckDB types.
TRACE_COLUMNS = (
    ("trace_id", "VARCHAR"), ("system", "VARCHAR"), ("framework", "VARCHAR"), ("source_format", "VARCHAR"),
    ("source_path", "VARCHAR"), ("source_index", "INTEGER"), ("task", "VARCHAR"), ("outcome", "VARCHAR"),
    ("started_at", "VARCHAR"), ("ended_at", "VARCHAR"), ("n_steps", "INTEGER"), ("n_agents", "INTEGER"),
    ("tokens_in", "BIGINT"), ("tokens_out", "BIGINT"), ("cost_usd", "DOUBLE"), ("metadata", "VARCHAR"))
STEP_COLUMNS = (
    ("_seq", "INTEGER"), ("trace_id", "VARCHAR"), ("step", "INTEGER"), ("span_id", "VARCHAR"),
    ("parent_span_id", "VARCHAR"), ("agent", "VARCHAR"), ("role", "VARCHAR"), ("kind", "VARCHAR"),
    ("content", "VARCHAR"), ("tool_name", "VARCHAR"), ("tool_args", "VARCHAR"), ("target_agent", "VARCHAR"),
    ("started_at", "VARCHAR"), ("ended_at", "VARCHAR"), ("tokens_in", "BIGINT"), ("tokens_out", "BIGINT"),
    ("cost_usd", "DOUBLE"), ("status", "VARCHAR"), ("attributes", "VARCHAR"))
ANNOTATION_COLUMNS = (
    ("_seq", "INTEGER"), ("trace_id", "VARCHAR"), ("taxonomy", "VARCHAR"), ("mode", "VARCHAR"),
    ("annotator", "VARCHAR"), ("run_id", "VARCHAR"), ("label", "VARCHAR"), ("confidence", "DOUBLE"),
    ("evidence_steps", "INTEGER[]"), ("rationale", "VARCHAR"))
ATTRIBUTION_COLUMNS = (
    ("_seq", "INTEGER"), ("trace_id", "VARCHAR"), ("annotator", "VARCHAR"), ("run_id", "VARCHAR"),
    ("agent", "VARCHAR"), ("step", "INTEGER"), ("confidence", "DOUBLE"), ("rationale", "VARCHAR"))

#: What a run's artefact says of it, per trace (``run_rows``): its id, steps and metadata (the
#: run key, rank, fingerprint) and the facts its run's trace may inherit
#: (:meth:`mast.store.Store.record_sources`).
RUN_COLUMNS = ("trace_id", "n_steps", "metadata", "task", "system", "outcome", "tokens_in", "tokens_out")


class _Column:
    __slots__ = ("values",)

    def __init__(self, values: list):
        self.values = values

    def to_pylist(self) -> list:
        return list(self.values)

    @property
    def null_count(self) -> int:
        return sum(v is None for v in self.values)


class Columns:
    """A table as one Python list per column (``spec``: (name, DuckDB type) per column)."""

    __slots__ = ("spec", "data")

    def __init__(self, spec: Sequence[tuple[str, str]], data: Sequence[list] | None = None):
        self.spec = tuple(spec)
        self.data = [list(c) for c in data] if data is not None else [[] for _ in self.spec]
        if len({len(c) for c in self.data}) > 1:
            raise ValueError("columns of unequal length")

    @classmethod
    def of(cls, columns: dict[str, tuple[str, list]]) -> "Columns":
        """From ``{name: (DuckDB type, values)}``."""
        return cls([(n, t) for n, (t, _) in columns.items()], [v for _, v in columns.values()])

    @classmethod
    def from_rows(cls, spec: Sequence[tuple[str, str]], rows: list[tuple]) -> "Columns":
        return cls(spec, [list(c) for c in zip(*rows)] if rows else None)

    @property
    def num_rows(self) -> int:
        return len(self.data[0]) if self.data else 0

    @property
    def nbytes(self) -> int:
        """About what Arrow would hold: string bytes plus 8 per other value."""
        return sum(len(v) if isinstance(v, str) else 8 for c in self.data for v in c)

    def column(self, name: str) -> _Column:
        return _Column(self.data[self._index(name)])

    def combine_chunks(self) -> "Columns":
        return self

    def take(self, rows: Sequence[int]) -> "Columns":
        return Columns(self.spec, [[c[i] for i in rows] for c in self.data])

    def where_seq(self, keep: set[int], shift: int = 0) -> "Columns":
        """The rows whose ``_seq`` is in ``keep``, ``_seq`` moved by ``shift``."""
        seq = self.data[0]
        idx = [i for i, s in enumerate(seq) if s in keep]
        out = self.take(idx)
        if shift:
            out.data[0] = [s + shift for s in out.data[0]]
        return out

    def _index(self, name: str) -> int:
        for i, (n, _) in enumerate(self.spec):
            if n == name:
                return i
        raise KeyError(name)


#: Lists of more rows than this go through Arrow when pyarrow is imported anyway (a big
#: job): it converts them 2-3 times faster (2,048 rows of 5 columns: 9 ms against 15 ms).
ARROW_ROWS = 256

_ARROW_TYPES = {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "DOUBLE": "float64",
                "BOOLEAN": "bool_"}


def _arrow(table: Columns) -> Any:
    import pyarrow as pa  # already imported by the job (see attach)

    def typ(t: str):
        return pa.list_(typ(t[:-2])) if t.endswith("[]") else getattr(pa, _ARROW_TYPES[t])()
    return pa.Table.from_arrays([pa.array(c, typ(t)) for c, (_, t) in zip(table.data, table.spec)],
                                names=[n for n, _ in table.spec])


def attach(con: Any, name: str, table: Any) -> None:
    """Make ``table`` (:class:`Columns` or a ``pyarrow.Table``) readable by SQL as ``name``."""
    if isinstance(table, Columns) and (table.num_rows <= ARROW_ROWS or "pyarrow" not in sys.modules):
        cols = ", ".join(f"unnest(?::{t}[]) AS {n}" for n, t in table.spec)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols}", table.data)
    else:
        con.register(name, _arrow(table) if isinstance(table, Columns) else table)


def detach(con: Any, name: str, table: Any) -> None:
    """Undo :func:`attach` (whichever way it went)."""
    if isinstance(table, Columns) and (table.num_rows <= ARROW_ROWS or "pyarrow" not in sys.modules):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    else:
        con.unregister(name)


@dataclass(frozen=True, slots=True)
class RowTables:
    """The list-path counterpart of :class:`mast.store.encode.TraceTables` (same members)."""

    traces: Columns
    steps: Columns
    annotations: Columns
    attributions: Columns

    @property
    def nbytes(self) -> int:
        return self.traces.nbytes + self.steps.nbytes + self.annotations.nbytes + self.attributions.nbytes

    def run_rows(self) -> list[tuple]:
        t = self.traces
        return list(zip(*(t.column(c).values for c in RUN_COLUMNS)))

    def select(self, start: int, n: int) -> "RowTables":
        keep = set(range(start, start + n))
        return RowTables(self.traces.take(range(start, min(start + n, self.traces.num_rows))),
                         *(t.where_seq(keep, -start) for t in (self.steps, self.annotations, self.attributions)))

    def keep(self, rows: list[int]) -> tuple[Columns, Columns, Columns, Columns]:
        """Traces ``rows`` (sorted) and their steps and labels, ``_seq`` as it was (as the Arrow path)."""
        sel = set(rows)
        return (self.traces.take(rows), *(t.where_seq(sel) for t in (self.steps, self.annotations,
                                                                       self.attributions)))

    @staticmethod
    def concat(parts: Sequence["RowTables"]) -> "RowTables":
        if len(parts) == 1:
            return parts[0]
        out = [Columns(c.spec) for c in (parts[0].traces, parts[0].steps, parts[0].annotations,
                                         parts[0].attributions)]
        offset = 0
        for p in parts:
            for k, src in enumerate((p.traces, p.steps, p.annotations, p.attributions)):
                for dst, col in zip(out[k].data, src.data):
                    dst.extend(col)
                if k and offset:
                    seq = out[k].data[0]
                    n = src.num_rows
                    seq[len(seq) - n:] = [s + offset for s in seq[len(seq) - n:]]
            offset += p.traces.num_rows
        return RowTables(*out)


def _text(v: Any) -> Any:
    # Arrow refuses text that is not valid Unicode (a lone surrogate) with UnicodeEncodeError,
    # which the caller answers by scrubbing and encoding again: the same error here.
    if isinstance(v, str) and not v.isascii():
        v.encode("utf-8")
    return v


def encode_rows(traces: Sequence[Trace]) -> RowTables:
    """:func:`mast.store.encode.encode_traces` as lists: the same values, column for column."""
    tcols: list[list] = [[] for _ in TRACE_COLUMNS]
    srows: list[tuple] = []
    ann: list[tuple] = []
    att: list[tuple] = []
    for seq, t in enumerate(traces):
        t.finalise()
        tid = t.trace_id
        for i, s in enumerate(t.steps):
            a = s.attributes
            srows.append(tuple(map(_text, (
                seq, tid, i, s.span_id, s.parent_span_id, s.agent, s.role, s.kind.value, s.content, s.tool_name,
                s.tool_args, s.target_agent, s.started_at, s.ended_at, s.tokens_in, s.tokens_out, s.cost_usd,
                s.status, json.dumps(a, ensure_ascii=False, default=str) if a else None))))
        tt = t.totals()
        row = (tid, t.system, t.framework, t.source_format, t.source_path, t.source_index, t.task,
               t.outcome.value, tt.started_at, tt.ended_at, tt.n_steps, tt.n_agents,
               tt.tokens_in, tt.tokens_out, tt.cost_usd, _json(t.metadata))
        for col, v in zip(tcols, row):
            col.append(_text(v))
        for a in t.annotations:
            a.trace_id = tid
            ann.append(_annotation_row(seq, a))
        for a in t.attributions:
            a.trace_id = tid
            att.append(_attribution_row(seq, a))
    return RowTables(Columns(TRACE_COLUMNS, tcols), Columns.from_rows(STEP_COLUMNS, srows),
                     Columns.from_rows(ANNOTATION_COLUMNS, ann), Columns.from_rows(ATTRIBUTION_COLUMNS, att))


def _annotation_row(seq: int, a: Annotation) -> tuple:
    return tuple(map(_text, (seq, a.trace_id, a.taxonomy, a.mode, a.annotator, a.run_id,
                             a.label.value if hasattr(a.label, "value") else str(a.label), a.confidence,
                             list(a.evidence_steps or []), a.rationale)))


def _attribution_row(seq: int, a: Attribution) -> tuple:
    return tuple(map(_text, (seq, a.trace_id, a.annotator, a.run_id, a.agent, a.step, a.confidence, a.rationale)))


def _json(v: Any) -> str | None:
    if v is None or v == {}:
        return None
    return json.dumps(v, ensure_ascii=False, default=str)

"""Rows made ready for the store in a parser process: redacted, cast, derived rows computed.

A parser process runs, on an in-memory DuckDB store of its own, the
very statements the writer runs on a batch: the INSERT bodies of :mod:`mast.store.insert`
(the secrets catalogue's chain behind its one-scan check, the casts) and each write hook's
SELECT (:meth:`mast.store.hooks.WriteHook.rows`: the rules' feature pass).  It hands the
writer the results as Arrow tables (:class:`ReadyTables`); the writer then only appends
them (:func:`append`), with no regex to run, and commits.  One SQL source of truth: nothing
here re-implements redaction or a feature.

Nothing unredacted crosses to the writer: the tables hold stored rows only, and the run
rows (:meth:`ReadyTables.run_rows`, for run identity) take the task, system and outcome
reason as stored (redacted), and of the metadata as read only the ``run_*`` keys the
importers made (ids, ranks, times, digests).

A hook whose rows a parser could not compute (it has no ``rows``, its SQL did not bind
there, or the columns it gives differ from the store's table) runs in the writer as
before, on the ready traces and steps: what is stored never depends on where it was made.

``store`` arguments are the :class:`mast.store.Store` (typed loosely, as in
:mod:`mast.store.hooks`: the store imports this module).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from mast.store import insert
from mast.store.hooks import WriteHook, WrittenBatch

if TYPE_CHECKING:
    import pyarrow as pa

    from mast.store.encode import TraceTables

CORE = ("traces", "steps", "annotations", "attributions")
#: Rows of the batch a parser makes ready, for the hooks' SELECTs (as the writer's batch tables).
_NEW = ("temp._mast_new_traces", "temp._mast_new_steps")


@dataclass(frozen=True, slots=True)
class ReadyTables:
    """A batch as the store keeps it, made by :func:`prepare` (picklable).

    ``traces``: one row per trace of the batch, repeats included, in the stored columns
    (the row is the trace's ``_seq``); ``steps``, ``annotations``, ``attributions``:
    ``_seq`` first, then the stored columns; ``derived``: a write hook's table -> its
    rows (``_seq`` first), for the first row of each trace id only (a repeat is never
    written); ``runs``: :meth:`run_rows`.  Time columns are set again by the writer."""

    traces: pa.Table
    steps: pa.Table
    annotations: pa.Table
    attributions: pa.Table
    derived: dict[str, pa.Table] = field(default_factory=dict)
    runs: tuple = ()

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.traces, self.steps, self.annotations, self.attributions,
                                      *self.derived.values()))

    def run_rows(self) -> list[tuple]:
        """Per trace, what :meth:`Store.record_sources` takes (``mast.store.rows.RUN_COLUMNS``),
        with the metadata cut to what it reads (:func:`_run_keys`)."""
        return list(self.runs)

    def _map(self, fn) -> "ReadyTables":
        """Every ``_seq`` table through ``fn(table)``."""
        return ReadyTables(self.traces, fn(self.steps), fn(self.annotations), fn(self.attributions),
                           {k: fn(v) for k, v in self.derived.items()}, self.runs)

    def select(self, start: int, n: int) -> "ReadyTables":
        """Traces ``start .. start+n-1`` with their rows (``_seq`` renumbered)."""
        from mast.store.encode import seq_range  # pyarrow: loaded already (ready rows are Arrow)

        out = self._map(lambda t: seq_range(t, start, n))
        return ReadyTables(self.traces.slice(start, n), out.steps, out.annotations, out.attributions, out.derived,
                           tuple(self.runs[start:start + n]))

    def take(self, rows: Sequence[int]) -> "ReadyTables":
        """Only the traces ``rows`` (ascending), with their rows (``_seq`` renumbered)."""
        return self.kept([False] * self.traces.num_rows if not rows else _mask(self.traces.num_rows, rows))

    def kept(self, keep: Sequence[bool]) -> "ReadyTables":
        """Only the traces whose ``keep`` is true (``_seq`` renumbered to the rows that stay)."""
        import pyarrow as pa  # loaded already (ready rows are Arrow); not by the store's import
        from mast._arrow import compute
        pc = compute()

        new, n = [], 0
        for k in keep:
            new.append(n if k else -1)
            n += bool(k)
        new_row = pa.array(new, pa.int32())

        def sub(t: pa.Table) -> pa.Table:
            t = t.filter(pc.greater_equal(pc.take(new_row, t.column("_seq")), 0))
            return t.set_column(0, "_seq", pc.take(new_row, t.column("_seq")))
        out = self._map(sub)
        return ReadyTables(self.traces.filter(pa.array(list(map(bool, keep)))), out.steps, out.annotations,
                           out.attributions, out.derived, tuple(r for r, k in zip(self.runs, keep) if k))

    @staticmethod
    def concat(parts: Sequence["ReadyTables"]) -> "ReadyTables":
        """One batch from several, renumbering ``_seq`` so it stays a row of ``traces``."""
        if len(parts) == 1:
            return parts[0]
        import pyarrow as pa  # loaded already (ready rows are Arrow); not by the store's import

        from mast.store.encode import seq_shift

        shifted, offset = [], 0
        for p in parts:
            shifted.append(p._map(lambda t, off=offset: seq_shift(t, off)))
            offset += p.traces.num_rows
        names = [k for k in parts[0].derived if all(k in p.derived for p in parts)]
        return ReadyTables(
            pa.concat_tables([p.traces for p in shifted]),
            *(pa.concat_tables([getattr(p, t) for p in shifted]) for t in CORE[1:]),
            {k: pa.concat_tables([p.derived[k] for p in shifted]) for k in names},
            tuple(r for p in parts for r in p.runs))


def _mask(n: int, rows: Sequence[int]) -> list[bool]:
    out = [False] * n
    for i in rows:
        out[i] = True
    return out


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


#: Keys of a trace's metadata that run identity reads besides its own ``run_*`` ones.
_FACT_KEYS = ("outcome_reason", "system_from")


def _run_keys(meta: str | None, stored: str | None) -> str | None:
    """What :meth:`Store.record_sources` reads of a trace's metadata: its ``run_*`` keys (ids,
    ranks, times, digests: made by the importers, kept as read so that run identity is the
    writer's own) and :data:`_FACT_KEYS` as stored, redacted (``stored``)."""
    keys: dict = {}
    if meta and '"run_' in meta:
        md = json.loads(meta)
        if isinstance(md, dict):
            keys = {k: v for k, v in md.items() if k.startswith("run_")}
    if stored and any(f'"{k}"' in stored for k in _FACT_KEYS):
        md = json.loads(stored)
        if isinstance(md, dict):
            keys.update((k, md[k]) for k in _FACT_KEYS if k in md)
    return json.dumps(keys) if keys else None


def prepare(store: Any, tables: TraceTables, hooks: Sequence[WriteHook] = ()) -> ReadyTables:
    """``tables`` as the store keeps them, with the hooks' rows: the writer's statements, run
    on ``store`` (an in-memory store of the parser's own), which is left empty again."""
    import pyarrow as pa  # a parser's batch is Arrow already

    con = store._con
    now = _now()
    out: dict[str, pa.Table] = {}
    for t in CORE:
        rows = getattr(tables, t)
        name = f"_mast_in_{t}"
        con.register(name, rows)
        try:
            sql = insert.statement(con, t, rows, name, seq=t != "traces")
            out[t] = con.sql(sql, params=[now] if insert.takes_time(t) else None).to_arrow_table()
        finally:
            con.unregister(name)
    ids = tables.traces.column("trace_id").to_pylist()
    if out["traces"].column("trace_id").to_pylist() != ids:  # the writer relies on rows in batch order
        raise RuntimeError("DuckDB returned the batch's traces out of order")
    derived: dict[str, pa.Table] = {}
    if hooks and ids:
        derived = _derived(store, out, ids, hooks)
    red = out["traces"]
    runs = tuple(zip(ids, tables.traces.column("n_steps").to_pylist(),
                     map(_run_keys, tables.traces.column("metadata").to_pylist(), red.column("metadata").to_pylist()),
                     *(red.column(c).to_pylist() for c in ("task", "system", "outcome", "tokens_in", "tokens_out"))))
    return ReadyTables(out["traces"], out["steps"], out["annotations"], out["attributions"], derived, runs)


def _derived(store: Any, out: dict[str, pa.Table], ids: list[str],
             hooks: Sequence[WriteHook]) -> dict[str, pa.Table]:
    """Each hook's rows for the batch's first row of every trace id, tagged with its ``_seq``."""
    import pyarrow as pa  # a parser's batch is Arrow already
    from mast._arrow import compute
    pc = compute()

    con = store._con
    first: dict[str, int] = {}
    for i, tid in enumerate(ids):
        first.setdefault(tid, i)
    seqs = pa.table({"_seq": pa.array(list(first.values()), pa.int32()), "trace_id": list(first)})
    traces = out["traces"] if len(first) == len(ids) else out["traces"].take(seqs.column("_seq"))
    steps = out["steps"] if len(first) == len(ids) else out["steps"].filter(
        pc.is_in(out["steps"].column("_seq"), value_set=seqs.column("_seq")))
    derived: dict[str, pa.Table] = {}
    try:
        # The hooks read the batch as the writer shows it: the stored columns and types.
        # Views, not copies: a column the hook does not read is never cast.
        for rel, (t, rows) in zip(_NEW, (("traces", traces), ("steps", steps))):
            src = f"_mast_ready_{t}"
            con.register(src, rows)
            cols = ", ".join(f'"{c}"::{ty} AS "{c}"' for c, ty in store.fetchall(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [t]))
            con.execute(f"CREATE OR REPLACE TEMP VIEW {rel.split('.')[1]} AS SELECT {cols} FROM {src}")
        batch = WrittenBatch(traces=_NEW[0], steps=_NEW[1])
        for h in hooks:
            made = getattr(h, "rows", None)
            sqls = made(store, batch) if made else None
            if sqls is None:
                continue  # the writer runs it (see the module's docstring)
            for table, sql in sqls.items():
                # each row's _seq by its trace id, in Arrow: a join around the hook's SELECT
                # made DuckDB evaluate the feature pass's regex 2.7 times as slowly
                rows = con.sql(sql).to_arrow_table()
                at = pc.index_in(rows.column("trace_id"), value_set=seqs.column("trace_id"))
                derived[table] = rows.add_column(0, "_seq", pc.take(seqs.column("_seq"), at))
    finally:
        for rel in _NEW:
            with contextlib.suppress(Exception):
                con.execute(f"DROP VIEW IF EXISTS {rel}")
        for src in ("_mast_ready_traces", "_mast_ready_steps"):
            with contextlib.suppress(Exception):
                con.unregister(src)
    return derived


def _columns(store: Any, table: str) -> list[str]:
    return [r[0] for r in store.fetchall(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [table])]


def _body(rows: pa.Table, table: str) -> tuple[str, bool]:
    """The SELECT list that appends ready ``rows`` to ``table``, and whether it takes the time."""
    out = "SELECT * EXCLUDE (_seq)" if "_seq" in rows.schema.names else "SELECT *"
    col = insert.time_column(table) if table in CORE else None
    return (out + f" REPLACE (?::TIMESTAMP AS {col})" if col else out), bool(col)


def append(store: Any, tables: ReadyTables, hooks: Sequence[WriteHook], batch: WrittenBatch,
           now: datetime) -> None:
    """Append ready rows (the batch's new traces only) to the store, with the hooks' rows;
    a hook not made ready runs here, on the batch's rows as :meth:`Store.write_parts` shows them."""
    con = store._con
    ready = [h for h in hooks if h.tables and all(t in tables.derived and [c for c in tables.derived[t].schema.names
                                                              if c != "_seq"] == _columns(store, t)
                                     for t in h.tables)]
    rest = [h for h in hooks if h not in ready]

    def put(rows: pa.Table, table: str, into: str) -> None:
        if not rows.num_rows:
            return
        body, timed = _body(rows, table)
        con.register("_mast_ready_rows", rows)
        try:
            con.execute(f"INSERT INTO {into} BY NAME {body} FROM _mast_ready_rows", [now] if timed else [])
        finally:
            con.unregister("_mast_ready_rows")

    if rest:  # the batch through temporary tables, as the writer shows it to a hook
        try:
            for t, rel in zip(("traces", "steps"), (batch.traces, batch.steps)):
                con.execute(f"CREATE OR REPLACE TEMP TABLE {rel.split('.')[1]} AS SELECT * FROM main.{t} LIMIT 0")
                put(getattr(tables, t), t, rel)
                con.execute(f"INSERT INTO {batch.into(t)} SELECT * FROM {rel}")
            for h in rest:
                h.on_write(store, batch)
        finally:  # free the batch copy
            for rel in (batch.traces, batch.steps):
                with contextlib.suppress(Exception):
                    con.execute(f"DROP TABLE IF EXISTS {rel}")
    else:
        put(tables.traces, "traces", batch.into("traces"))
        put(tables.steps, "steps", batch.into("steps"))
    put(tables.annotations, "annotations", batch.into("annotations"))
    put(tables.attributions, "attributions", batch.into("attributions"))
    for h in ready:
        for t in h.tables:
            put(tables.derived[t], t, batch.into(t))


def write_runs(store: Any, parts: Sequence[Any], sizes: Sequence[int], hooks: Sequence[WriteHook]) -> list:
    """:meth:`Store.write_parts` of parts of two kinds (ready, and encoded only: a parser that
    could not make its batch ready hands it on as it is): each run of one kind on its own,
    in order, so a later run sees an earlier one's traces as stored.  A unit of ``sizes``
    (a file) never spans two parts."""
    out: list = []
    units = iter(sizes)
    i = 0
    while i < len(parts):
        j = i
        while j < len(parts) and type(parts[j]) is type(parts[i]):
            j += 1
        n, run_sizes = sum(p.traces.num_rows for p in parts[i:j]), []
        while sum(run_sizes) < n:
            run_sizes.append(next(units))
        if sum(run_sizes) != n:
            raise ValueError("a unit of the batch spans parts of two kinds")
        out += store.write_parts(parts[i:j], run_sizes, hooks)
        i = j
    return out

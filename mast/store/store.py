"""The store: the only code in mast that talks to DuckDB (:class:`Store`).

Contract:
- A store is one DuckDB file.  Opening it for writing applies pending migrations
  (:mod:`mast.store.schema`); opening it read-only never changes it.
- Every ``duckdb.Error`` leaving this module becomes a :class:`mast.errors.StoreError`
  with a message a user can act on; a second writer gets :class:`StoreInUse`.
- Trace writes are idempotent: a trace whose id is already stored is counted as
  present and not written again.  Callers wrap one file in one :meth:`Store.transaction`
  so a file is either wholly stored or not at all.
- Every string a trace file can set, identifiers included (system, agent, tool and
  file names), is passed through the secrets catalogue (:mod:`mast.redact`) inside
  DuckDB before it is stored; ``redactions`` on traces and steps counts what it replaced.
- A user's ``--where`` condition reaches a query only through :meth:`Store.where_sql`
  (:mod:`mast.store.where`): trace columns, nothing else.
- Traces, annotations and attributions are written the same way: encoded as Arrow
  tables (:mod:`mast.store.encode`; a small job's as Python lists, :mod:`mast.store.rows`,
  which spares it importing pyarrow), registered, and inserted by one statement per
  table that redacts and casts (a small batch is checked for hints first, so the
  statement carries the redaction chain only for the columns where a value holds one).
- The store knows nothing of what is derived from traces: a caller passes write hooks
  (:mod:`mast.store.hooks`) that run in the transaction of each batch.
- A batch may also come ready (:mod:`mast.store.ready`): redacted, cast and with the
  hooks' rows, made by the same statements in an ingest's parser process; it is appended.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import duckdb

from mast.errors import MastError, StoreError, StoreFull, StoreInUse, StoreMissing, StoreOutOfMemory
from mast.model import Annotation, Attribution, Label, Outcome, Step, StepKind, Trace
from mast.settings import current as current_settings
from mast.store import insert, ready
from mast.store.rows import RowTables
from mast.store.process import gone as process_gone
from mast.store.files import IngestedFiles
from mast.store.sources import RunSources
from mast.store.hooks import WriteHook, WrittenBatch
from mast.store.schema import MIGRATIONS
from mast.store.where import checked_where
from mast.scope import traces_sql

if TYPE_CHECKING:
    import pyarrow as pa

    from mast.store.encode import TraceTables


def default_path() -> str:
    return current_settings().db


@dataclass(frozen=True, slots=True)
class WriteResult:
    new: int
    present: int
    steps: int


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _iso(ts: datetime | None) -> str | None:
    """A stored (naive UTC) timestamp as the model's ISO 8601 text."""
    return None if ts is None else ts.replace(tzinfo=timezone.utc).isoformat()


_LOCK_RX = re.compile(r"(?i)could not set lock|conflicting lock|lock on file")
#: What the OS says when a write cannot grow a file: ENOSPC, EDQUOT, and EFBIG (a file
#: size limit, e.g. ``ulimit -f``): the same for a user, there is no room to write.
_FULL_RX = re.compile(r"(?i)no space left on device|disk quota exceeded|file too large")
#: DuckDB reports memory running out as OutOfMemoryException, or (inside a commit, when
#: the OS refuses an allocation) as another error with one of these phrases.
_OOM_RX = re.compile(r"(?i)out of memory|failed to allocate|bad allocation|allocation failure")


class Store(IngestedFiles, RunSources):
    #: Stores not closed yet, for :meth:`close_all`.
    _open: "weakref.WeakSet[Store]" = weakref.WeakSet()

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False):
        self.path = str(path or default_path())
        self.read_only = read_only
        #: tables being staged (see begin_staging); empty when writes go to the store
        self._staged: tuple[str, ...] = ()
        # A file that is not there yet (nor its WAL) is a new store: no need to ask it for its
        # migrations (DuckDB's error for a missing table costs ~0.01 s: it looks for similar names).
        exists = not self.path.startswith(":memory:") and (
            Path(self.path).exists() or Path(self.path + ".wal").exists())
        if read_only and not Path(self.path).exists():
            raise StoreMissing(f"no store at {self.path}")
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as e:
            raise self._map(e) from None
        Store._open.add(self)
        try:
            self._con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            pass  # ICU missing: timestamps are still stored as naive UTC
        if not read_only:
            try:
                if not self._migrate(exists):  # a store made just now has no runs to mark
                    self.mark_interrupted_runs()
            except duckdb.Error as e:  # e.g. no memory or no space left to write the schema
                self._con.close()
                raise self._map(e) from None
            except StoreError:         # marking stale runs failed (already mapped)
                self._con.close()
                raise
        elif self._applied() is None:
            self._con.close()
            raise StoreMissing(f"{self.path} is not a mast store (no migrations recorded)")

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        Store._open.discard(self)
        with contextlib.suppress(Exception):
            self._con.close()

    @classmethod
    def close_all(cls) -> None:
        """Close every store of this process still open (before a process ends by ``os._exit``)."""
        for s in list(cls._open):
            s.close()

    def _map(self, e: duckdb.Error) -> StoreError:
        msg = str(e)
        if _LOCK_RX.search(msg):
            pid = re.search(r"PID (\d+)", msg)
            who = f" (process {pid.group(1)})" if pid else ""
            return StoreInUse(f"store is in use by another process{who}: {self.path}")
        if _FULL_RX.search(msg):
            return StoreFull(f"store {self.path}: no space left to write ({_FULL_RX.search(msg).group(0)})")
        if isinstance(e, duckdb.OutOfMemoryException) or _OOM_RX.search(msg):
            return StoreOutOfMemory(f"store {self.path}: out of memory: {msg.splitlines()[0]}")
        if isinstance(e, duckdb.IOException):
            return StoreError(f"cannot open store {self.path}: {msg.splitlines()[0]}")
        return StoreError(f"store {self.path}: {msg.splitlines()[0]}")

    def _applied(self) -> set[str] | None:
        """The migrations recorded in the store; None when it records none (not a store yet).

        One query on the table itself: asking the catalogue first (``information_schema``)
        cost 0.015 s on every open, a tenth of a small ingest's own work."""
        try:
            # fetchall: DuckDB 2 refuses new work while a result is unfinished
            return {r[0] for r in self._con.execute("SELECT name FROM _migrations").fetchall()}
        except duckdb.CatalogException:
            return None

    def _migrate(self, exists: bool = True) -> bool:
        """Apply the pending migrations; whether the store was new (it had none).
        ``exists``: whether the file was there before it was opened."""
        con = self._con
        done = self._applied() if exists else None
        if done is not None and all(name in done for name, _ in MIGRATIONS):
            return False  # the usual open: nothing to write, so no transaction either
        new = done is None
        done = done or set()
        # Every pending migration in one transaction: a new store's schema costs one commit
        # (one WAL sync) instead of one per migration, and a migration that fails leaves the
        # store as it was, not half-migrated.
        with self.transaction():
            con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
            applied = []
            for name, fn in MIGRATIONS:
                if name not in done:
                    fn(con)
                    applied.append(name)
            # recorded by one statement: one per migration was ~0.01 s of a new store's open
            con.execute("INSERT INTO _migrations SELECT unnest(?::VARCHAR[]), ?", [applied, _now()])
        return new

    def mark_interrupted_runs(self) -> list[str]:
        """Mark ``interrupted`` the runs left ``running`` by a process that is gone
        (:mod:`mast.store.process`); their ids.  Runs of live processes are left alone."""
        rows = self.fetchall("SELECT run_id, pid, host, process_started FROM runs WHERE status = 'running'")
        dead = [run_id for run_id, pid, host, token in rows if process_gone(pid, host, token)]
        if dead:
            # finished_at stays unknown: when the process died is not recorded anywhere
            self.execute("UPDATE runs SET status = 'interrupted' WHERE run_id IN (SELECT unnest(?))", [dead])
        return dead

    def migrations(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]

    @contextlib.contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """Cap DuckDB's buffer pool for a heavy job, then restore the previous limit.

        DuckDB's default (80 % of RAM) lets it keep that much resident during a big ingest
        or a whole-store feature pass; a cap makes it spill instead, at no measured cost.
        """
        with self._setting("memory_limit", limit):
            yield

    @contextlib.contextmanager
    def checkpoint_threshold(self, size: str) -> Iterator[None]:
        """Let the WAL grow to ``size`` before DuckDB checkpoints, for a job of many commits.

        Each checkpoint rewrites the tables' last, partly filled row group (up to 122,880
        rows: all the steps of a store of that size), so with DuckDB's default (16 MB) an
        ingest committing a group every 16 MB rewrote its steps about once per group."""
        with self._setting("checkpoint_threshold", size):
            yield

    @contextlib.contextmanager
    def _setting(self, name: str, value: str) -> Iterator[None]:
        try:
            old = self._con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
            self._con.execute(f"SET {name} = '{value}'")
        except duckdb.Error:
            old = None
        try:
            yield
        finally:
            if old:
                with contextlib.suppress(duckdb.Error):
                    self._con.execute(f"SET {name} = '{old}'")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._con.execute("ROLLBACK")
            raise
        else:
            try:
                self._con.execute("COMMIT")
            except duckdb.Error as e:
                raise self._map(e) from None

    # -- generic queries (for classifiers, evaluate, report) ------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None):
        """Run a query and return a polars DataFrame."""
        try:
            return self._con.sql(sql, params=list(params) if params else None).pl()
        except duckdb.Error as e:
            raise self._map(e) from None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        try:
            self._con.execute(sql, params or [])
        except duckdb.Error as e:
            raise self._map(e) from None

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        try:
            return self._con.execute(sql, params or []).fetchall()
        except duckdb.Error as e:
            raise self._map(e) from None

    def where_sql(self, expr: str, option: str = "--where") -> str:
        """A user's condition over ``traces``, checked (:mod:`mast.store.where`), ready to put
        in a query as ``(\n<it>\n)``; :class:`mast.errors.UsageError` if it reaches further."""
        try:
            return checked_where(self._con, expr, option)
        except duckdb.Error as e:
            raise self._map(e) from None

    # -- ingest: the files ingested and their traces are in mast.store.files (IngestedFiles) --

    # A file too big for one batch is staged: DuckDB keeps memory it does not account
    # for (outside memory_limit) for every row appended in a transaction until it
    # commits, so one transaction over a 900 MB file took 1.4 GB.  Batches are committed
    # into temporary tables instead (they spill to disk under memory_limit), and one
    # transaction then copies them into the store with INSERT ... SELECT, which stays
    # within bounds: the file is still published whole or not at all.

    def begin_staging(self, hooks: Sequence[WriteHook] = ()) -> None:
        """Route :meth:`write_parts` into empty temporary staging tables.

        ``hooks``: the write hooks the staged writes will run; their tables are staged too.
        """
        staged = tuple(dict.fromkeys((*_CORE_TABLES, *(t for h in hooks for t in h.tables))))
        for t in staged:
            self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_PREFIX}{t} AS SELECT * FROM {t} LIMIT 0")
            self.execute(f"DELETE FROM {_STAGE_PREFIX}{t}")
        self._staged = staged

    def publish_staging(self) -> None:
        """Copy everything staged into the store (call inside :meth:`transaction`)."""
        for t in self._staged:
            self.execute(f"INSERT INTO {t} SELECT * FROM {_STAGE_PREFIX}{t}")

    def end_staging(self) -> None:
        """Stop staging and drop what is staged (published or not)."""
        staged, self._staged = self._staged, ()
        for t in staged:
            with contextlib.suppress(MastError):
                self.execute(f"DELETE FROM {_STAGE_PREFIX}{t}")

    def write_traces(self, traces: Sequence[Trace], hooks: Sequence[WriteHook] = ()) -> WriteResult:
        """Store a batch of traces (and the labels they carry), skipping known ids.

        Must be called inside :meth:`transaction` by ingest; the same as
        ``write_tables(encode_traces(traces), hooks)``.
        """
        from mast.store.encode import encode_traces  # pyarrow: see mast.store.rows

        return self.write_tables(encode_traces(traces), hooks)

    def write_tables(self, tables: TraceTables | RowTables, hooks: Sequence[WriteHook] = ()) -> WriteResult:
        """Store traces already encoded by :func:`encode_traces`."""
        return self.write_parts([tables], hooks=hooks)[0]

    def write_parts(self, parts: Sequence[TraceTables | RowTables], sizes: Sequence[int] | None = None,
                    hooks: Sequence[WriteHook] = ()) -> list[WriteResult]:
        """Store several encoded batches at once; one result per part.

        ``sizes`` splits the traces of all parts, in order, into the units to report on
        (e.g. files; default: one unit per part).  Ids already stored, and repeats inside
        the batch, are counted as present and not written.  Each table goes to DuckDB in
        one INSERT, so redaction and casting run vectorised and the fixed cost of a
        statement (planning ~40 regexp_replace calls) is paid once per call, not per file.
        Each of ``hooks`` then sees the new rows, in the caller's transaction.
        """
        if sizes is None:
            sizes = [p.traces.num_rows for p in parts]
        if len({type(p) for p in parts}) > 1:  # some parts made ready by parsers, some not
            return ready.write_runs(self, parts, sizes, hooks)
        tables = type(parts[0]).concat(parts)  # Arrow, or lists for a small job (mast.store.rows)
        assert sum(sizes) == tables.traces.num_rows, "sizes must cover every trace"
        tr = tables.traces
        n = tr.num_rows
        if n == 0:
            return [WriteResult(0, 0, 0) for _ in parts]
        ids = tr.column("trace_id").to_pylist()
        known = {r[0] for r in self.fetchall(
            "SELECT trace_id FROM traces WHERE trace_id IN (SELECT unnest(?))", [ids])}
        if self._staged:
            known |= {r[0] for r in self.fetchall(
                "SELECT trace_id FROM " + _STAGE_PREFIX + "traces WHERE trace_id IN (SELECT unnest(?))", [ids])}
        keep: list[int] = []
        seen: set[str] = known
        for i, tid in enumerate(ids):
            if tid not in seen:
                seen.add(tid)
                keep.append(i)
        if not keep:
            return [WriteResult(0, k, 0) for k in sizes]
        if isinstance(tables, ready.ReadyTables):  # redacted and derived already: append only
            tables = tables.take(keep) if len(keep) < n else tables
            batch = WrittenBatch(traces="temp._mast_new_traces", steps="temp._mast_new_steps",
                                 staged=self._staged, prefix=_STAGE_PREFIX if self._staged else "")
            try:
                ready.append(self, tables, hooks, batch, _now())
            except duckdb.Error as e:
                raise self._map(e) from None
            return _results(tables.traces.column("n_steps").to_pylist(), keep, sizes)
        st, ann, att = tables.steps, tables.annotations, tables.attributions
        if len(keep) < n and isinstance(tables, RowTables):
            tr, st, ann, att = tables.keep(keep)
        elif len(keep) < n:
            import pyarrow as pa  # an Arrow batch is already in hand: pyarrow is imported
            from mast._arrow import compute
            pc = compute()  # only when ids repeat: it costs a small ingest ~0.05 s to import

            sel = pa.array(keep, pa.int32())
            tr = tr.take(sel)
            st, ann, att = (t.filter(pc.is_in(t.column("_seq"), value_set=sel)) for t in (st, ann, att))
        # Scanning a registered table costs DuckDB a little per chunk and column: the small
        # tables arrive as one chunk per file, so merge them (steps are few, big chunks).
        tr, ann, att = tr.combine_chunks(), ann.combine_chunks(), att.combine_chunks()
        batch = WrittenBatch(traces="temp._mast_new_traces", steps="temp._mast_new_steps", staged=self._staged,
                             prefix=_STAGE_PREFIX if self._staged else "")
        now = _now()
        shown: dict[str, str] = {}  # the kind of relation the hooks read the batch's rows of a table in
        try:
            if hooks:
                # The hooks see exactly the batch's rows as stored (redacted), in this same
                # transaction (see _insert: a copy, or a view of the INSERT's body).
                for t, rows in (("traces", tr), ("steps", st)):
                    rel = f"_mast_new_{t}"
                    kind = self._insert(t, rows, batch.into(t), now, shown=rel)
                    if kind is None:  # no rows: the hooks still read the (empty) relation
                        self._con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS SELECT * FROM main.{t} LIMIT 0")
                    shown[t] = kind or "TABLE"
                for h in hooks:
                    h.on_write(self, batch)
            else:
                self._insert("traces", tr, batch.into("traces"), now)
                self._insert("steps", st, batch.into("steps"), now)
            self._insert("annotations", ann, batch.into("annotations"), now)
            self._insert("attributions", att, batch.into("attributions"), now)
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            for t, kind in shown.items():  # free the batch copy or view
                insert.unshow(self._con, t, f"_mast_new_{t}", kind, tr if t == "traces" else st)
        return _results(tr.column("n_steps").to_pylist(), keep, sizes)

    @contextlib.contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """``table`` (Arrow) readable by SQL as ``name`` for the duration of the block."""
        try:
            self._con.register(name, table)
        except duckdb.Error as e:
            raise self._map(e) from None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self._con.unregister(name)

    def delete_traces(self, trace_ids: Sequence[str]) -> None:
        """Remove traces and every row keyed by their ``trace_id`` (steps, labels, derived rows).

        For a trace that is replaced by a newer version of itself (a live trace that grew):
        what was derived from or said about the old version no longer describes it.  Call
        inside :meth:`transaction`."""
        if not trace_ids:
            return
        tables = [r[0] for r in self.fetchall(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) WHERE c.column_name = 'trace_id' AND c.table_schema = 'main' "
            "AND t.table_type = 'BASE TABLE' AND c.table_name <> 'traces' ORDER BY 1")]
        for t in (*tables, "traces"):  # traces last: the others refer to it
            self.execute(f'DELETE FROM "{t}" WHERE trace_id IN (SELECT unnest(?))', [list(trace_ids)])

    def _insert(self, table: str, rows: pa.Table, into: str, now: datetime, shown: str | None = None) -> str | None:
        """Insert encoded ``rows`` of ``table`` into ``into`` (the table, a staged or batch copy),
        redacting and casting on the way; with ``shown``, also leave them as stored for the
        write hooks (:func:`mast.store.insert.write`, undone by :func:`~mast.store.insert.unshow`)."""
        return insert.write(self._con, table, rows, into, now, shown)

    def probe(self, statements: Sequence[str]) -> str | None:
        """Run ``statements`` on a cursor of their own; the first error's message, or None.

        For checks that may fail during a write (e.g. whether a hook's SQL binds): a failed
        statement on the store's own connection would abort the caller's transaction.
        Temporary objects made here are the cursor's and vanish with it.
        """
        try:
            cur = self._con.cursor()
        except duckdb.Error as e:
            return str(self._map(e))
        try:
            for sql in statements:
                cur.execute(sql).fetchall()
        except duckdb.Error as e:
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        finally:
            with contextlib.suppress(Exception):
                cur.close()
        return None

    # -- labels and runs --------------------------------------------------------------
    def write_annotations(self, rows: Iterable[Annotation]) -> int:
        """Store annotations of stored traces (``trace_id`` set); the count written."""
        from mast.store.encode import encode_annotations  # pyarrow: see mast.store.rows

        return self._write_labels("annotations", encode_annotations(rows))

    def write_attributions(self, rows: Iterable[Attribution]) -> int:
        """Store attributions of stored traces (``trace_id`` set); the count written."""
        from mast.store.encode import encode_attributions  # pyarrow: see mast.store.rows

        return self._write_labels("attributions", encode_attributions(rows))

    def _write_labels(self, table: str, rows: pa.Table) -> int:
        try:
            self._insert(table, rows, table, _now())
        except duckdb.Error as e:
            raise self._map(e) from None
        return rows.num_rows

    # -- reads used by the CLI ------------------------------------------------------
    def list_traces(self, systems: Sequence[str] = (), limit: int | None = None):
        inner, params = traces_sql(systems, "trace_id, system, framework, source_format, outcome, n_steps, n_agents, "
                                   "tokens_in, tokens_out, cost_usd, left(task, 200) AS task, source_path, source_index")
        sql = (f"SELECT * EXCLUDE (sys) FROM ({inner}) ORDER BY system, source_path, source_index")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def resolve_trace_id(self, prefix: str) -> str:
        rows = self.fetchall("SELECT trace_id FROM traces WHERE starts_with(trace_id, ?) LIMIT 2", [prefix])
        if not rows:
            raise StoreError(f"no trace with id {prefix!r}", "List ids with `mast traces list`.")
        if len(rows) > 1:
            raise StoreError(f"trace id prefix {prefix!r} is ambiguous", "Give more characters of the id.")
        return rows[0][0]

    def load_traces(self, trace_ids: Sequence[str], *, labels: bool = False) -> list[Trace]:
        """The stored traces of ``trace_ids`` as :class:`mast.model.Trace` s, the typed read path.

        Traces come in the order of ``trace_ids`` (an id given twice comes once; an id
        not stored is left out: compare lengths to notice).  ``trace.steps[i]`` is stored
        step ``i``: the write path numbers steps 0..n-1 in order, so the position is the
        step number that evidence and attributions cite.  Timestamps are ISO 8601 in UTC,
        JSON columns are dicts.  With ``labels``, each trace carries its stored
        annotations (by annotator, mode) and attributions (by annotator).
        """
        ids = list(dict.fromkeys(trace_ids))
        if not ids:
            return []
        sel = "WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))"
        by_id: dict[str, Trace] = {}
        for (tid, system, framework, fmt, path, index, task, outcome, started, ended,
             metadata) in self.fetchall(
                "SELECT trace_id, system, framework, source_format, source_path, source_index, task, outcome, "
                f"started_at, ended_at, metadata FROM traces {sel}", [ids]):
            by_id[tid] = Trace(system=system, framework=framework, source_format=fmt, source_path=path,
                               source_index=index, task=task, outcome=Outcome(outcome), started_at=_iso(started),
                               ended_at=_iso(ended), metadata=json.loads(metadata) if metadata else {},
                               trace_id=tid)
        for (tid, _step, span, parent, agent, role, kind, content, tool, args, target, started, ended,
             tin, tout, cost, status, attrs) in self.fetchall(
                "SELECT trace_id, step, span_id, parent_span_id, agent, role, kind, content, tool_name, tool_args, "
                "target_agent, started_at, ended_at, tokens_in, tokens_out, cost_usd, status, attributes "
                f"FROM steps {sel} ORDER BY trace_id, step", [ids]):
            by_id[tid].steps.append(Step(
                agent=agent, content=content, kind=StepKind(kind), role=role, tool_name=tool, tool_args=args,
                target_agent=target, span_id=span, parent_span_id=parent, started_at=_iso(started),
                ended_at=_iso(ended), tokens_in=tin, tokens_out=tout, cost_usd=cost, status=status,
                attributes=json.loads(attrs) if attrs else None))
        if labels:
            for (tid, taxonomy, mode, annotator, run_id, label, conf, evidence, why) in self.fetchall(
                    "SELECT trace_id, taxonomy, mode, annotator, run_id, label, confidence, evidence_steps, "
                    f"rationale FROM annotations {sel} ORDER BY trace_id, annotator, mode", [ids]):
                by_id[tid].annotations.append(Annotation(
                    mode=mode, label=Label(label), annotator=annotator, taxonomy=taxonomy, run_id=run_id,
                    confidence=conf, evidence_steps=list(evidence or []), rationale=why, trace_id=tid))
            for (tid, annotator, run_id, agent, step, conf, why) in self.fetchall(
                    "SELECT trace_id, annotator, run_id, agent, step, confidence, rationale "
                    f"FROM attributions {sel} ORDER BY trace_id, annotator", [ids]):
                by_id[tid].attributions.append(Attribution(
                    annotator=annotator, agent=agent, step=step, run_id=run_id, confidence=conf,
                    rationale=why, trace_id=tid))
        return [by_id[t] for t in ids if t in by_id]

    def redaction_counts(self, trace_ids: Sequence[str]) -> dict[str, int]:
        """Per stored trace of ``trace_ids``: the credential-looking strings replaced when it
        was stored (its own fields and its steps'; :mod:`mast.redact`).  A store opened
        read-only before migration m050 has no counts: every trace counts 0."""
        if not self.fetchall("SELECT count(*) FROM information_schema.columns "
                             "WHERE table_name = 'steps' AND column_name = 'redactions'")[0][0]:
            return {t: 0 for t in dict.fromkeys(trace_ids)}
        return dict(self.fetchall("""
            SELECT t.trace_id, coalesce(any_value(t.redactions), 0) + coalesce(sum(s.redactions), 0)::INTEGER
            FROM traces t LEFT JOIN steps s USING (trace_id)
            WHERE t.trace_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY t.trace_id""", [list(trace_ids)]))

    def stats(self):
        # One pass over steps for the distinct agents of every system (not one scan per system).
        return self.query("""
            WITH labelled AS (SELECT DISTINCT trace_id FROM annotations UNION SELECT DISTINCT trace_id FROM attributions),
            agents AS (SELECT coalesce(t.system, '(unknown)') AS system, count(DISTINCT s.agent) AS agents
                       FROM steps s JOIN traces t USING (trace_id) GROUP BY 1)
            SELECT coalesce(t.system, '(unknown)') AS system, count(*) AS traces, sum(n_steps)::BIGINT AS steps,
                   coalesce(any_value(a.agents), 0) AS agents,
                   sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0))::BIGINT AS tokens,
                   count(*) FILTER (WHERE trace_id IN (SELECT trace_id FROM labelled)) AS labelled_traces
            FROM traces t LEFT JOIN agents a ON a.system = coalesce(t.system, '(unknown)')
            GROUP BY 1 ORDER BY 1""")



def _results(n_steps: list[int], keep: list[int], sizes: Sequence[int]) -> list[WriteResult]:
    """Per unit of ``sizes``: traces new (their steps) and present; ``n_steps`` of the kept traces."""
    out, off, j = [], 0, 0
    for k in sizes:  # keep is sorted: walk it once, part by part
        new = steps = 0
        while j < len(keep) and keep[j] < off + k:
            new += 1
            steps += n_steps[j]
            j += 1
        out.append(WriteResult(new, k - new, steps))
        off += k
    return out


#: what a write stores: staged whole while a big file is streamed (with the hooks' tables)
_CORE_TABLES = ("traces", "steps", "annotations", "attributions")
_STAGE_PREFIX = "_mast_stage_"

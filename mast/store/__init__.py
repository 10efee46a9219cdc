"""The store: the only code in mast that talks to DuckDB.

Contract:
- A store is one DuckDB file.  Opening it for writing applies pending migrations
  (:mod:`mast.store.schema`); opening it read-only never changes it.
- Every ``duckdb.Error`` leaving this module becomes a :class:`mast.errors.StoreError`
  with a message a user can act on; a second writer gets :class:`StoreInUse`.
- Trace writes are idempotent: a trace whose id is already stored is counted as
  present and not written again.  Callers wrap one file in one :meth:`Store.transaction`
  so a file is either wholly stored or not at all.
- Every text column is passed through the secret redaction patterns
  (:mod:`mast.redact`) inside DuckDB before it is stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa

from mast.errors import StoreError, StoreInUse, StoreMissing
from mast.model import SCHEMA_VERSION, Annotation, Attribution, Trace
from mast.redact import sql_redact
from mast.store.schema import MIGRATIONS

DEFAULT_DB = "mast.duckdb"


def default_path() -> str:
    return os.environ.get("MAST_DB") or DEFAULT_DB


@dataclass(frozen=True, slots=True)
class WriteResult:
    new: int
    present: int
    steps: int


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _json(v: Any) -> str | None:
    if v is None or v == {}:
        return None
    return json.dumps(v, ensure_ascii=False, default=str)


_LOCK_RX = re.compile(r"(?i)could not set lock|conflicting lock|lock on file")


class Store:
    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False):
        self.path = str(path or default_path())
        self.read_only = read_only
        if read_only and not Path(self.path).exists():
            raise StoreMissing(f"no store at {self.path}")
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as e:
            raise self._map(e) from None
        try:
            self.con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            pass  # ICU missing: timestamps are still stored as naive UTC
        if not read_only:
            self._migrate()
        elif not self._has_table("_migrations"):
            self.con.close()
            raise StoreMissing(f"{self.path} is not a mast store (no migrations recorded)")

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()

    def _map(self, e: duckdb.Error) -> StoreError:
        msg = str(e)
        if _LOCK_RX.search(msg):
            pid = re.search(r"PID (\d+)", msg)
            who = f" (process {pid.group(1)})" if pid else ""
            return StoreInUse(f"store is in use by another process{who}: {self.path}")
        if isinstance(e, duckdb.IOException):
            return StoreError(f"cannot open store {self.path}: {msg.splitlines()[0]}")
        return StoreError(f"store {self.path}: {msg.splitlines()[0]}")

    def _has_table(self, name: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchall()[0][0])  # fetchall: DuckDB 2 refuses new work while a result is unfinished

    def _migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
        done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
        for name, fn in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                fn(con)
                con.execute("INSERT INTO _migrations VALUES (?, ?)", [name, _now()])

    def migrations(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.con.execute("ROLLBACK")
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except duckdb.Error as e:
                raise self._map(e) from None

    # -- generic queries (for classifiers, evaluate, report) ------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None):
        """Run a query and return a polars DataFrame."""
        try:
            return self.con.sql(sql, params=list(params) if params else None).pl()
        except duckdb.Error as e:
            raise self._map(e) from None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        try:
            self.con.execute(sql, params or [])
        except duckdb.Error as e:
            raise self._map(e) from None

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        try:
            return self.con.execute(sql, params or []).fetchall()
        except duckdb.Error as e:
            raise self._map(e) from None

    # -- ingest ---------------------------------------------------------------------
    def file_done(self, path: str, size: int, mtime_ns: int) -> bool:
        row = self.con.execute(
            "SELECT 1 FROM ingested_files WHERE path = ? AND size = ? AND mtime_ns = ? LIMIT 1",
            [path, size, mtime_ns],
        ).fetchall()
        return bool(row)

    def record_file(self, path: str, size: int, mtime_ns: int, fmt: str, traces: int) -> None:
        self.con.execute("DELETE FROM ingested_files WHERE path = ?", [path])
        self.con.execute("INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?)",
                         [path, size, mtime_ns, fmt, traces, _now()])

    def write_traces(self, traces: Sequence[Trace]) -> WriteResult:
        """Store a batch of traces (and the labels they carry), skipping known ids.

        Must be called inside :meth:`transaction` by ingest; columns go to DuckDB as
        one Arrow batch so redaction and casting run vectorised.
        """
        if not traces:
            return WriteResult(0, 0, 0)
        for t in traces:
            t.finalise()
        ids = [t.trace_id for t in traces]
        try:
            known = {r[0] for r in self.con.execute(
                "SELECT trace_id FROM traces WHERE trace_id IN (SELECT unnest(?))", [ids]).fetchall()}
        except duckdb.Error as e:
            raise self._map(e) from None
        fresh: list[Trace] = []
        seen: set[str] = set(known)
        for t in traces:
            if t.trace_id not in seen:
                seen.add(t.trace_id)
                fresh.append(t)
        if not fresh:
            return WriteResult(0, len(traces), 0)
        now = _now()
        tcols: dict[str, list] = {k: [] for k in (
            "trace_id", "system", "framework", "source_format", "source_path", "source_index",
            "task", "outcome", "started_at", "ended_at", "n_steps", "n_agents", "tokens_in",
            "tokens_out", "cost_usd", "metadata")}
        scols: dict[str, list] = {k: [] for k in (
            "trace_id", "step", "span_id", "parent_span_id", "agent", "role", "kind", "content",
            "tool_name", "tool_args", "target_agent", "started_at", "ended_at", "tokens_in",
            "tokens_out", "cost_usd", "status", "attributes")}
        ann: list[Annotation] = []
        att: list[Attribution] = []
        for t in fresh:
            tin = tout = 0
            cost = 0.0
            has_tok = has_cost = False
            agents = set()
            for i, s in enumerate(t.steps):
                scols["trace_id"].append(t.trace_id)
                scols["step"].append(i)
                scols["span_id"].append(s.span_id)
                scols["parent_span_id"].append(s.parent_span_id)
                scols["agent"].append(s.agent)
                scols["role"].append(s.role)
                scols["kind"].append(s.kind.value)
                scols["content"].append(s.content)
                scols["tool_name"].append(s.tool_name)
                scols["tool_args"].append(s.tool_args)
                scols["target_agent"].append(s.target_agent)
                scols["started_at"].append(s.started_at)
                scols["ended_at"].append(s.ended_at)
                scols["tokens_in"].append(s.tokens_in)
                scols["tokens_out"].append(s.tokens_out)
                scols["cost_usd"].append(s.cost_usd)
                scols["status"].append(s.status)
                scols["attributes"].append(_json(s.attributes))
                if s.agent:
                    agents.add(s.agent)
                if s.tokens_in is not None or s.tokens_out is not None:
                    has_tok = True
                    tin += s.tokens_in or 0
                    tout += s.tokens_out or 0
                if s.cost_usd is not None:
                    has_cost = True
                    cost += s.cost_usd
            tcols["trace_id"].append(t.trace_id)
            tcols["system"].append(t.system)
            tcols["framework"].append(t.framework)
            tcols["source_format"].append(t.source_format)
            tcols["source_path"].append(t.source_path)
            tcols["source_index"].append(t.source_index)
            tcols["task"].append(t.task)
            tcols["outcome"].append(t.outcome.value)
            tcols["started_at"].append(t.started_at or next((s.started_at for s in t.steps if s.started_at), None))
            tcols["ended_at"].append(t.ended_at or next((s.ended_at or s.started_at for s in reversed(t.steps)
                                                          if s.ended_at or s.started_at), None))
            tcols["n_steps"].append(len(t.steps))
            tcols["n_agents"].append(len(agents))
            tcols["tokens_in"].append(tin if has_tok else None)
            tcols["tokens_out"].append(tout if has_tok else None)
            tcols["cost_usd"].append(cost if has_cost else None)
            tcols["metadata"].append(_json(t.metadata))
            for a in t.annotations:
                a.trace_id = t.trace_id
                ann.append(a)
            for a in t.attributions:
                a.trace_id = t.trace_id
                att.append(a)
        tb = pa.table(tcols)
        sb = pa.table(scols, schema=_STEP_SCHEMA)
        try:
            self.con.register("_mast_tb", tb)
            self.con.register("_mast_sb", sb)
            self.con.execute(f"""
                INSERT INTO traces SELECT trace_id, system, framework, source_format, source_path,
                    source_index, {sql_redact('task')}, outcome,
                    try_cast(started_at AS TIMESTAMPTZ)::TIMESTAMP, try_cast(ended_at AS TIMESTAMPTZ)::TIMESTAMP,
                    n_steps, n_agents, tokens_in, tokens_out, cost_usd,
                    {sql_redact('metadata')}::JSON, {SCHEMA_VERSION}, ?
                FROM _mast_tb""", [now])
            self.con.execute(f"""
                INSERT INTO steps SELECT trace_id, step, span_id, parent_span_id, agent, role, kind,
                    {sql_redact('content')}, tool_name, {sql_redact('tool_args')}, target_agent,
                    try_cast(started_at AS TIMESTAMPTZ)::TIMESTAMP, try_cast(ended_at AS TIMESTAMPTZ)::TIMESTAMP,
                    tokens_in, tokens_out, cost_usd, status, {sql_redact('attributes')}::JSON
                FROM _mast_sb""")
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                self.con.unregister("_mast_tb")
                self.con.unregister("_mast_sb")
        if ann:
            self.write_annotations(ann)
        if att:
            self.write_attributions(att)
        return WriteResult(len(fresh), len(traces) - len(fresh), len(scols["step"]))

    # -- labels and runs --------------------------------------------------------------
    def write_annotations(self, rows: Iterable[Annotation]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        now = _now()
        tb = pa.table({
            "trace_id": [a.trace_id for a in rows],
            "taxonomy": [a.taxonomy for a in rows],
            "mode": [a.mode for a in rows],
            "annotator": [a.annotator for a in rows],
            "run_id": [a.run_id for a in rows],
            "label": [a.label.value if hasattr(a.label, "value") else str(a.label) for a in rows],
            "confidence": pa.array([a.confidence for a in rows], pa.float64()),
            "evidence_steps": pa.array([list(a.evidence_steps or []) for a in rows], pa.list_(pa.int32())),
            "rationale": [a.rationale for a in rows],
        })
        try:
            self.con.register("_mast_ann", tb)
            self.con.execute(f"""INSERT INTO annotations SELECT trace_id, taxonomy, mode, annotator, run_id,
                label, confidence, evidence_steps, {sql_redact('rationale')}, ? FROM _mast_ann""", [now])
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                self.con.unregister("_mast_ann")
        return len(rows)

    def write_attributions(self, rows: Iterable[Attribution]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        now = _now()
        tb = pa.table({
            "trace_id": [a.trace_id for a in rows],
            "annotator": [a.annotator for a in rows],
            "run_id": [a.run_id for a in rows],
            "agent": [a.agent for a in rows],
            "step": pa.array([a.step for a in rows], pa.int32()),
            "confidence": pa.array([a.confidence for a in rows], pa.float64()),
            "rationale": [a.rationale for a in rows],
        })
        try:
            self.con.register("_mast_att", tb)
            self.con.execute(f"""INSERT INTO attributions SELECT trace_id, annotator, run_id, agent, step,
                confidence, {sql_redact('rationale')}, ? FROM _mast_att""", [now])
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                self.con.unregister("_mast_att")
        return len(rows)

    # -- reads used by the CLI ------------------------------------------------------
    def list_traces(self, system: str | None = None, limit: int | None = None):
        sql = ("SELECT trace_id, system, framework, source_format, outcome, n_steps, n_agents, "
               "tokens_in, tokens_out, cost_usd, left(task, 200) AS task, source_path, source_index "
               "FROM traces")
        params: list[Any] = []
        if system:
            sql += " WHERE system = ?"
            params.append(system)
        sql += " ORDER BY system, source_path, source_index"
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

    def get_trace(self, trace_id: str) -> dict[str, Any]:
        tid = self.resolve_trace_id(trace_id)
        trace = self.query("SELECT * FROM traces WHERE trace_id = ?", [tid]).to_dicts()[0]
        steps = self.query("SELECT * FROM steps WHERE trace_id = ? ORDER BY step", [tid]).to_dicts()
        ann = self.query("SELECT * FROM annotations WHERE trace_id = ? ORDER BY annotator, mode", [tid]).to_dicts()
        att = self.query("SELECT * FROM attributions WHERE trace_id = ? ORDER BY annotator", [tid]).to_dicts()
        return {"trace": trace, "steps": steps, "annotations": ann, "attributions": att}

    def stats(self):
        return self.query("""
            WITH labelled AS (SELECT DISTINCT trace_id FROM annotations UNION SELECT DISTINCT trace_id FROM attributions)
            SELECT coalesce(t.system, '(unknown)') AS system, count(*) AS traces, sum(n_steps) AS steps,
                   (SELECT count(DISTINCT s.agent) FROM steps s JOIN traces t2 USING (trace_id)
                     WHERE coalesce(t2.system, '(unknown)') = coalesce(t.system, '(unknown)')) AS agents,
                   sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)) AS tokens,
                   count(*) FILTER (WHERE trace_id IN (SELECT trace_id FROM labelled)) AS labelled_traces
            FROM traces t GROUP BY 1 ORDER BY 1""")


_STEP_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("step", pa.int32()), ("span_id", pa.string()),
    ("parent_span_id", pa.string()), ("agent", pa.string()), ("role", pa.string()),
    ("kind", pa.string()), ("content", pa.large_string()), ("tool_name", pa.string()),
    ("tool_args", pa.large_string()), ("target_agent", pa.string()), ("started_at", pa.string()),
    ("ended_at", pa.string()), ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
    ("cost_usd", pa.float64()), ("status", pa.string()), ("attributes", pa.large_string()),
])

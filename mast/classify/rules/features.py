"""The rules' per-step features: ``_features.sql``, kept in the store.

``_features.sql`` is a SELECT over the views ``feature_steps`` / ``feature_traces``
giving one narrow row of flags per step (error output, success claim, limit hit,
fingerprint, ...).  Its rows are kept in the store (table ``rule_step_features``,
versioned per trace in ``rule_feature_traces`` by the file's version and digest):

- at ingest, :class:`FeatureHook` (a :class:`mast.store.WriteHook`, handed to ingest by
  :func:`mast.classify.hooks.ingest_hooks`) computes them for every batch of steps in the
  transaction that stores the steps;
- at a rules run, :func:`ensure_features` computes them first only for selected traces
  whose rows are missing or of another version (stores ingested without the hook, an
  edited ``_features.sql``), then shows the selection's rows as ``rule_steps``.

So a run never scans the step text of traces whose features are current.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mast.classify.rules.files import Detector, parse_detector, strip_semicolon
from mast.store import WrittenBatch

FEATURES = "_features"
FEATURE_TABLE = "rule_step_features"
FEATURE_TRACES = "rule_feature_traces"
#: steps per transaction when every trace's features are (re)computed
WHOLE_STORE_SLICE = 2_000_000
#: DuckDB's memory cap during a whole-store feature pass: with its default (80 % of RAM) a
#: first rules run on a large store ingested before features existed filled 12 GB; with
#: 2 GB it peaked at 2.5 GB and was no slower (bench/RESULTS.md, Rules).
WHOLE_STORE_MEMORY_LIMIT = "2GB"


def is_features(d: Detector) -> bool:
    return d.prelude and d.name == FEATURES


def features_version(d: Detector) -> str:
    """Header version plus a digest of the text: an edit recomputes even without a bump."""
    return f"{d.version}.{hashlib.sha256(d.sql.encode()).hexdigest()[:12]}"


def _columns(store, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in store.fetchall(f"DESCRIBE {relation_sql}")]


def _table_columns(store) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in store.fetchall(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [FEATURE_TABLE])]


def set_feature_views(store, steps_sql: str, traces_sql: str) -> None:
    """Point the views ``_features.sql`` reads at these steps and traces."""
    store.execute(f"CREATE OR REPLACE TEMP VIEW feature_steps AS {steps_sql}")
    store.execute(f"CREATE OR REPLACE TEMP VIEW feature_traces AS {traces_sql}")


def features_match_table(store, d: Detector) -> bool:
    """Whether ``_features.sql`` outputs exactly the columns of the stored table.

    Needs the views ``feature_steps``/``feature_traces`` (any rows: only bound, not run).
    """
    return _columns(store, f"SELECT * FROM (\n{strip_semicolon(d.sql)}\n)") == _table_columns(store)


class FeatureHook:
    """The feature pass at ingest: a write hook computing each stored batch's features.

    ``rules_dir`` is the folder whose ``_features.sql`` is used.  When it has none, or
    the file does not bind (a rule author's typo must not stop ingest), or its columns
    differ from the stored table's, nothing is computed: the next rules run computes
    what is missing, or rebuilds the table, and reports a broken file by name.
    """

    tables = (FEATURE_TABLE, FEATURE_TRACES)

    def __init__(self, rules_dir: str | Path):
        self.rules_dir = Path(rules_dir)
        self._spec: tuple[Detector, str] | None = None
        self._checked = False
        # The file's output columns, bound once: binding its one big regex per batch cost
        # ~0.02 s a group; the stored table's columns are still read every batch (cheap).
        self._out: list[tuple[str, str]] | None = None

    def _load(self, store) -> tuple[Detector, str] | None:
        """The file and its version, checked once (on a cursor of its own: any failed
        statement would abort the write's transaction)."""
        if not self._checked:
            self._checked = True
            p = self.rules_dir / f"{FEATURES}.sql"
            if p.is_file():
                d = parse_detector(p)
                failed = store.probe([
                    "CREATE OR REPLACE TEMP VIEW feature_steps AS SELECT * FROM main.steps LIMIT 0",
                    "CREATE OR REPLACE TEMP VIEW feature_traces AS SELECT * FROM main.traces LIMIT 0",
                    f"DESCRIBE SELECT * FROM (\n{strip_semicolon(d.sql)}\n)"])
                self._spec = None if failed else (d, features_version(d))
        return self._spec

    def rows(self, store, batch: WrittenBatch) -> dict[str, str] | None:
        """The SELECTs giving this batch's rows of :attr:`tables` (None: nothing to compute).

        The one definition of the pass: :meth:`on_write` inserts them in the writer, and a
        parser process runs them on its own in-memory store (:mod:`mast.store.ready`)."""
        spec = self._load(store)
        if spec is None:
            return None
        d, version = spec
        set_feature_views(store, f"SELECT * FROM {batch.steps}", f"SELECT * FROM {batch.traces}")
        if self._out is None:
            self._out = _columns(store, f"SELECT * FROM (\n{strip_semicolon(d.sql)}\n)")
        if self._out != _table_columns(store):
            return None
        # the version is "<header version>.<hex digest>": safe as a literal
        return {FEATURE_TABLE: f"SELECT * FROM (\n{strip_semicolon(d.sql)}\n)",
                FEATURE_TRACES: f"SELECT trace_id, '{version}' AS version FROM {batch.traces}"}

    def on_write(self, store, batch: WrittenBatch) -> None:
        for table, sql in (self.rows(store, batch) or {}).items():
            store.execute(f"INSERT INTO {batch.into(table)} BY NAME {sql}")


def ensure_features(store, d: Detector) -> int:
    """Make ``rule_step_features`` current for the selection (``temp.sel``); return traces computed.

    Only traces without rows of this version are computed: in one transaction, or, when
    that is every trace, in slices of :data:`WHOLE_STORE_SLICE` steps; when the file's
    output columns differ from the table's, the table is rebuilt (all traces become
    stale).  Then ``temp.rule_steps`` shows the selection's rows.
    """
    version = features_version(d)
    body = strip_semicolon(d.sql)
    set_feature_views(store, "SELECT * FROM main.steps", "SELECT * FROM main.traces")
    if not features_match_table(store, d):
        with store.transaction():
            store.execute(f"DROP TABLE IF EXISTS main.{FEATURE_TABLE}")
            store.execute(f"CREATE TABLE main.{FEATURE_TABLE} AS SELECT * FROM (\n{body}\n) LIMIT 0")
            store.execute(f"DELETE FROM main.{FEATURE_TRACES}")
    store.execute("CREATE OR REPLACE TEMP TABLE feature_todo AS SELECT s.trace_id FROM temp.sel s "
                  "JOIN main.traces t USING (trace_id) "
                  f"WHERE NOT EXISTS (SELECT 1 FROM main.{FEATURE_TRACES} f WHERE f.trace_id = s.trace_id "
                  "AND f.version = ?)", [version])
    todo = store.fetchall("SELECT count(*) FROM temp.feature_todo")[0][0]
    if todo and todo == store.fetchall("SELECT count(*) FROM main.traces")[0][0]:
        # A whole-store (re)computation: no semi-joins, and in slices of steps by rowid
        # (the scan reads only that range), one transaction each, so memory stays
        # bounded.  The versions are written last: a run stopped half-way leaves traces
        # without a version, which the next run recomputes from scratch.
        with store.transaction():
            store.execute(f"DELETE FROM main.{FEATURE_TABLE}")
            store.execute(f"DELETE FROM main.{FEATURE_TRACES}")
        top = store.fetchall("SELECT max(rowid) FROM main.steps")[0][0]
        with store.memory_limit(WHOLE_STORE_MEMORY_LIMIT):
            for lo in range(0, (top if top is not None else -1) + 1, WHOLE_STORE_SLICE):
                rng = f"rowid >= {lo} AND rowid < {lo + WHOLE_STORE_SLICE}"
                set_feature_views(store, f"SELECT * FROM main.steps WHERE {rng}",
                                  f"SELECT * FROM main.traces WHERE trace_id IN (SELECT trace_id FROM main.steps "
                                  f"WHERE {rng})")
                with store.transaction():
                    store.execute(f"INSERT INTO main.{FEATURE_TABLE} BY NAME SELECT * FROM (\n{body}\n)")
        with store.transaction():
            store.execute(f"INSERT INTO main.{FEATURE_TRACES} SELECT trace_id, ? FROM temp.feature_todo", [version])
    elif todo:
        set_feature_views(
            store, "SELECT * FROM main.steps WHERE trace_id IN (SELECT trace_id FROM temp.feature_todo)",
            "SELECT * FROM main.traces WHERE trace_id IN (SELECT trace_id FROM temp.feature_todo)")
        with store.transaction():
            for t in (FEATURE_TABLE, FEATURE_TRACES):
                store.execute(f"DELETE FROM main.{t} WHERE trace_id IN (SELECT trace_id FROM temp.feature_todo)")
            store.execute(f"INSERT INTO main.{FEATURE_TABLE} BY NAME SELECT * FROM (\n{body}\n)")
            store.execute(f"INSERT INTO main.{FEATURE_TRACES} SELECT trace_id, ? FROM temp.feature_todo", [version])
    store.execute("DROP TABLE IF EXISTS temp.feature_todo")
    selected = store.fetchall("SELECT count(*) FROM temp.sel")[0][0]
    if selected == store.fetchall("SELECT count(*) FROM main.traces")[0][0]:
        store.execute(f"CREATE OR REPLACE TEMP VIEW rule_steps AS SELECT * FROM main.{FEATURE_TABLE}")
    else:
        store.execute(f"CREATE OR REPLACE TEMP TABLE rule_steps_sel AS SELECT * FROM main.{FEATURE_TABLE} "
                      "WHERE trace_id IN (SELECT trace_id FROM temp.sel)")
        store.execute("CREATE OR REPLACE TEMP VIEW rule_steps AS SELECT * FROM temp.rule_steps_sel")
    return todo

"""The rules classifier: SQL detectors from ``classifiers/rules/`` run by DuckDB in one batch.

Contract of a rules folder (``classifiers/rules/`` by default; ``rules_dir=`` or the
environment variable ``MAST_RULES_DIR`` point elsewhere, e.g. in tests):

- ``_*.sql`` files are *preludes*, run first in name order.  ``_features.sql`` is a
  SELECT over the views ``feature_steps`` / ``feature_traces`` giving one narrow row of
  flags per step (error output, success claim, limit hit, fingerprint, ...).  Its rows
  are kept in the store (table ``rule_step_features``, versioned per trace in
  ``rule_feature_traces``): ingest computes them for every batch it stores (see
  :func:`ingest_features`), and a run computes them first only for selected traces
  whose rows are missing or of another ``_features`` version (stores ingested before,
  an edited ``_features.sql``).  Detectors read them as ``rule_steps``, so a run never
  scans the step text of traces whose features are current.
- Every other ``*.sql`` file is one *detector*: a single SELECT returning rows of
  ``(trace_id, mode, confidence, evidence_steps INTEGER[], rationale)`` for the traces
  where it found its failure mode.  Its header is a block of ``-- key: value`` comment
  lines: ``mode``, ``name``, ``version``, ``description`` (continuation lines start with
  ``--`` and more indentation).
- Detectors read the temporary views ``sel_traces`` and ``sel_steps`` (the selected
  traces and their steps), the table ``sel(trace_id)`` and ``rule_steps``.

Per run: every detector's rows become ``present`` annotations with evidence; for every
selected trace and every mode whose detectors all ran, a trace with no finding gets an
``absent`` annotation ("looked, found nothing"), so a mode no detector covers, or whose
detector failed, stays "not assessed".  A detector that fails (bad SQL, wrong columns,
a mode other than its header's) is reported by name in :attr:`Output.errors` and the
others still run.

Root cause: every trace with at least one finding whose outcome is not ``success`` gets
one attribution, the earliest evidence step over all findings (ties: the most
confident finding), with the agent of that step.  Traces recorded as successful get
none; traces of unknown outcome do, because most imported traces do not record their
outcome and a finding is itself a sign of failure.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.classify.contract import ClassifierBase, Option, Output
from mast.errors import MastError, UsageError
from mast.model import Annotation, Attribution, Label
from mast.resources import data_dir
from mast.settings import ENV
from mast.settings import current as current_settings

ENV_RULES_DIR = ENV["rules_dir"]
#: Bump when the runner's semantics change (merging, absent rows, attribution).
ENGINE_VERSION = "1"
_HEADER_RX = re.compile(r"^--\s?(?P<key>[a-z_]+):\s*(?P<value>.*)$")
_REQUIRED = ("name", "version", "description")


@dataclass(frozen=True)
class Detector:
    name: str
    mode: str | None  # None for a prelude
    version: str
    description: str
    path: Path
    sql: str

    @property
    def prelude(self) -> bool:
        return self.mode is None


@dataclass
class DetectorRun:
    """What one detector (or prelude) did in a run."""

    name: str
    mode: str | None
    seconds: float
    findings: int
    error: str | None = None


def default_rules_dir() -> Path:
    env = current_settings().rules_dir
    if env:
        return Path(env)
    return data_dir("classifiers") / "rules"


def parse_detector(path: Path) -> Detector:
    """Read one SQL file and its header; a header without mode is only allowed on preludes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read rule file: {e}") from None
    header: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("--"):
            if line.strip():
                break
            continue
        m = _HEADER_RX.match(line)
        if m:
            key = m.group("key")
            header[key] = m.group("value").strip()
        elif key:  # continuation of the previous key
            header[key] = (header[key] + " " + line[2:].strip()).strip()
    prelude = path.name.startswith("_")
    missing = [k for k in _REQUIRED + (() if prelude else ("mode",)) if not header.get(k)]
    if missing:
        raise UsageError(f"{path}: rule header lacks {', '.join(missing)}",
                         "Start the file with comment lines such as `-- mode: 1.3`, `-- name: ...`, "
                         "`-- version: 1`, `-- description: ...`.")
    return Detector(name=header["name"], mode=None if prelude else header["mode"], version=header["version"],
                    description=header["description"], path=path, sql=text)


def load_detectors(rules_dir: str | os.PathLike | None = None) -> list[Detector]:
    """Preludes first (name order), then detectors (file name order)."""
    d = Path(rules_dir) if rules_dir else default_rules_dir()
    if not d.is_dir():
        raise UsageError(f"rules folder {d} does not exist", f"Point -C rules_dir=DIR or {ENV_RULES_DIR} at a folder of .sql rules.")
    files = sorted(d.glob("*.sql"), key=lambda p: (not p.name.startswith("_"), p.name))
    dets = [parse_detector(p) for p in files]
    names = [x.name for x in dets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"rules folder {d}: duplicate detector name(s) {', '.join(dup)}")
    return dets


class RulesClassifier(ClassifierBase):
    name = "rules"
    kind = "rule"
    options = (
        Option("rules_dir", "Folder of SQL detectors (default: the shipped classifiers/rules).", setting="rules_dir"),
        Option("only", "Run only these detectors.", multiple=True),
        Option("chunk_size", "Traces read back per output (memory bound).", parse=int),
    )

    def __init__(self, rules_dir: str | os.PathLike | None = None, only: Sequence[str] | None = None,
                 chunk_size: int = 50_000):
        self.rules_dir = Path(rules_dir) if rules_dir else default_rules_dir()
        dets = load_detectors(self.rules_dir)
        if only:
            unknown = sorted(set(only) - {d.name for d in dets})
            if unknown:
                raise UsageError(f"unknown detector(s) {', '.join(unknown)}",
                                 "Known: " + ", ".join(d.name for d in dets if not d.prelude))
            dets = [d for d in dets if d.prelude or d.name in only]
        self.detectors = dets
        self.chunk_size = chunk_size
        digest = hashlib.sha256("\n".join(f"{d.name}@{d.version}" for d in dets).encode()).hexdigest()[:8]
        self.version = f"{ENGINE_VERSION}.{digest}"
        #: filled by :meth:`classify`: one entry per prelude and detector
        self.detector_runs: list[DetectorRun] = []

    # -- contract ---------------------------------------------------------------------
    def covers(self, taxonomy) -> set[str]:
        ids = set(taxonomy.mode_ids) if taxonomy is not None else None
        return {d.mode for d in self.detectors if not d.prelude and (ids is None or d.mode in ids)}

    def arguments(self) -> dict[str, Any]:
        return {"rules_dir": str(self.rules_dir),
                "detectors": {d.name: d.version for d in self.detectors}}

    def run_details(self) -> dict[str, Any]:
        return {"detectors": [{"name": r.name, "mode": r.mode, "seconds": round(r.seconds, 3),
                               "findings": r.findings, "error": r.error} for r in self.detector_runs]}

    def classify(self, store, trace_ids: Sequence[str]) -> Iterator[Output]:
        ids = list(trace_ids)
        if not ids:
            return
        prepare_selection(store, ids)
        self.detector_runs = run_detectors(store, self.detectors)
        errors = {r.name: r.error for r in self.detector_runs if r.error}
        failed_modes = {r.mode for r in self.detector_runs if r.error and r.mode}
        ok_modes = sorted({d.mode for d in self.detectors if not d.prelude} - failed_modes)
        has_features = not any(r.error for r in self.detector_runs if r.name == "_features") and any(
            r.name == "_features" for r in self.detector_runs)
        build_results(store, ok_modes, has_features)
        first = True
        for lo in range(0, len(ids), self.chunk_size):
            out = read_chunk(store, lo, lo + self.chunk_size)
            out.trace_ids = ids[lo:lo + self.chunk_size]
            if first:
                out.errors = dict(errors)
                first = False
            yield out


# -- the batch, as functions so the benchmark can time its parts ----------------------------

def prepare_selection(store, ids: Sequence[str]) -> None:
    """Temp table ``sel(i, trace_id)`` and the views detectors read."""
    store.execute("DROP TABLE IF EXISTS temp.sel")
    # Two unnests in one SELECT are zipped: i is the position of the id in ``ids``.
    store.execute("CREATE TEMP TABLE sel AS SELECT unnest(range(len(l)))::BIGINT AS i, unnest(l) AS trace_id "
                  "FROM (SELECT ?::VARCHAR[] AS l)", [list(ids)])
    total = store.fetchall("SELECT count(*) FROM traces")[0][0]
    if total == len(ids):
        # Everything is selected: read the tables directly (no semi-join over 20M steps).
        store.execute("CREATE OR REPLACE TEMP VIEW sel_traces AS SELECT * FROM main.traces")
        store.execute("CREATE OR REPLACE TEMP VIEW sel_steps AS SELECT * FROM main.steps")
    else:
        store.execute("CREATE OR REPLACE TEMP VIEW sel_traces AS "
                      "SELECT * FROM main.traces WHERE trace_id IN (SELECT trace_id FROM temp.sel)")
        store.execute("CREATE OR REPLACE TEMP VIEW sel_steps AS "
                      "SELECT * FROM main.steps WHERE trace_id IN (SELECT trace_id FROM temp.sel)")


# -- persistent per-step features ------------------------------------------------------------

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


def _set_feature_views(store, steps_sql: str, traces_sql: str) -> None:
    store.execute(f"CREATE OR REPLACE TEMP VIEW feature_steps AS {steps_sql}")
    store.execute(f"CREATE OR REPLACE TEMP VIEW feature_traces AS {traces_sql}")


def features_match_table(store, d: Detector) -> bool:
    """Whether ``_features.sql`` outputs exactly the columns of the stored table.

    Needs the views ``feature_steps``/``feature_traces`` (any rows: only bound, not run).
    """
    return _columns(store, f"SELECT * FROM (\n{_strip_semicolon(d.sql)}\n)") == _table_columns(store)


_INGEST_SPEC: dict[str, tuple[Detector, str] | None] = {}


def ingest_features(store, steps_table: str, traces_table: str, dest: str = "") -> bool:
    """Compute the features of a batch being stored (called by the store's write path).

    ``steps_table``/``traces_table`` hold exactly the rows being written, as stored
    (redacted); rows go to ``{dest}rule_step_features`` and ``{dest}rule_feature_traces``
    in the caller's transaction.  Uses ``_features.sql`` of the default rules folder
    (``MAST_RULES_DIR``); returns False, computing nothing, when there is none or its
    columns differ from the table's (the next rules run rebuilds and fills it).
    """
    rules_dir = str(default_rules_dir())
    if rules_dir not in _INGEST_SPEC:
        p = Path(rules_dir) / f"{FEATURES}.sql"
        spec = None
        if p.is_file():
            d = parse_detector(p)
            # A file that does not even bind (a rule author's typo) must not stop ingest:
            # checked once, on a cursor of its own, because any failed statement aborts
            # the caller's transaction.  The rules run then reports it by name.
            try:
                cur = store.con.cursor()
                try:
                    cur.execute("CREATE OR REPLACE TEMP VIEW feature_steps AS SELECT * FROM main.steps LIMIT 0")
                    cur.execute("CREATE OR REPLACE TEMP VIEW feature_traces AS SELECT * FROM main.traces LIMIT 0")
                    cur.execute(f"DESCRIBE SELECT * FROM (\n{_strip_semicolon(d.sql)}\n)").fetchall()
                    spec = (d, features_version(d))
                finally:
                    cur.close()
            except Exception:  # noqa: BLE001 - any failure: no features at ingest
                spec = None
        _INGEST_SPEC[rules_dir] = spec
    spec = _INGEST_SPEC[rules_dir]
    if spec is None:
        return False
    d, version = spec
    _set_feature_views(store, f"SELECT * FROM {steps_table}", f"SELECT * FROM {traces_table}")
    if not features_match_table(store, d):
        return False
    store.execute(f"INSERT INTO {dest}{FEATURE_TABLE} BY NAME SELECT * FROM (\n{_strip_semicolon(d.sql)}\n)")
    store.execute(f"INSERT INTO {dest}{FEATURE_TRACES} SELECT trace_id, ? FROM {traces_table}", [version])
    return True


def ensure_features(store, d: Detector) -> int:
    """Make ``rule_step_features`` current for the selection (``temp.sel``); return traces computed.

    Only traces without rows of this version are computed: in one transaction, or, when
    that is every trace, in slices of :data:`WHOLE_STORE_SLICE` steps; when the file's
    output columns differ from the table's, the table is rebuilt (all traces become
    stale).  Then ``temp.rule_steps`` shows the selection's rows.
    """
    version = features_version(d)
    body = _strip_semicolon(d.sql)
    _set_feature_views(store, "SELECT * FROM main.steps", "SELECT * FROM main.traces")
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
                _set_feature_views(store, f"SELECT * FROM main.steps WHERE {rng}",
                                   f"SELECT * FROM main.traces WHERE trace_id IN (SELECT trace_id FROM main.steps "
                                   f"WHERE {rng})")
                with store.transaction():
                    store.execute(f"INSERT INTO main.{FEATURE_TABLE} BY NAME SELECT * FROM (\n{body}\n)")
        with store.transaction():
            store.execute(f"INSERT INTO main.{FEATURE_TRACES} SELECT trace_id, ? FROM temp.feature_todo", [version])
    elif todo:
        _set_feature_views(
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


def run_detectors(store, detectors: Sequence[Detector]) -> list[DetectorRun]:
    """Run preludes then detectors into ``temp.rule_hits``; a failure is recorded, not raised.

    The ``_features`` prelude is :func:`ensure_features` (its ``findings`` count the
    traces whose features had to be computed).
    """
    store.execute("CREATE OR REPLACE TEMP TABLE rule_hits (detector VARCHAR, trace_id VARCHAR, mode VARCHAR, "
                  "confidence DOUBLE, evidence_steps INTEGER[], rationale VARCHAR)")
    runs: list[DetectorRun] = []
    prelude_error: str | None = None
    for d in detectors:
        t0 = time.perf_counter()
        if d.prelude:
            try:
                if is_features(d):
                    n = ensure_features(store, d)
                    runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, n))
                    continue
                store.execute(d.sql)
            except MastError as e:
                prelude_error = f"prelude {d.name} failed: {_short(e)}"
                runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, 0, _short(e)))
                continue
            runs.append(DetectorRun(d.name, None, time.perf_counter() - t0, 0))
            continue
        if prelude_error:
            runs.append(DetectorRun(d.name, d.mode, 0.0, 0, prelude_error))
            continue
        try:
            with store.transaction():
                store.execute(
                    "INSERT INTO temp.rule_hits SELECT ?, trace_id::VARCHAR, mode::VARCHAR, "
                    "least(1.0, greatest(0.0, confidence::DOUBLE)), evidence_steps::INTEGER[], rationale::VARCHAR "
                    f"FROM (\n{_strip_semicolon(d.sql)}\n) AS detector_rows", [d.name])
                bad = store.fetchall("SELECT count(*), any_value(mode) FROM temp.rule_hits "
                                     "WHERE detector = ? AND mode IS DISTINCT FROM ?", [d.name, d.mode])[0]
                if bad[0]:
                    raise UsageError(f"returned mode {bad[1]!r}, but its header says {d.mode!r}")
            n = store.fetchall("SELECT count(*) FROM temp.rule_hits WHERE detector = ?", [d.name])[0][0]
            runs.append(DetectorRun(d.name, d.mode, time.perf_counter() - t0, n))
        except MastError as e:
            runs.append(DetectorRun(d.name, d.mode, time.perf_counter() - t0, 0, f"{d.path.name}: {_short(e)}"))
    return runs


def build_results(store, ok_modes: Sequence[str], has_features: bool = True) -> None:
    """Merge findings per (trace, mode), add absent rows, pick the root cause per trace."""
    store.execute("""
        CREATE OR REPLACE TEMP TABLE rule_found AS
        SELECT trace_id, mode, max(confidence) AS confidence,
               list_sort(list_distinct(flatten(list(coalesce(evidence_steps, []))))) AS evidence_steps,
               string_agg(rationale, '; ' ORDER BY detector) AS rationale,
               string_agg(DISTINCT detector, ', ') AS detectors
        FROM temp.rule_hits WHERE trace_id IN (SELECT trace_id FROM temp.sel)
        GROUP BY trace_id, mode""")
    store.execute("""
        CREATE OR REPLACE TEMP TABLE rule_out AS
        SELECT s.i, s.trace_id, m.mode,
               CASE WHEN f.trace_id IS NULL THEN 'absent' ELSE 'present' END AS label,
               f.confidence, coalesce(f.evidence_steps, []::INTEGER[]) AS evidence_steps,
               CASE WHEN f.trace_id IS NULL THEN NULL ELSE f.rationale || ' [' || f.detectors || ']' END AS rationale
        FROM temp.sel s CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS mode) m
        LEFT JOIN temp.rule_found f ON f.trace_id = s.trace_id AND f.mode = m.mode""", [list(ok_modes)])
    # An execution output (a terminal's traceback) is evidence, but the agent to blame is
    # the one who asked for the execution: move such a root cause to the latest earlier
    # step that is not an execution output.
    author = ("(SELECT max(r.step) FROM temp.rule_steps r WHERE r.trace_id = b.trace_id AND r.step < b.step "
              "AND NOT r.is_exec)") if has_features else "NULL"
    is_exec = ("(SELECT any_value(r.is_exec) FROM temp.rule_steps r WHERE r.trace_id = b.trace_id "
               "AND r.step = b.step)") if has_features else "false"
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE rule_root AS
        WITH first AS (
            SELECT trace_id, mode, confidence, evidence_steps[1] AS step, detectors
            FROM temp.rule_found WHERE len(evidence_steps) > 0
        ),
        best AS (
            SELECT trace_id, arg_min(mode, (step, -confidence, mode)) AS mode, min(step) AS step,
                   arg_min(confidence, (step, -confidence, mode)) AS confidence,
                   arg_min(detectors, (step, -confidence, mode)) AS detectors
            FROM first GROUP BY trace_id
        ),
        moved AS (
            SELECT b.*, CASE WHEN coalesce({is_exec}, false) THEN {author} END AS author_step FROM best b
        )
        SELECT s.i, b.trace_id, st.agent, coalesce(b.author_step, b.step) AS step, b.confidence * 0.5 AS confidence,
               'earliest evidence of mode ' || b.mode || ' (' || b.detectors || ') at step ' || b.step
               || CASE WHEN b.author_step IS NOT NULL
                       THEN ', an execution output; blamed on the step that asked for it' ELSE '' END AS rationale
        FROM moved b JOIN temp.sel s USING (trace_id)
        JOIN main.traces t USING (trace_id)
        LEFT JOIN main.steps st ON st.trace_id = b.trace_id AND st.step = coalesce(b.author_step, b.step)
        WHERE t.outcome <> 'success'""")


def read_chunk(store, lo: int, hi: int) -> Output:
    out = Output()
    rows = store.fetchall("SELECT trace_id, mode, label, confidence, evidence_steps, rationale FROM temp.rule_out "
                          "WHERE i >= ? AND i < ? ORDER BY i, mode", [lo, hi])
    present, absent = Label.PRESENT, Label.ABSENT
    out.annotations = [Annotation(mode=m, label=present if lab == "present" else absent, annotator="rules",
                                  confidence=c, evidence_steps=list(ev or []), rationale=r, trace_id=t)
                       for t, m, lab, c, ev, r in rows]
    att = store.fetchall("SELECT trace_id, agent, step, confidence, rationale FROM temp.rule_root "
                         "WHERE i >= ? AND i < ? ORDER BY i", [lo, hi])
    out.attributions = [Attribution(annotator="rules", agent=a, step=s, confidence=c, rationale=r, trace_id=t)
                        for t, a, s, c, r in att]
    return out


def _strip_semicolon(sql: str) -> str:
    s = sql.rstrip()
    while s.endswith(";"):
        s = s[:-1].rstrip()
    return s


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:500] if str(e) else type(e).__name__



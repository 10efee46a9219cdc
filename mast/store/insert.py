"""The write path's INSERT statements: redaction (:mod:`mast.redact`) and casts, in DuckDB.

Every string a trace file can set goes through the secrets catalogue on its way in
(:func:`insert_sql`); ``redactions`` counts the markers added per row.  The columns of a
batch are first checked (:func:`check_sql`), and its INSERT then carries the catalogue's
chain only for the columns where some value holds a hint: the same
rows, without planning hundreds of regex calls for each column of short names.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Sequence

from mast.model import SCHEMA_VERSION
from mast.redact import sql_hinted, sql_markers, sql_matched, sql_redact
from mast.store.rows import attach, detach


def _matched(col: str) -> str:
    """Whether the catalogue's chain could change ``col``: it holds a hint and some pass matches.

    Most text holds no credential-like word; one RE2 scan for the hints is about 8 times
    cheaper than the catalogue's regexp_replace passes (see bench/RESULTS.md).  Of the
    values that do (code, prompts: "key", "token"), few match any pass, and one scan of
    all the passes at once tells them apart (:data:`mast.redact.ANY_PASS`); a CASE, so
    that scan runs only on the values with a hint.
    """
    return f"CASE WHEN {sql_hinted(col)} THEN {sql_matched(col)} ELSE false END"


def _redacted(col: str) -> str:
    """The redaction chain, run only on the values :func:`_matched` flagged (as ``_m_<col>``)."""
    return f"CASE WHEN _m_{col} THEN {sql_redact(col)} ELSE {col} END"


def _select(columns: Sequence[tuple[str, str]], redacted: Sequence[str], count: bool,
            scanned: frozenset[str] | None = None, seq: bool = False) -> str:
    """``INSERT ... BY NAME`` body: ``columns`` are (name, expression over the batch), where a
    redacted column ``c`` is read as ``_r_c``; with ``count``, also ``redactions``: the
    markers the catalogue added to this row (mast.redact: one per secret).

    ``scanned``: the redacted columns that get the catalogue's chain (None: all).  Any other
    is one where no value of the batch holds a hint (or every value is NULL), so the chain
    would give every value back unchanged: it is read as it is and adds no marker.  A value
    the chain was not run on is unchanged too, so its markers are counted only where it ran
    (counting them is two passes over the text, before and after).

    ``seq``: the batch's ``_seq`` (the row of a step's or label's trace) is kept, first, for
    rows made ready in a parser process (:mod:`mast.store.ready`)."""
    chained = [c for c in redacted if scanned is None or c in scanned]
    src = "{src}"
    if chained:
        src = f"(SELECT *, {', '.join(f'{_matched(c)} AS _m_{c}' for c in chained)} FROM {{src}})"
    inner = ", ".join(f"{_redacted(c) if c in chained else c} AS _r_{c}" for c in redacted)
    cols = (["_seq"] if seq else []) + [f"{expr} AS {name}" for name, expr in columns]
    if count:
        cols.append("(" + " + ".join(["0"] + [f"CASE WHEN _m_{c} THEN {sql_markers('_r_' + c)} - {sql_markers(c)} "
                                              "ELSE 0 END" for c in chained]) + ")::INTEGER AS redactions")
    return f"SELECT {', '.join(cols)} FROM (SELECT *, {inner} FROM {src})"


_TS = "try_cast({} AS TIMESTAMPTZ)::TIMESTAMP"
# Every stored string a trace file can set is redacted, identifiers included (an agent or
# tool named after a key, a key in a file name); not ids the store derives (trace_id),
# nor the importer's own names (source_format, kind).
_TRACE_TEXT = ("system", "framework", "source_path", "task", "metadata")
_STEP_TEXT = ("span_id", "parent_span_id", "agent", "role", "content", "tool_name", "tool_args", "target_agent",
              "status", "attributes")

# table -> (columns as (name, expression over the batch), the redacted ones, whether the
# row counts its redactions, whether it takes the write time as its one parameter)
_COLUMNS: dict[str, tuple[list[tuple[str, str]], tuple[str, ...], bool, bool]] = {
    "traces": ([
        ("trace_id", "trace_id"), ("system", "_r_system"), ("framework", "_r_framework"),
        ("source_format", "source_format"), ("source_path", "_r_source_path"), ("source_index", "source_index"),
        ("task", "_r_task"), ("outcome", "outcome"), ("started_at", _TS.format("started_at")),
        ("ended_at", _TS.format("ended_at")), ("n_steps", "n_steps"), ("n_agents", "n_agents"),
        ("tokens_in", "tokens_in"), ("tokens_out", "tokens_out"), ("cost_usd", "cost_usd"),
        ("metadata", "_r_metadata::JSON"), ("schema_version", str(SCHEMA_VERSION)), ("ingested_at", "?")],
        _TRACE_TEXT, True, True),
    "steps": ([
        ("trace_id", "trace_id"), ("step", "step"), ("span_id", "_r_span_id"), ("parent_span_id", "_r_parent_span_id"),
        ("agent", "_r_agent"), ("role", "_r_role"), ("kind", "kind"), ("content", "_r_content"),
        ("tool_name", "_r_tool_name"), ("tool_args", "_r_tool_args"), ("target_agent", "_r_target_agent"),
        ("started_at", _TS.format("started_at")), ("ended_at", _TS.format("ended_at")),
        ("tokens_in", "tokens_in"), ("tokens_out", "tokens_out"), ("cost_usd", "cost_usd"),
        ("status", "_r_status"), ("attributes", "_r_attributes::JSON")], _STEP_TEXT, True, False),
    "annotations": ([
        ("trace_id", "trace_id"), ("taxonomy", "taxonomy"), ("mode", "mode"), ("annotator", "_r_annotator"),
        ("run_id", "run_id"), ("label", "label"), ("confidence", "confidence"), ("evidence_steps", "evidence_steps"),
        ("rationale", "_r_rationale"), ("created_at", "?")], ("annotator", "rationale"), False, True),
    "attributions": ([
        ("trace_id", "trace_id"), ("annotator", "_r_annotator"), ("run_id", "run_id"), ("agent", "_r_agent"),
        ("step", "step"), ("confidence", "confidence"), ("rationale", "_r_rationale"), ("created_at", "?")],
        ("annotator", "agent", "rationale"), False, True),
}

# Every batch is first checked column by column, and the INSERT carries the catalogue's
# chain only for the columns where some value holds a hint.  Planning
# and starting the chain is a fixed cost per statement and per column whatever the rows
# (DuckDB binds every pattern and builds its RE2 programs: ~0.02 CPU-s a column, 0.18 s
# for the ten of a steps INSERT, one row or 30,000), while the hint scan costs ~0.004
# CPU-s per MB: on the framework corpora most columns of a 16 MB group hold no hint at
# all (bench/RESULTS.md, issue 13 session 6), so the check pays at every size.  It looks
# for hints only: asking for a pass match too spared the chain of a column whose hints
# match nothing, but cost more, the pass scan over the hinted step contents being run
# twice (bench/RESULTS.md, issue 16 session 6).


#: What the hint check reads of a column instead of the column itself.  A trace's metadata
#: holds mast's own ``"run_key":`` whenever the run has a key, and "key" followed by a quote
#: and a colon is a hint (a name ending in "key"), so every such trace's metadata took the
#: chain (openai-agents, 20 MB: ~0.07 CPU-s a run) although no shape can change it there: no
#: credential name the catalogue knows ends in "run_key", and the high-entropy detector's
#: candidate after it is the key's kind ("agents-sdk-trace"), words, never random.  The
#: chain still runs on every value of a column where anything else holds a hint.
_CHECKED_AS = {("traces", "metadata"): """replace(metadata, '"run_key":', '')"""}


@functools.lru_cache(maxsize=None)
def insert_sql(table: str, scanned: frozenset[str] | None, seq: bool = False) -> str:
    """The INSERT body of ``table`` from the registered batch ``{src}`` (see :func:`_select`)."""
    columns, redacted, count, _ = _COLUMNS[table]
    return _select(columns, redacted, count, scanned, seq)


def statement(con: Any, table: str, rows: Any, name: str, seq: bool = False) -> str:
    """The body for encoded ``rows`` of ``table`` attached as ``name``: a SELECT of the rows
    as stored (redacted, cast), for the store's INSERT or a parser's ready rows alike.

    The chain is planned only for the columns that need it: a column NULL in every row
    (Arrow counts nulls for free) holds no hint; the others are checked first (one
    statement on ``con`` for all of them), and one where no value holds a hint is read as
    it is (the chain would give every value back unchanged)."""
    return plan(con, table, rows, name, seq)[0]


def plan(con: Any, table: str, rows: Any, name: str, seq: bool = False) -> tuple[str, frozenset[str]]:
    """:func:`statement`, and the columns its body runs the catalogue's chain on (empty: the
    body only renames and casts, so it is cheap to evaluate twice)."""
    n = rows.num_rows
    live = tuple(c for c in redacted_columns(table) if rows.column(c).null_count < n)
    scanned: frozenset[str] = frozenset()
    if live:
        exprs = tuple(_CHECKED_AS.get((table, c), c) for c in live)
        [(flags,)] = con.execute(check_sql(exprs).replace("{src}", name)).fetchall()
        scanned = frozenset(c for c, f in zip(live, flags) if f)
    return insert_sql(table, scanned, seq).replace("{src}", name), scanned


@functools.lru_cache(maxsize=None)
def check_sql(cols: tuple[str, ...]) -> str:
    """One row: a list of whether some value holds a hint, per column.

    The hint pattern appears once (in a lambda over the row's columns), so DuckDB compiles
    it once rather than once per column."""
    flags = ", ".join(f"coalesce(bool_or(h[{i + 1}]), false)" for i in range(len(cols)))
    return (f"SELECT [{flags}] FROM (SELECT list_transform([{', '.join(cols)}], lambda v: {sql_hinted('v')}) AS h "
            "FROM {src})")


def redacted_columns(table: str) -> tuple[str, ...]:
    """The columns of ``table`` that are redacted (in the order of its INSERT's inner select)."""
    return _COLUMNS[table][1]


def takes_time(table: str) -> bool:
    """Whether the INSERT of ``table`` takes the write time as its one parameter."""
    return _COLUMNS[table][3]


def time_column(table: str) -> str | None:
    """The column of ``table`` that holds the write time (None: it has none)."""
    return next((name for name, expr in _COLUMNS[table][0] if expr == "?"), None)


def write(con: Any, table: str, rows: Any, into: str, now: Any, shown: str | None = None) -> str | None:
    """Insert encoded ``rows`` of ``table`` (Arrow or :class:`mast.store.rows.Columns`) into
    ``into`` on ``con``, redacted and cast (:func:`plan`); ``now`` is the write time.

    ``shown``: also leave the rows as stored readable as ``temp.<shown>`` for the write
    hooks, and return what that is (``"TABLE"`` or ``"VIEW"``; None: no rows), for
    :func:`unshow`.  A table when the INSERT runs the catalogue's chain or takes the write
    time: a redacted copy, so that the chain runs once.  Otherwise a view of the INSERT's
    body over the batch, which only renames and casts (to the stored types, as the copy has
    them): a copy of the rows fewer (crewai-steps, 20 MB: ~0.05 CPU-s)."""
    if not rows.num_rows:
        return None
    name = f"_mast_in_{table}"
    params = [now] if takes_time(table) else []
    attach(con, name, rows)
    kind, kept = None, False
    try:
        body, chained = plan(con, table, rows, name)
        if shown is None:
            con.execute(f"INSERT INTO {into} BY NAME " + body, params)
        elif chained or params:
            kind = "TABLE"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {shown} AS SELECT * FROM main.{table} LIMIT 0")
            con.execute(f"INSERT INTO temp.{shown} BY NAME " + body, params)
            con.execute(f"INSERT INTO {into} SELECT * FROM temp.{shown}")
        else:
            kind = "VIEW"
            cols = ", ".join(f'"{c}"::{ty} AS "{c}"' for c, ty in con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [table]).fetchall())
            con.execute(f"CREATE OR REPLACE TEMP VIEW {shown} AS SELECT {cols} FROM ({body})")
            con.execute(f"INSERT INTO {into} BY NAME SELECT * FROM temp.{shown}")
            kept = True  # the view reads the batch: unshow detaches it
    except BaseException:
        if kind:
            unshow(con, table, shown, kind, rows, attached=False)
        raise
    finally:
        if not kept:
            with contextlib.suppress(Exception):
                detach(con, name, rows)
    return kind


def unshow(con: Any, table: str, shown: str, kind: str, rows: Any, attached: bool = True) -> None:
    """Drop what :func:`write` left for the hooks as ``shown`` (a view before the batch it
    reads).  The DROP names the kind made: one of the wrong kind would fail, and so abort the
    caller's transaction."""
    with contextlib.suppress(Exception):
        con.execute(f"DROP {kind} IF EXISTS temp.{shown}")
    if kind == "VIEW" and attached:
        with contextlib.suppress(Exception):
            detach(con, f"_mast_in_{table}", rows)

"""User ``--where`` conditions, checked before they reach the store.

Contract: a condition is one SQL expression over the columns of ``traces`` (a subquery
may read ``traces`` again), and nothing else: no other table, no table function
(``read_csv``, ``read_text``, ``glob``, ``duckdb_tables()`` …), no file or network access.
:func:`checked_where` returns the expression as DuckDB re-renders it (one expression, so
it cannot close the caller's parenthesis or comment out the rest of its query) or raises
:class:`mast.errors.UsageError` saying why.

Two checks, both needed: the parsed syntax tree must name no table but ``traces`` and no
table function (which also keeps stored labels, runs and cached prompts out of reach), and
the expression must bind against an empty copy of ``traces`` in a throw-away in-memory
database whose external access is disabled and locked (so a file function spelt in a way
the tree walk misses still fails).  The store's own connection is never restricted:
DuckDB's setting is database-wide and cannot be turned back on.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import duckdb

from mast.errors import UsageError

HINT = "Example: --where \"outcome = 'failure' AND n_steps > 20\" (columns: `mast traces show ID --json`)."


def checked_where(con: duckdb.DuckDBPyConnection, expr: str, option: str = "--where") -> str:
    """``expr`` checked as a condition over ``traces`` (see the module docstring).

    ``con``: the store's connection, read only for the column names and types of ``traces``.
    """
    def refuse(why: str) -> UsageError:
        return UsageError(f"{option} may only refer to trace columns (a condition over the traces table): {why}",
                          HINT)

    try:
        rendered = str(duckdb.SQLExpression(expr))
    except duckdb.Error as e:
        raise refuse(_first_line(e)) from None
    columns = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = 'traces' AND table_schema = 'main' ORDER BY ordinal_position").fetchall()
    sandbox = duckdb.connect(":memory:")
    try:
        sandbox.execute("CREATE TABLE traces (" + ", ".join(f'"{n}" {t}' for n, t in columns) + ")")
        sandbox.execute("SET enable_external_access = false")
        sandbox.execute("SET lock_configuration = true")
        query = f"SELECT count(*) FROM traces WHERE (\n{rendered}\n)"
        try:
            [[tree]] = sandbox.execute("SELECT json_serialize_sql(?)", [query]).fetchall()
        except duckdb.Error as e:
            raise refuse(_first_line(e)) from None
        doc = json.loads(tree)
        if doc.get("error"):
            raise refuse(str(doc.get("error_message") or "not one SQL expression"))
        if len(doc.get("statements") or []) != 1:
            raise refuse("not one SQL expression")
        nodes = list(_nodes(doc))
        for node in nodes:  # file readers first: they are the reason for the rule
            if node.get("type") == "TABLE_FUNCTION":
                name = (node.get("function") or {}).get("function_name", "?")
                raise refuse(f"table function {name}() is not allowed")
        for node in nodes:
            if node.get("type") == "BASE_TABLE" and (node.get("table_name", "").lower() != "traces"
                                                     or node.get("schema_name", "").lower() not in ("", "main")
                                                     or node.get("catalog_name")):
                raise refuse(f"table {_qualified(node)} is not allowed")
        try:
            sandbox.execute(query).fetchall()
        except duckdb.Error as e:
            raise refuse(_first_line(e)) from None
    finally:
        sandbox.close()
    return rendered


def _nodes(doc: Any) -> Iterator[dict]:
    stack = [doc]
    while stack:  # iterative: a deeply nested expression must not exhaust Python's stack
        x = stack.pop()
        if isinstance(x, dict):
            yield x
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def _qualified(node: dict) -> str:
    return ".".join(p for p in (node.get("catalog_name"), node.get("schema_name"), node.get("table_name")) if p)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

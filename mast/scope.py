"""Which traces a question is about: every trace in the store, or those of some systems.

Contract: a trace whose ``system`` is NULL belongs to the system :data:`UNKNOWN_SYSTEM`
wherever results are grouped or filtered by system (report, export, coordination,
agreement), so it can be selected like any other system.
"""

from __future__ import annotations

from typing import Sequence

UNKNOWN_SYSTEM = "(unknown)"


def traces_sql(systems: Sequence[str] | None = None, columns: str = "*") -> tuple[str, list]:
    """A query over ``traces`` (``columns``, plus ``sys``: the system, never NULL),
    restricted to ``systems`` when any are given; and its parameters."""
    sql = f"SELECT {columns}, coalesce(system, ?) AS sys FROM traces"
    if systems:
        return sql + " WHERE coalesce(system, ?) IN (SELECT unnest(?))", [UNKNOWN_SYSTEM, UNKNOWN_SYSTEM, list(systems)]
    return sql, [UNKNOWN_SYSTEM]

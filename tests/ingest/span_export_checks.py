"""Checks shared by the span-export importers' tests (Phoenix, Langfuse, span trees): helper, not a test module.

Each check computes what a correct import must hold from the *export itself* (its spans or
observations, as the exporting tool wrote them), independently of mast's golden summaries.
"""

from __future__ import annotations

from pathlib import Path

from mast.store import Store


def steps_of(db: Path) -> list[list[tuple]]:
    """Per trace (in file order), its steps as (agent, kind, tool_name, status, target, tokens_in, tokens_out)."""
    with Store(db, read_only=True) as st:
        tids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces ORDER BY source_path, source_index")]
        return [st.fetchall("SELECT agent, kind, tool_name, status, target_agent, tokens_in, tokens_out "
                            "FROM steps WHERE trace_id = ? ORDER BY step", [t]) for t in tids]


def tool_names(steps: list[tuple], kind: str = "tool_call") -> list[str]:
    return [s[2] for s in steps if s[1] == kind]

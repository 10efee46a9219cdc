"""A rule's rationale is the same text on every run: every ``string_agg`` orders what it joins.

DuckDB aggregates in parallel, so a ``string_agg`` without ``ORDER BY`` joins its parts in
whatever order the threads finish.  The judge's prompt quotes the rules' rationales and its
cache keys on the prompt, so an unordered join made a rerun of `mast evaluate-judge` ask the
model again for a trace whose two repeats came back in the other order (seen under load).
"""

from __future__ import annotations

from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "classifiers" / "rules"


def _calls(sql: str, name: str):
    """The argument text of every ``name(...)`` call (parentheses matched, quotes skipped)."""
    low, i = sql.lower(), 0
    while (i := low.find(name + "(", i)) >= 0:
        depth, j, quote = 0, i + len(name), None
        while j < len(sql):
            c = sql[j]
            if quote:
                quote = None if c == quote else quote
            elif c in "'\"":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        yield sql[i + len(name) + 1:j]
        i = j


@pytest.mark.parametrize("path", sorted(RULES.rglob("*.sql")), ids=lambda p: str(p.relative_to(RULES)))
def test_every_string_agg_orders_its_parts(path):
    sql = "\n".join(line.split("--", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    unordered = [a.strip()[:60] for a in _calls(sql, "string_agg") if "order by" not in a.lower()]
    assert not unordered, f"{path.name}: string_agg without ORDER BY: {unordered}"

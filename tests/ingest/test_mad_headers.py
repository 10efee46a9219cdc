"""The MAD splitters' linear header scan finds exactly the matches of the regex it replaces.

``_headers(text, rx)`` must equal ``list(rx.finditer(text))`` match for match (span and
groups), for every splitter's header pattern, on texts made of pieces of real headers,
newlines and noise, so that block boundaries and every classified step stay as they were.
"""

from __future__ import annotations

import random
import re

import pytest

from mast.ingest.formats.mad import split as S

PIECES = [
    "\n", "\n\n", " ", "  ", "x", "é", "_", "1", "-", "|", ":", "(", ")", "[", "]", "*", "#",
    "[2024-28-03 10:11:12 INFO] ", "**A<->B on : Coding, turn 1**", "**[Start Chat]**", "Chief: ", "Chief",
    "2024-03-28 10:11:12.345 | INFO     | metagpt.roles.role:_act:391 - ", "Alice(SimpleCoder): ",
    "[2024-03-28 10:11:12] FROM: X TO: Y", "[2024-03-28 10:11:12] NEW MESSAGES:", "=== Round 1 ===",
    "Response from Supervisor Agent", "    Message to Spotify Agent", "Code Execution Output", "Evaluation",
    "---------- Orchestrator ----------", "SCENARIO.PY STARTING !#!#", "HyperAgent_abc - INFO - ",
    "Planner's Response:", "Navigator->Planner: ", "Intern Name: Codebase Navigator", "tools._run(", "\t",
]
PATTERNS = [rx for rx, _ in S._TEXT_SPLITTERS.values()] + [
    S._INTERN,
    re.compile(r"^(Chief|HyperAgent_\w+)\s*", re.M),  # a header that can end after a newline, at the next one
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))


def _spans(ms):
    return [(m.span(), m.groups()) for m in ms]


@pytest.mark.parametrize("rx", PATTERNS, ids=lambda rx: rx.pattern[:24])
def test_headers_are_finditer(rx):
    rng = random.Random(rx.pattern)
    found = 0
    for _ in range(3000):
        text = _text(rng)
        want = list(rx.finditer(text))
        assert _spans(S._headers(text, rx)) == _spans(want), repr(text)
        assert _spans(S._headers(text, rx, limit=2)) == _spans(want[:2]), repr(text)
        found += len(want)
    assert found > 20  # the texts do hold headers: the comparison is not of empty lists


def test_tool_run_is_search():
    rng = random.Random(7)
    hits = 0
    for _ in range(5000):
        # words longer than the first search's reach (S._TOOL_WORD) and words right at it too
        long = "x" * rng.choice([S._TOOL_WORD - 1, S._TOOL_WORD, S._TOOL_WORD + 1, 60])
        text = _text(rng) + rng.choice(["", "._run(", "a._run(", "é_1._run(", long + "._run(", "_" + long + "._run(",
                                        " ._run(" + long + "._run("]) + _text(rng)
        want = S._TOOL_RUN.search(text)
        got = S._tool_run(text)
        assert (got and (got.span(), got.groups())) == (want and (want.span(), want.groups())), repr(text)
        hits += want is not None
    assert hits > 500

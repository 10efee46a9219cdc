"""Trace text, identifiers and file names never act on the terminal (issue 11).

An escape sequence in a trace ("\\x1b[2J" clears the screen), a one-byte CSI, a bell, a
right-to-left override, or rich markup ("[bold]", an unbalanced "[/]") must print as
visible text in `traces list` / `traces show` and in error lines; `--json` stays exact.
"""

from __future__ import annotations

import json

from conftest import unwrapped
from mast.model import Outcome, Step, StepKind, Trace
from mast.store import Store

EVIL = "a\x1b[2Jb\x9b31mc\x07d\u202ee[bold]f[/]g\x1b]0;title\x07"
RAW = ("\x1b", "\x9b", "\x07", "\u202e")


def _store(db) -> str:
    t = Trace(system="sys" + EVIL, framework=None, source_format="test", source_path="p" + EVIL, source_index=0,
              task="task" + EVIL, outcome=Outcome.FAILURE,
              steps=[Step(agent="agent" + EVIL, content="line1\nline2" + EVIL, kind=StepKind.MESSAGE, role="assistant",
                          target_agent="to" + EVIL),
                     Step(agent="tools", content=None, kind=StepKind.TOOL_CALL, role="assistant",
                          tool_name="tool" + EVIL, tool_args='{"q": "\x1b[31m"}')])
    with Store(db) as st:
        with st.transaction():
            st.write_traces([t])
    return t.trace_id


def _clean(text: str) -> None:
    for c in RAW:
        assert c not in text, repr(c)


def test_traces_list_and_show_escape_control_characters(db, mast, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per row: the cells can be read whole
    tid = _store(db)
    listed = mast("traces", "list").stdout
    _clean(listed)
    assert "\\x1b[2J" in listed and "[bold]" in listed
    shown = mast("traces", "show", tid[:10], "--width", "400").stdout
    _clean(shown)
    flat = unwrapped(shown)
    for visible in ("sysa\\x1b[2Jb\\x9b31mc\\x07d\\u202ee[bold]f[/]g", "agenta\\x1b[2J", "tool",
                    "taska\\x1b[2J", "pa\\x1b[2J"):
        assert visible in flat, visible


def test_json_output_stays_exact(db, mast):
    tid = _store(db)
    shown = json.loads(mast("traces", "show", tid, "--json").stdout)
    assert shown["trace"]["system"] == "sys" + EVIL
    assert shown["steps"][0]["agent"] == "agent" + EVIL
    assert json.loads(mast("traces", "list", "--json").stdout)[0]["task"] == "task" + EVIL


def test_error_lines_escape_file_names(tmp_path, db, mast):
    bad = tmp_path / "bad\x1b[2Jname\nforged line.json"
    bad.write_text('[{"role": "user", "content": "hi"}, {"role": ', encoding="utf-8")
    res = mast("ingest", bad, expect=1)
    _clean(res.stderr)
    assert "bad\\x1b[2Jname\\nforged line.json" in unwrapped(res.stderr)
    assert "\nforged line" not in res.stderr

"""Plain lines without rich (mast/cli/_plain.py), held to rich itself.

The CLI writes plain text to a stderr that is not a terminal without importing rich; what
it writes must be what rich would have written: the same wrapping at the same width, and
the same decision of when rich would write plain at all.
"""

from __future__ import annotations

import io
import os
import random
import sys

import pytest
from rich.console import Console

from conftest import ROOT
from mast.cli import _plain
from mast.cli import _render

FIXTURE = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"


def _rich(text: str, width: int, soft_wrap: bool = False) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, force_jupyter=False).print(
        text, markup=False, highlight=False, soft_wrap=soft_wrap, style="red")
    return buf.getvalue()


def _texts(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    pieces = ["a", "bb", "ccc", "dddddddd", "x" * 13, "y" * 41, "×", "é", "-", "/", ":", "(", "]", "[a]",
              "path/to/file.json", "1", "\xa0", "ʼ"]
    out = ["", " ", "   ", "word", " lead", "trail ", "a  b", "x" * 200, "1 file(s) [autogen ×1]: 1 new trace(s), "
           "0 already present, 7 step(s), 0 error(s)"]
    for _ in range(n):
        words = [rnd.choice(pieces) * rnd.choice((1, 1, 1, 2, 5)) for _ in range(rnd.randint(1, 25))]
        seps = [rnd.choice((" ", " ", " ", "  ", "   ", "\xa0", "")) for _ in words]
        text = "".join(w + s for w, s in zip(words, seps))
        if rnd.random() < 0.2:
            text = " " * rnd.randint(1, 4) + text
        out.append(text)
    return [t for t in out if _plain.plain_text(t)]


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 13, 21, 40, 79, 80, 120])
def test_wrapping_is_richs(width):
    texts = _texts(300, width)
    assert len(texts) > 150
    for text in texts:
        assert _plain.render(text, width) == _rich(text, width), (text, width)
        assert _plain.render(text, width, soft_wrap=True) == _rich(text, width, soft_wrap=True), (text, width)


@pytest.mark.parametrize("text", ["tab\there", "line\nbreak", "wide 漢字", "emoji :smile: code", "a:b:c",
                                  "zero\u200bwidth", "soft\xadhyphen", "combining e\u0301", "esc \x1b[2J"])
def test_text_rich_would_change_or_measure_otherwise_is_left_to_rich(text):
    assert not _plain.plain_text(text)


def test_what_rich_would_print_plain_is_decided_as_rich_decides(monkeypatch):
    cases = [{}, {"COLUMNS": "37"}, {"COLUMNS": "0"}, {"COLUMNS": "wide"}, {"FORCE_COLOR": "1"},
             {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "1"}, {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
             {"TTY_COMPATIBLE": "0", "COLUMNS": "52"}]
    for env in cases:
        for k in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "LINES"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        console = Console(stderr=True)
        width = _plain.plain_width(True)
        if console.is_terminal or console.width == 0:
            assert width is None, env
        else:
            assert width == console.width, env


def test_a_terminal_is_left_to_rich(monkeypatch):
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
            monkeypatch.delenv("FORCE_COLOR", raising=False)
            assert Console(stderr=True).is_terminal
            assert _plain.plain_width(True) is None
            _render.new_consoles()
            assert _render.err.is_terminal
    finally:
        os.close(leader)
        os.close(follower)
        _render.new_consoles()


def _ingest_stderr(tmp_path, name: str, monkeypatch, plain: bool) -> str:
    from click.testing import CliRunner

    from mast.cli import cli

    if not plain:
        monkeypatch.setattr(_plain, "plain_width", lambda stderr: None)
    res = CliRunner().invoke(cli, ["-d", str(tmp_path / f"{name}.duckdb"), "ingest", str(FIXTURE)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    monkeypatch.undo()
    return res.stderr


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_an_ingest_writes_what_rich_writes(tmp_path, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    plain = _ingest_stderr(tmp_path, "plain", monkeypatch, True)
    monkeypatch.setenv("COLUMNS", columns)
    rich = _ingest_stderr(tmp_path, "rich", monkeypatch, False)
    assert "1 new trace(s)" in plain
    assert plain == rich

"""Shared test fixtures: real DuckDB files in a temp dir, never the user's home."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
MAD_HUMAN = DATASETS / "mast-human" / "MAD_human_labelled_dataset.json"
WHOWHEN = DATASETS / "who-and-when" / "Who&When"
COMMUNITY = DATASETS / "mast-lint-community" / "evals" / "dogfood"


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MAST_DB", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("MAST_JUDGE_MODEL", raising=False)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def mast(db):
    """Run the CLI in-process against the temp store: mast("ingest", path) -> Result."""
    runner = CliRunner()

    def run(*args, expect: int | None = 0, input: str | None = None):
        from mast.cli import cli
        res = runner.invoke(cli, ["-d", str(db), *map(str, args)], input=input, catch_exceptions=False)
        if expect is not None:
            assert res.exit_code == expect, f"exit {res.exit_code}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        return res

    return run


class _Unwrapped(str):
    """A panel's text as one line, where ``needle in text`` ignores whitespace: a panel
    wraps at a space (which joining the lines drops) or inside a long word, and where
    depends on the temp dir's name, so "not JSON" may come out as "notJSON"."""

    def __contains__(self, needle: object) -> bool:
        if not isinstance(needle, str):
            return super().__contains__(needle)
        return "".join(needle.split()) in "".join(self.split())


def unwrapped(text: str) -> str:
    """A CLI error panel's text as one line: borders dropped and wrapped lines joined, so
    a long path folded across lines (how far depends on the temp dir's name) still matches
    (``in`` ignores whitespace: see :class:`_Unwrapped`)."""
    return _Unwrapped("".join(line.strip("│╭╮╰╯─ ") for line in text.splitlines()))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is expected beside the clone)")
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def pytest_addoption(parser):
    parser.addoption("--real-model", action="store_true", default=False,
                     help="Run tests marked realmodel against a real API (needs OPENAI_API_KEY; never in CI).")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--real-model") and os.environ.get("OPENAI_API_KEY") and not os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="real-model test: opt in with --real-model and OPENAI_API_KEY (never in CI)")
    for item in items:
        if "realmodel" in item.keywords:
            item.add_marker(skip)

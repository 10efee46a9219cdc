"""Start-up: what each first command imports, and consoles that read COLUMNS per command.

No timing here (speed is measured by bench/startup_bench.py): a fresh interpreter runs
the command and reports which heavy libraries ended up in ``sys.modules``, so a change
that imports one at module level again fails here, on any machine, at any load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from mast.store.rows import SMALL_JOB_BYTES

FIXTURE = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"

HEAVY = ("duckdb", "polars", "sklearn", "openai", "jinja2", "pyarrow", "numpy", "rich", "pyarrow.compute",
         "pandas", "scipy", "httpx", "multiprocessing")
# Not third-party, but a tenth of a second or more of a start: the plugin lookup (with the
# email parser it brings; only needed when a distribution declares a mast plugin), the
# importer modules (`formats` lists them from a table), and the review and judge machinery
# with asyncio and ssl (an ingest needs them only for a labels file).
LIGHT_PATHS_SKIP = ("importlib.metadata", "email", "mast.ingest.formats", "mast.review", "mast.classify.judge",
                    "asyncio", "ssl")

# Runs the CLI in-process in a fresh interpreter, then prints the heavy modules loaded.
_PROBE = """
import json, sys
from click.testing import CliRunner
import mast.cli
args = json.loads(sys.argv[1])
res = CliRunner().invoke(mast.cli.cli, args, catch_exceptions=False) if args else None
print(json.dumps({"exit": res.exit_code if res else 0,
                  "loaded": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def _loaded(*args: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args)), json.dumps(modules)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert doc["exit"] == 0, run.stdout
    return doc["loaded"]


@pytest.mark.parametrize("args", [(), ("--help",), ("--version",), ("ingest", "--help"), ("report", "--help")])
def test_import_and_help_load_no_heavy_library(args):
    assert _loaded(*args) == []


def test_formats_loads_only_rich():
    # The table is drawn by rich; nothing else is needed to list the importers.
    assert _loaded("formats") == ["rich"]


@pytest.mark.parametrize("args", [("--help",), ("formats",), ("ingest", "FIXTURE")])
def test_no_plugin_lookup_importer_modules_or_judge_where_not_needed(args, tmp_path):
    args = tuple(str(FIXTURE) if a == "FIXTURE" else a for a in args)
    if args[0] == "ingest":
        args = ("-d", str(tmp_path / "s.duckdb"), *args)
    loaded = _loaded(*args, modules=LIGHT_PATHS_SKIP)
    # detection imports the importers, and duckdb imports importlib.metadata for its version
    allowed = {"mast.ingest.formats", "importlib.metadata", "email"} if "ingest" in args else set()
    assert set(loaded) - allowed == set()


def test_small_ingest_loads_only_the_store(tmp_path):
    # A small job is written from Python lists (mast.store.rows): DuckDB only; pyarrow (with
    # numpy) only for a job big enough to pay for its import; rich only for a terminal (the
    # summary line to a pipe is written plain: mast.cli._plain); multiprocessing only with
    # parser processes.
    loaded = set(_loaded("-d", str(tmp_path / "s.duckdb"), "ingest", str(FIXTURE)))
    assert loaded == {"duckdb"}


def test_a_big_job_still_takes_the_arrow_path(tmp_path):
    # the same file, grown past the small-job size by padding that JSON ignores
    big = tmp_path / "big.json"
    big.write_text(FIXTURE.read_text() + " " * (SMALL_JOB_BYTES + 1))
    loaded = set(_loaded("-d", str(tmp_path / "s.duckdb"), "ingest", str(big)))
    assert {"duckdb", "pyarrow"} <= loaded


_WIDTHS = """
import os, sys
from click.testing import CliRunner
from mast.cli import cli
widths = []
for columns in ("60", "150"):
    os.environ["COLUMNS"] = columns
    out = CliRunner().invoke(cli, ["formats"], catch_exceptions=False).stdout
    widths.append(max(len(line) for line in out.splitlines()))
print(*widths)
"""


def test_each_command_reads_columns_afresh():
    # rich fixes a console's width when COLUMNS is set at its creation; a console made at
    # import kept the first command's width for every later one in the same process.
    run = subprocess.run([sys.executable, "-c", _WIDTHS], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    narrow, wide = map(int, run.stdout.split())
    assert narrow <= 60 < wide <= 150

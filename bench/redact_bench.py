"""Redaction cost: the store's SQL chain over step text, this catalogue against another.

Run from the repository root:

    .venv/bin/python bench/redact_bench.py [--rows 200000] [--runs 3] [--against REV]

Takes the step contents and attributes of every trace under traces/ (what an ingest
stores), repeats them to --rows values, and times in an in-memory DuckDB, per column
kind: a plain copy, the hint pre-check alone, and the pre-check plus the catalogue (as
the store runs it). With --against, the same for the mast/redact.py of that git
revision (e.g. main), alternating runs so both see the same load. Prints MB/s and the
share of values that pass the pre-check. Never part of the test run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mast.ingest.pipeline import _importer, expand  # noqa: E402


def _module(rev: str | None):
    if rev is None:
        import mast.redact as m
        return m
    src = subprocess.run(["git", "show", f"{rev}:mast/redact.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "redact_rev.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("redact_rev", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _chain(m, col: str) -> tuple[str, str]:
    hints = getattr(m, "HINTS", None) or m._HINTS.pattern
    pre = f"regexp_matches({col}, '{hints.replace(chr(39), chr(39) * 2)}')"
    return pre, f"CASE WHEN {pre} THEN {m.sql_redact(col)} ELSE {col} END"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--against")
    a = ap.parse_args()
    values = {"content": [], "attributes": []}
    for f in expand([ROOT / "traces"]):
        try:
            imp, _ = _importer(f, "auto")
            traces = list(imp.read(f)) if imp else []
        except Exception:  # noqa: BLE001 - not a trace file
            continue
        for t in traces:
            for s in t.steps:
                if s.content:
                    values["content"].append(s.content)
                if s.attributes:
                    values["attributes"].append(json.dumps(s.attributes, ensure_ascii=False))
    con = duckdb.connect()
    for kind, vs in values.items():
        rows = (vs * (a.rows // max(len(vs), 1) + 1))[:a.rows]
        con.execute(f"CREATE TABLE {kind} (x VARCHAR)")
        con.executemany(f"INSERT INTO {kind} VALUES (?)", [[v] for v in rows]) if len(rows) < 5000 else \
            con.execute(f"INSERT INTO {kind} SELECT unnest(?)", [rows])
    mods = {"this": _module(None)}
    if a.against:
        mods[a.against] = _module(a.against)
    print(f"load average {os.getloadavg()[0]:.2f}; {a.rows:,} values per kind; {a.runs} runs (best)")
    for kind in values:
        mb = con.execute(f"SELECT sum(strlen(x)) / 1e6 FROM {kind}").fetchall()[0][0]
        best: dict[str, float] = {}
        for _ in range(a.runs):
            for name, m in mods.items():
                pre, full = _chain(m, "x")
                for label, expr in (("copy", "x"), (f"{name} pre-check", pre), (f"{name} redact", full)):
                    t0 = time.perf_counter()
                    con.execute(f"CREATE OR REPLACE TEMP TABLE out AS SELECT {expr} AS y FROM {kind}")
                    dt = time.perf_counter() - t0
                    best[label] = min(best.get(label, dt), dt)
        for name, m in mods.items():
            pre, _ = _chain(m, "x")
            share = con.execute(f"SELECT avg({pre}::INT) FROM {kind}").fetchall()[0][0]
            print(f"{kind} ({mb:.0f} MB), {name}: {share:.0%} of values pass the pre-check")
        for label, dt in best.items():
            print(f"  {label:>24}: {dt:6.2f} s  {mb / dt:6.0f} MB/s")


if __name__ == "__main__":
    main()

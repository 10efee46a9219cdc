"""Where an ingest's CPU goes, per component, in one process (the write path's profile).

    .venv/bin/python bench/ingest_profile.py <files or folders> [--workers 0] [--store DIR]

Runs :func:`mast.ingest.pipeline.ingest_paths` in this process with the rules' feature hook
(as ``mast ingest`` does) into a fresh store, and times every DuckDB statement by what it
does (a proxy in front of the store's connection), plus the parse side (``_parse_chunk``,
only when it runs in this process: ``--workers 0``, the default) and the closing
checkpoint.  Groups are committed in the foreground (no writer thread), so that each
component's CPU is its own.  CPU is ``time.process_time()``, which counts DuckDB's own threads; wall is
given beside it.  Works against another checkout too (put it first on PYTHONPATH), so a
before/after pair runs the same script.  Never part of the test run.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

CPU: dict[str, float] = defaultdict(float)
WALL: dict[str, float] = defaultdict(float)
COUNT: dict[str, int] = defaultdict(int)


def _kind(sql: str) -> str:
    s = " ".join(sql.split())[:400]
    if s.startswith(("COMMIT", "BEGIN", "ROLLBACK")):
        return s.split()[0].lower()
    if "rule_step_features" in s and s.startswith("INSERT"):
        return "feature pass INSERT"
    if "rule_feature_traces" in s and s.startswith("INSERT"):
        return "feature versions INSERT"
    if "coalesce(bool_or(" in s:
        return "hint check"
    m = re.match(r"INSERT INTO (\S+)", s)
    if m:
        return f"INSERT {m.group(1)} <- {'batch' if '_mast_in_' in sql else 'select'}"
    if s.startswith(("CREATE OR REPLACE TEMP VIEW feature", "DESCRIBE", "SELECT column_name")):
        return "feature views / checks"
    return "other statements"


class _Con:
    """The store's connection, with every ``execute`` timed by kind."""

    def __init__(self, con):
        self._c = con

    def execute(self, sql, *a, **k):
        kind = _kind(sql)
        c, w = time.process_time(), time.perf_counter()
        try:
            return self._c.execute(sql, *a, **k)
        finally:
            CPU[kind] += time.process_time() - c
            WALL[kind] += time.perf_counter() - w
            COUNT[kind] += 1

    def __getattr__(self, name):
        return getattr(self._c, name)


def _timed(obj, name: str, label: str) -> None:
    fn = getattr(obj, name)

    def wrapper(*a, **k):
        c, w = time.process_time(), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            CPU[label] += time.process_time() - c
            WALL[label] += time.perf_counter() - w
            COUNT[label] += 1

    setattr(obj, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--sql", action="append", default=[], help="a statement to run after opening (e.g. a SET)")
    ap.add_argument("--store", type=Path, default=None, help="folder for the store (default: a temp folder)")
    a = ap.parse_args()
    from mast.classify.hooks import ingest_hooks
    from mast.ingest import pipeline
    from mast.store import Store

    _timed(pipeline, "_parse_chunk", "parse + encode (_parse_chunk)")
    # process_time counts every thread: a writer thread running beside the parse would be
    # counted in both, so the groups are written in the foreground here.
    base = pipeline._GroupWriter

    class Foreground(base):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.background = False

    pipeline._GroupWriter = Foreground
    tmp = tempfile.TemporaryDirectory(dir=a.store)
    c0, w0 = time.process_time(), time.perf_counter()
    store = Store(Path(tmp.name) / "p.duckdb")
    for sql in a.sql:
        store.execute(sql)
    store._con = _Con(store._con)
    summary = pipeline.ingest_paths(store, a.paths, keep_going=True, workers=a.workers, hooks=ingest_hooks())
    c, w = time.process_time(), time.perf_counter()
    store._con = store._con._c
    store.close()
    CPU["close (checkpoint)"] += time.process_time() - c
    WALL["close (checkpoint)"] += time.perf_counter() - w
    COUNT["close (checkpoint)"] += 1
    total_c, total_w = time.process_time() - c0, time.perf_counter() - w0
    new = sum(f.traces_new for f in summary.files)
    steps = sum(f.steps for f in summary.files)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(summary.files)} files, {new} traces, {steps} steps; peak RSS {rss:.0f} MB; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| component | CPU s | wall s | calls |\n|---|---:|---:|---:|")
    for k in sorted(CPU, key=lambda k: -CPU[k]):
        print(f"| {k} | {CPU[k]:.2f} | {WALL[k]:.2f} | {COUNT[k]} |")
    print(f"| **whole ingest (store open to close)** | {total_c:.2f} | {total_w:.2f} | |")
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

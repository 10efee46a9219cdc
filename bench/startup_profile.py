"""Where one small ingest's fixed cost goes, phase by phase, in one process.

    .venv/bin/python bench/startup_profile.py [--runs 7] [--existing] [--sql] [FILE ...]

Each run is a fresh interpreter (``python -c``) that does what ``mast -d STORE ingest FILE``
does, in the CLI's order, timing each phase by ``time.process_time`` (CPU of every thread:
DuckDB's own included) and ``time.perf_counter`` (wall): the CLI's imports, ``import
duckdb``, the rest of the store, the hooks, the pipeline, opening the store (new, or with
``--existing`` a copy of a store already holding another file), ``ingest_paths`` (its SQL
statements timed one by one, by a proxy in front of the store's connection; ``--sql``
lists them), the summary line, closing the store.  The interpreter's own start is the
``python -c pass`` run beside it.  The table gives each phase's median over the runs.
Works against another checkout (put it first on PYTHONPATH).  Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/roundrobin/task_result.json"
SEED = ROOT / "tests/fixtures/frameworks/autogen/0.7.5/selector/task_result.json"

# The child: phases in the order `mast ingest` meets them.  Kept as source text so that
# each run is a fresh interpreter (imports are the point).
CHILD = r'''
import json, sys, time
P = []
_c, _w = time.process_time(), time.perf_counter()
def mark(name):
    global _c, _w
    c, w = time.process_time(), time.perf_counter()
    P.append((name, c - _c, w - _w))
    _c, _w = c, w
mark("interpreter to here (site, encodings)")
import click
import mast.cli
mark("click + mast.cli")
import duckdb
mark("import duckdb")
import mast.cli.ingest
mark("mast.cli.ingest")
from mast.classify.hooks import ingest_hooks
mark("mast.classify.hooks (rules' hook module, the store)")
from mast.ingest.pipeline import expand, ingest_paths, IngestLimits
mark("mast.ingest.pipeline (registry, writer, workers)")
from mast.labels_file import is_labels_file
from mast.store import Store
from mast.settings import current
obj = current().replace(db=sys.argv[1])
lim = IngestLimits.from_settings(obj)
files = expand(sys.argv[2:])
[is_labels_file(f) for f in files]
hooks = ingest_hooks(obj)
mark("settings, expand, labels check, ingest_hooks()")
SQL = []
import duckdb as _d
_connect = _d.connect
def connect(*a, **k):
    c0, w0 = time.process_time(), time.perf_counter()
    con = _connect(*a, **k)
    SQL.append(("connect", time.process_time() - c0, time.perf_counter() - w0))
    return Con(con)
class Con:
    def __init__(self, c): self._c = c
    def execute(self, sql, *a, **k):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return self._c.execute(sql, *a, **k)
        finally:
            SQL.append((" ".join(sql.split())[:90], time.process_time() - c0, time.perf_counter() - w0))
    def __getattr__(self, n): return getattr(self._c, n)
import mast.store.store as _ss
_ss.duckdb.connect = connect
store = Store(obj.db)
mark("store open (connect, migrations, stale runs)")
n_open = len(SQL)
summary = ingest_paths(store, files, "auto", None, False, None, hooks=hooks, limits=lim)
mark("ingest_paths")
from mast.cli._render import err
err.print(f"{len(summary.files)} file(s): {summary.traces_new} new", highlight=False, markup=False)
mark("summary line (rich console)")
store.close()
mark("store close (checkpoint)")
json.dump({"phases": P, "sql": SQL, "n_open": n_open, "modules": len(sys.modules)}, sys.stdout)
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=[SMALL])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--existing", action="store_true", help="ingest into a store already holding another file")
    ap.add_argument("--sql", action="store_true", help="list every SQL statement with its median CPU")
    a = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    py = sys.executable
    tmp = Path(tempfile.mkdtemp())
    seed = tmp / "seed.duckdb"
    subprocess.run([py, "-m", "mast", "-d", str(seed), "ingest", str(SEED)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs, bare = [], []
    load0 = os.getloadavg()[0]
    for i in range(a.runs + 1):
        db = tmp / f"r{i}.duckdb"
        if a.existing:
            shutil.copyfile(seed, db)
        t0 = os.times()
        w0 = time.perf_counter()
        subprocess.run([py, "-c", "pass"], check=True, env=env)
        t1 = os.times()
        bare_run = (t1.children_user + t1.children_system - t0.children_user - t0.children_system,
                    time.perf_counter() - w0)
        t0 = os.times()
        w0 = time.perf_counter()
        got = subprocess.run([py, "-c", CHILD, str(db), *map(str, a.files)], check=True, env=env,
                             capture_output=True, text=True)
        t1 = os.times()
        whole = (t1.children_user + t1.children_system - t0.children_user - t0.children_system,
                 time.perf_counter() - w0)
        if i:  # the first run warms the caches
            r = json.loads(got.stdout)
            r["whole"] = whole
            runs.append(r)
            bare.append(bare_run)
    load1 = os.getloadavg()[0]
    shutil.rmtree(tmp)
    med = statistics.median
    print(f"{'existing' if a.existing else 'new'} store, {', '.join(f.name for f in a.files)}; {a.runs} runs; load {load0:.2f} -> {load1:.2f}; "
          f"modules loaded {runs[0]['modules']}")
    print("\n| phase | CPU (median) | wall (median) |\n|---|---:|---:|")
    print(f"| `python -c pass` (interpreter start and exit) | {med(b[0] for b in bare):.3f} s | "
          f"{med(b[1] for b in bare):.3f} s |")
    names = [p[0] for p in runs[0]["phases"]]
    for k, name in enumerate(names):
        print(f"| {name} | {med(r['phases'][k][1] for r in runs):.3f} s | {med(r['phases'][k][2] for r in runs):.3f} s |")
    inside_c = med(sum(p[1] for p in r["phases"]) for r in runs)
    inside_w = med(sum(p[2] for p in r["phases"]) for r in runs)
    print(f"| **sum of the phases** | {inside_c:.3f} s | {inside_w:.3f} s |")
    print(f"| **whole process** (CPU of the child, wall of the run) | {med(r['whole'][0] for r in runs):.3f} s | "
          f"{med(r['whole'][1] for r in runs):.3f} s |")
    n_sql = [len(r["sql"]) for r in runs]
    open_c = med(sum(s[1] for s in r["sql"][:r["n_open"]]) for r in runs)
    ing_c = med(sum(s[1] for s in r["sql"][r["n_open"]:]) for r in runs)
    print(f"\nSQL: {n_sql[0]} statements ({runs[0]['n_open']} at open: {open_c:.3f} CPU-s; "
          f"{n_sql[0] - runs[0]['n_open']} in ingest_paths: {ing_c:.3f} CPU-s)")
    if a.sql and len(set(n_sql)) == 1:
        print("\n| # | statement | CPU (median) | wall (median) |\n|---:|---|---:|---:|")
        for k, (text, _, _) in enumerate(runs[0]["sql"]):
            print(f"| {k} | `{text}` | {med(r['sql'][k][1] for r in runs):.4f} | {med(r['sql'][k][2] for r in runs):.4f} |")


if __name__ == "__main__":
    main()

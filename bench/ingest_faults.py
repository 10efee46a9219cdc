"""Ingest faults on real resources (never part of the test run; figures in RESULTS.md).

```
.venv/bin/python bench/ingest_faults.py [--out bench/out/faults] [--skip-mount] [--skip-huge]
```

1. **Disk full (ENOSPC)**: the sample traces and the labelled data sets ingested into a
   store on a 3 MB tmpfs (mounting needs root; skipped otherwise, or with
   ``--skip-mount``); then the filesystem is grown and the same command rerun. Prints the
   exit status, the error lines (one, naming the input file), and whether the rerun store
   equals a clean one (traces and steps).
2. **A 200 MB message** in a JSON Lines file: with the default record cap (refused,
   naming file and line, without reading the line whole), and with the cap raised to
   300 MB (DuckDB runs out of memory at the default 256MB limit: the message names the
   input file). Peak RSS of each run.
3. **The line reader's cost**: reading a 100 MB JSON Lines file with the capped
   ``readline`` loop that ``mast.ingest._util.lines`` uses vs plain iteration over the
   file (paired, alternating, 5 rounds each), with the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def _mast(db: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mast", "-d", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _counts(db: Path) -> tuple[int, int]:
    out = json.loads(_mast(db, "stats", "--json").stdout)
    return sum(r["traces"] for r in out), sum(r["steps"] for r in out)


def disk_full(out: Path) -> None:
    inputs = [str(ROOT / "traces"), str(DATASETS / "mast-human" / "MAD_human_labelled_dataset.json"),
              str(DATASETS / "who-and-when")]
    mnt = out / "tiny"
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        print("disk full: cannot mount a tmpfs here (needs root): skipped")
        return
    try:
        db = mnt / "store.duckdb"
        t = time.perf_counter()
        res = _mast(db, "ingest", "--keep-going", *inputs)
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        print(f"disk full: exit {res.returncode} after {time.perf_counter() - t:.1f} s, {len(errors)} error line(s)")
        for ln in errors:
            print("  ", ln)
        subprocess.run(["mount", "-o", "remount,size=200m", str(mnt)], check=True)
        res = _mast(db, "ingest", "--keep-going", "--json", *inputs)
        summary = json.loads(res.stdout)
        clean = out / "clean.duckdb"
        clean.unlink(missing_ok=True)
        _mast(clean, "ingest", "--keep-going", *inputs)
        print(f"rerun: exit {res.returncode}, {summary['skipped_unchanged']} file(s) skipped, "
              f"{summary['traces_new']} new trace(s); store {_counts(db)} vs clean {_counts(clean)} (traces, steps)")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _peak_child_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def huge(out: Path) -> None:
    f = out / "huge" / "big.jsonl"
    f.parent.mkdir(parents=True, exist_ok=True)
    with open(f, "w", encoding="utf-8") as w:
        w.write(json.dumps({"role": "user", "content": "hi"}) + "\n" + '{"role": "assistant", "content": "')
        for _ in range(200):
            w.write("y" * 1_000_000)
        w.write('"}\n')
    for label, env in (("default cap", {}), ("cap 300 MB", {"MAST_INGEST_MAX_RECORD_MB": "300"})):
        db = out / "huge" / f"{label.replace(' ', '_')}.duckdb"
        db.unlink(missing_ok=True)
        t = time.perf_counter()
        res = _mast(db, "ingest", str(f), env=env)
        line = next((ln for ln in res.stderr.splitlines() if ln.startswith("error:")), "(no error)")
        print(f"200 MB message, {label}: exit {res.returncode} in {time.perf_counter() - t:.1f} s, "
              f"peak RSS so far {_peak_child_mb():,.0f} MB\n   {line}")


def line_reader(out: Path, rounds: int = 5) -> None:
    f = out / "lines.jsonl"
    if not f.exists():
        rec = json.dumps({"role": "assistant", "content": "word " * 40}) + "\n"
        with open(f, "w", encoding="utf-8") as w:
            w.write(rec * (100_000_000 // len(rec)))
    cap = 64_000_000

    def plain() -> int:
        n = 0
        with open(f, "rb") as fh:
            for _ in fh:
                n += 1
        return n

    def capped() -> int:
        n = 0
        with open(f, "rb") as fh:
            while fh.readline(cap + 1):
                n += 1
        return n

    times: dict[str, list[float]] = {"plain": [], "capped": []}
    for _ in range(rounds):
        for name, fn in (("plain", plain), ("capped", capped)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    print(f"line reader, 100 MB ({plain():,} lines), best of {rounds}: plain {best['plain']:.3f} s, capped "
          f"{best['capped']:.3f} s ({best['capped'] / best['plain'] - 1:+.0%}); load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "faults")
    ap.add_argument("--skip-mount", action="store_true")
    ap.add_argument("--skip-huge", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.skip_mount:
        disk_full(a.out)
    if not a.skip_huge:
        huge(a.out)
    line_reader(a.out)
    shutil.rmtree(a.out / "huge", ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: `mast report` over a store of 100,000 traces.

Builds the store from real traces: ingests the labelled data sets in ../shared/datasets
(Who&When, the MAST human file, the community AG2 set; falls back to traces/), runs the
rules over them, then replicates traces, steps, annotations and attributions inside
DuckDB with ``generate_series`` until the store holds ``--traces`` traces (replicas get
a new id suffix; every second replica is filed under "<system> v2" so the report has
twice the systems).  Then it times the report (context build and render separately)
``--runs`` times and prints the file size and what the explorer carried, and where the
context's time went: ``page_s`` (labels and the page-wide facts) and one figure per
section builder (``sections_s``), measured by wrapping each builder.

    .venv/bin/python bench/report_bench.py [--traces 100000] [--runs 2] [--keep DIR]

Targets (issue 6): ≤ 30 s and ≤ 25 MB for 100,000 traces.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mast.classify import create, names  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.ingest.pipeline import ingest_paths  # noqa: E402
import mast.report.context as report_context  # noqa: E402
from mast.report.context import build_context  # noqa: E402
from mast.report.sections import SECTIONS  # noqa: E402
from mast.report.html import render  # noqa: E402
from mast.store import Store  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
SOURCES = [DATASETS / "who-and-when" / "Who&When", DATASETS / "mast-human" / "MAD_human_labelled_dataset.json",
           DATASETS / "mast-lint-community" / "evals" / "dogfood"]


def build_base(path: Path) -> None:
    srcs = [p for p in SOURCES if p.exists()] or [ROOT / "traces"]
    with Store(path) as st:
        s = ingest_paths(st, srcs, keep_going=True)
        print(f"base: {s.traces_new} traces, {s.steps} steps from {len(s.files)} files "
              f"({len(s.errors)} files not traces: label companions)", file=sys.stderr)
        if "rules" in names():
            r = run(st, create("rules"), Selection())
            print(f"base: rules {r.annotations} annotations on {r.done} traces", file=sys.stderr)


def replicate(path: Path, n: int) -> dict:
    t0 = time.perf_counter()
    with Store(path) as st:
        base = st.fetchall("SELECT count(*) FROM traces")[0][0]
        reps = -(-n // base)
        st.execute("""CREATE TEMP TABLE rep AS
            WITH b AS (SELECT trace_id, row_number() OVER (ORDER BY trace_id) - 1 AS k FROM traces)
            SELECT b.trace_id AS base_id, g.i, b.trace_id || '-r' || g.i AS new_id
            FROM b, generate_series(1, ?) AS g(i) WHERE g.i * ? + b.k < ?""", [reps - 1, base, n])
        with st.transaction():
            st.execute("""INSERT INTO traces SELECT t.* REPLACE (r.new_id AS trace_id,
                              CASE WHEN r.i % 2 = 1 THEN t.system || ' v2' ELSE t.system END AS system)
                          FROM traces t JOIN rep r ON t.trace_id = r.base_id""")
            st.execute("""INSERT INTO steps SELECT s.* REPLACE (r.new_id AS trace_id)
                          FROM steps s JOIN rep r ON s.trace_id = r.base_id""")
            st.execute("""INSERT INTO annotations SELECT a.* REPLACE (r.new_id AS trace_id)
                          FROM annotations a JOIN rep r ON a.trace_id = r.base_id""")
            st.execute("""INSERT INTO attributions SELECT a.* REPLACE (r.new_id AS trace_id)
                          FROM attributions a JOIN rep r ON a.trace_id = r.base_id""")
        st.execute("CHECKPOINT")
        counts = {t: st.fetchall(f"SELECT count(*) FROM {t}")[0][0]
                  for t in ("traces", "steps", "annotations", "attributions")}
        counts["step_text_mb"] = round(st.fetchall("SELECT sum(length(content)) FROM steps")[0][0] / 1e6)
        counts["systems"] = st.fetchall("SELECT count(DISTINCT system) FROM traces")[0][0]
    counts["build_s"] = round(time.perf_counter() - t0, 1)
    counts["store_mb"] = round(path.stat().st_size / 1e6)
    return counts


def _timing_hooks() -> tuple[dict, object]:
    """Wrap each section's builder and the page's construction with a clock (in place: the
    context reads the same list); returns the figures and a function that undoes it."""
    spent: dict = {}
    original_sections, original_page = list(SECTIONS), report_context.Page

    def clocked(name, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = round(spent.get(name, 0) + time.perf_counter() - t, 2)
        return run

    for i, sec in enumerate(SECTIONS):
        if sec.build:
            SECTIONS[i] = dataclasses.replace(sec, build=clocked(sec.id, sec.build))
    report_context.Page = clocked("page", original_page)

    def undo():
        SECTIONS[:] = original_sections
        report_context.Page = original_page
    return spent, undo


def time_report(path: Path, out: Path) -> dict:
    spent, undo = _timing_hooks()
    with Store(path, read_only=True) as st:
        t0 = time.perf_counter()
        try:
            ctx = build_context(st)
        finally:
            undo()
        t1 = time.perf_counter()
        html = render(ctx)
        data = html.encode("utf-8")
        out.write_bytes(data)
        t2 = time.perf_counter()
    e = ctx.explorer
    return {"context_s": round(t1 - t0, 2), "render_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "mb": round(len(data) / 1e6, 2), "listed": e.listed, "detailed": e.detailed,
            "total_traces": e.total_traces, "agreement_pairs": len(ctx.agreement),
            "page_s": spent.pop("page", None), "sections_s": spent}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="Keep the store and report in this folder.")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="mast-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / f"report-{args.traces}.duckdb"
    try:
        if not store.exists():
            base = work / "base.duckdb"
            base.unlink(missing_ok=True)
            build_base(base)
            shutil.copy(base, store)
            print("replicated:", replicate(store, args.traces), file=sys.stderr)
        print(f"load average: {os.getloadavg()}", file=sys.stderr)
        for i in range(args.runs):
            r = time_report(store, work / "index.html")
            print(f"run {i + 1}: {r}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

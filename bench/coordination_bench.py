"""Benchmark: every coordination figure vs the rules run, on the same store of >= 1M traces.

    .venv/bin/python bench/coordination_bench.py [--db bench/out/coordination-bench.duckdb]
                                                 [--traces 1000000] [--steps 20000000] [--rebuild] [--repeat 2]
                                                 [--memory-limit 12GB|default] [--group N]

Build (once, kept for reruns): the store of ``rules_bench.py`` (the real labelled traces of
../shared/datasets replicated in DuckDB SQL with new ids until both sizes are met), with the
framework fixtures of ``tests/fixtures/frameworks`` and the sample ``traces/`` added to the
sources before replication, so the timed paths (spans with start and end, tool calls and
results, implicit handoffs) are exercised and not only chat logs without times.

Timed, in the same process and store, alternating per round:
- ``rules``: the selection set-up and every detector (what ``rules_bench.py`` times as
  ``rules``: the work ``mast classify --with rules`` does before it writes rows);
- ``coordination``: :func:`mast.coordination.analytics` with ``traces=False`` (every
  per-trace figure computed in DuckDB, rolled up per system, edges and exposure per
  topology; the per-trace rows stay in DuckDB); and ``coordination+rows``: the same plus
  reading every per-trace row into Python (what ``mast coordination --json`` adds).
Each round times coordination first, so the peak RSS after the first round's coordination
(``peak_rss_mb_coordination``) is the coordination's own (with the store open), before any
rules run; ``peak_rss_mb`` is the process's peak over everything.  ``--memory-limit
default`` leaves DuckDB's own limit (80% of RAM); ``--group`` passes the traces per pass.
Target: coordination within 2x the rules.  Load (``uptime``) is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the package beside it
sys.path.insert(0, str(HERE))

import rules_bench  # noqa: E402
from rules_bench import load  # noqa: E402

from mast.classify.rules import load_detectors, prepare_selection, run_detectors  # noqa: E402
from mast.coordination import analytics  # noqa: E402
from mast.store import Store  # noqa: E402

EXTRA_SOURCES = [ROOT / "tests" / "fixtures" / "frameworks", ROOT / "traces" / "ag2", ROOT / "traces" / "autogen",
                 ROOT / "traces" / "crewai", ROOT / "traces" / "langgraph", ROOT / "traces" / "otel"]


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return round(time.perf_counter() - t0, 2), r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default=str(HERE / "out" / "coordination-bench.duckdb"))
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=20_000_000)
    ap.add_argument("--max-trace-bytes", type=int, default=200_000)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="12GB", help="DuckDB memory_limit, or 'default' to leave it")
    ap.add_argument("--group", type=int, help="traces per pass of the coordination (default: the library's)")
    ap.add_argument("--rows", action="store_true", help="also time reading every per-trace row into Python")
    args = ap.parse_args()

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    info: dict = {"load_before": load()}
    if args.rebuild and db.exists():
        db.unlink()
    if not db.exists():
        # the rules bench's build, with timed framework traces among the sources; the
        # fixtures' metadata files (facts.json, golden.json) are not traces: skipped
        rules_bench.SOURCES = rules_bench.SOURCES + [p for p in EXTRA_SOURCES if p.exists()]
        _keep_going_ingest()
        info["build"] = rules_bench.build(db, args.traces, args.steps, args.max_trace_bytes)
    with Store(db) as store:
        store.execute(f"SET threads = {int(args.threads)}")
        if args.memory_limit != "default":
            store.execute(f"SET memory_limit = '{args.memory_limit}'")
        info["memory_limit"] = store.fetchall("SELECT current_setting('memory_limit')")[0][0]
        kw = {} if args.group is None else {"group": args.group}
        n_traces, = store.fetchall("SELECT count(*) FROM traces")[0]
        n_steps, timed_steps = store.fetchall("SELECT count(*), count(ended_at) FROM steps")[0]
        info.update(traces=n_traces, steps=n_steps, steps_with_end_time=timed_steps)
        dets = load_detectors()
        rounds = []
        ids = None
        for rep in range(args.repeat):
            r: dict = {}
            r["coordination_s"], res = timed(lambda: analytics(store, traces=False, **kw))
            if rep == 0:
                info["peak_rss_mb_coordination"] = _peak_mb()
            if args.rows:
                r["coordination_rows_s"], full = timed(lambda: analytics(store, traces=True, **kw))
                r["rows"] = len(full.traces)
            if ids is None:
                ids = [r[0] for r in store.fetchall("SELECT trace_id FROM traces")]
            t_sel, _ = timed(lambda: prepare_selection(store, ids))
            t_det, _ = timed(lambda: run_detectors(store, dets))
            r["rules_s"] = round(t_sel + t_det, 2)
            r["ratio"] = round(r["coordination_s"] / r["rules_s"], 2)
            r["timed_traces"] = sum(s.timed_traces for s in res.systems)
            r["topologies"] = {x.topology: x.traces for x in res.exposure_of(None)}
            rounds.append(r)
            print(f"round {rep + 1}: rules {r['rules_s']} s, coordination {r['coordination_s']} s "
                  f"(x{r['ratio']})" + (f", with rows {r['coordination_rows_s']} s" if args.rows else ""),
                  file=sys.stderr)
        info["rounds"] = rounds
    info["peak_rss_mb"] = _peak_mb()
    info["load_after"] = load()
    print(json.dumps(info, indent=2))
    return 0


def _peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _keep_going_ingest() -> None:
    """The rules bench ingests stopping at the first bad file; the fixture folders hold two
    JSON files that are not traces, so ingest past them (they are reported, not stored)."""
    original = rules_bench.ingest_paths

    def ingest(store, paths, fmt="auto", system=None, keep_going=False, *a, **kw):
        return original(store, paths, fmt, system, True, *a, **kw)

    rules_bench.ingest_paths = ingest


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: all rule detectors over a store of >= 1,000,000 traces and >= 20M steps.

    .venv/bin/python bench/rules_bench.py [--db /tmp/mast-rules-bench.duckdb] [--rebuild] [--repeat 2]

Build (once, kept for reruns): the real labelled traces of ../shared/datasets (Who&When,
MAST human file, mast-lint community) are ingested, then replicated in DuckDB SQL with
new trace ids (``<id>-r<k>``) until both targets are met.  Traces whose text exceeds
``--max-trace-bytes`` (the few raw MAD logs of several hundred KB) are not replicated,
to keep the store on disk within reason; every replicated step is real text.

Timed, in the same process and store:
- ``--feature-cost`` (once): the per-step feature pass (``_features.sql``) over the whole
  store, into a scratch temporary table: the work ingest does, batch by batch, when it
  stores the steps (an ingest-time cost, not part of a rules run);
- ``scan``: one full scan of the steps table that reads every byte of the step text
  (``contains(content, <absent string>)``), and a lighter scan (``strlen``) for reference;
- ``rules``: the selection set-up, the check that every selected trace has current
  features (computing those that do not: none in this store) and every detector (the
  work ``mast classify --with rules`` does before it writes rows), per part;
- ``results``: merging findings into present/absent rows and root causes (temp tables).
``--cold``: a first run on a store without feature rows (they are computed on demand).
Writing ~9 annotations per trace through the Python runner is not part of the detector
time; ``--classify`` also times the full ``mast classify`` run.
Load (``uptime``) is printed before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the package beside it

from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.classify.rules import (build_results, load_detectors, prepare_selection, run_detectors,  # noqa: E402
                                 set_feature_views, strip_semicolon)
from mast.ingest.pipeline import expand, ingest_paths  # noqa: E402
from mast.store import Store  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
SOURCES = [DATASETS / "who-and-when" / "Who&When", DATASETS / "mast-human" / "MAD_human_labelled_dataset.json",
           DATASETS / "mast-lint-community" / "evals" / "dogfood"]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def build(db: Path, traces: int, steps: int, max_trace_bytes: int) -> dict:
    t0 = time.perf_counter()
    with Store(db) as store:
        ingest_paths(store, expand([str(p) for p in SOURCES]), "auto", None, True, None, hooks=ingest_hooks())
        store.execute("CREATE OR REPLACE TABLE bench_src AS SELECT t.trace_id FROM traces t "
                      "JOIN (SELECT trace_id, sum(strlen(coalesce(content, ''))) AS b FROM steps GROUP BY 1) s "
                      "USING (trace_id) WHERE b <= ?", [max_trace_bytes])
        n_t, n_s, n_b = store.fetchall(
            "SELECT count(DISTINCT trace_id), count(*), sum(strlen(coalesce(content, ''))) FROM steps "
            "WHERE trace_id IN (SELECT trace_id FROM bench_src)")[0]
        factor = max(-(-traces // n_t), -(-steps // n_s))
        # Copies are numbered 1..factor-1; copy 0 is the original.  Ordered by copy so that
        # each storage segment holds different texts (no artificial dictionary compression).
        store.execute("SET preserve_insertion_order = true")
        with store.transaction():
            store.execute("""
                INSERT INTO traces SELECT t.trace_id || '-r' || k, system, framework, source_format, source_path,
                    source_index, task, outcome, started_at, ended_at, n_steps, n_agents, tokens_in, tokens_out,
                    cost_usd, metadata, schema_version, ingested_at
                FROM range(1, ?) r(k), traces t WHERE t.trace_id IN (SELECT trace_id FROM bench_src)""", [factor])
        with store.transaction():
            store.execute("""
                INSERT INTO steps SELECT s.trace_id || '-r' || k, step, span_id, parent_span_id, agent, role, kind,
                    content, tool_name, tool_args, target_agent, started_at, ended_at, tokens_in, tokens_out,
                    cost_usd, status, attributes
                FROM range(1, ?) r(k), (SELECT * FROM steps WHERE trace_id IN (SELECT trace_id FROM bench_src)) s""",
                          [factor])
        # The per-step rule features were computed by ingest for the real traces; a copy's
        # features are the original's (they do not depend on the trace id), so they are
        # replicated like the steps.  Their cost over the whole store is timed apart
        # (``--feature-cost``).
        with store.transaction():
            store.execute("""
                INSERT INTO rule_step_features SELECT f.* REPLACE (f.trace_id || '-r' || k AS trace_id)
                FROM range(1, ?) r(k), (SELECT * FROM rule_step_features WHERE trace_id IN
                                        (SELECT trace_id FROM bench_src)) f""", [factor])
            store.execute("""
                INSERT INTO rule_feature_traces SELECT f.trace_id || '-r' || k, version
                FROM range(1, ?) r(k), (SELECT * FROM rule_feature_traces WHERE trace_id IN
                                        (SELECT trace_id FROM bench_src)) f""", [factor])
        store.execute("CHECKPOINT")
    return {"source_traces": n_t, "source_steps": n_s, "source_bytes": n_b, "factor": factor,
            "build_seconds": round(time.perf_counter() - t0, 1)}


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="/tmp/mast-rules-bench.duckdb")
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=20_000_000)
    ap.add_argument("--max-trace-bytes", type=int, default=200_000)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="12GB")
    ap.add_argument("--classify", action="store_true", help="also time a full `mast classify --with rules` run")
    ap.add_argument("--feature-cost", action="store_true",
                    help="also time the feature pass over the whole store once (the ingest-time cost)")
    ap.add_argument("--cold", action="store_true",
                    help="finally delete every feature row and time the first rules run (a store ingested "
                         "before features were stored): features computed on demand, then the detectors")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    db = Path(args.db)
    info: dict = {"load_before": load()}
    if args.rebuild and db.exists():
        db.unlink()
    if not db.exists():
        info["build"] = build(db, args.traces, args.steps, args.max_trace_bytes)
    with Store(db) as store:
        store.execute(f"SET threads = {int(args.threads)}")
        store.execute(f"SET memory_limit = '{args.memory_limit}'")
        n_traces, = store.fetchall("SELECT count(*) FROM traces")[0]
        n_steps, n_bytes = store.fetchall("SELECT count(*), sum(strlen(coalesce(content, ''))) FROM steps")[0]
        info.update(traces=n_traces, steps=n_steps, content_gb=round(n_bytes / 1e9, 2),
                    db_gb=round(os.path.getsize(db) / 1e9, 2))
        ids = [r[0] for r in store.fetchall("SELECT trace_id FROM traces")]
        dets = load_detectors()
        if args.feature_cost:
            feat = next(d for d in dets if d.name == "_features")
            set_feature_views(store, "SELECT * FROM main.steps", "SELECT * FROM main.traces")
            info["load_before_feature_cost"] = load()
            t, _ = timed(lambda: store.execute("CREATE OR REPLACE TEMP TABLE bench_features AS SELECT * FROM (\n"
                                                + strip_semicolon(feat.sql) + "\n)"))
            same, = store.fetchall("SELECT count(*) FROM (SELECT * FROM temp.bench_features EXCEPT ALL "
                                   "SELECT * FROM main.rule_step_features)")[0]
            store.execute("DROP TABLE temp.bench_features")
            info["ingest_time_feature_cost_s"] = round(t, 1)
            info["feature_rows_differing_from_stored"] = same
            info["load_after_feature_cost"] = load()
            print(f"feature pass over the whole store (ingest-time cost): {t:.1f} s", file=sys.stderr)
        rounds = []
        for rep in range(args.repeat):
            r: dict = {}
            r["scan_all_bytes_s"], _ = timed(lambda: store.fetchall(
                "SELECT count(*) FROM steps WHERE contains(content, '\u2603no-such-text\u2603')"))
            r["scan_strlen_s"], _ = timed(lambda: store.fetchall(
                "SELECT count(*), sum(strlen(content)), count(agent), max(step) FROM steps"))
            r["select_s"], _ = timed(lambda: prepare_selection(store, ids))
            t_rules, runs = timed(lambda: run_detectors(store, dets))
            r["detectors"] = {x.name: {"s": round(x.seconds, 2), "findings": x.findings, "error": x.error}
                              for x in runs}
            r["rules_s"] = r["select_s"] + t_rules
            ok = sorted({d.mode for d in dets if not d.prelude} - {x.mode for x in runs if x.error})
            r["results_s"], _ = timed(lambda: build_results(store, ok))
            r["ratio_vs_scan_all_bytes"] = r["rules_s"] / r["scan_all_bytes_s"]
            r["ratio_vs_scan_strlen"] = r["rules_s"] / r["scan_strlen_s"]
            for k, v in list(r.items()):
                if isinstance(v, float):
                    r[k] = round(v, 2)
            rounds.append(r)
            print(f"round {rep + 1}: scan(all bytes) {r['scan_all_bytes_s']} s, scan(strlen) {r['scan_strlen_s']} s, "
                  f"rules {r['rules_s']} s (x{r['ratio_vs_scan_all_bytes']} / x{r['ratio_vs_scan_strlen']}), "
                  f"results {r['results_s']} s", file=sys.stderr)
        info["rounds"] = rounds
        if args.cold:
            with store.transaction():
                store.execute("DELETE FROM rule_step_features")
                store.execute("DELETE FROM rule_feature_traces")
            store.execute("CHECKPOINT")
            c: dict = {"load_before": load()}
            c["select_s"], _ = timed(lambda: prepare_selection(store, ids))
            t_rules, runs = timed(lambda: run_detectors(store, dets))
            c["rules_s"] = round(c["select_s"] + t_rules, 1)
            c["detectors"] = {x.name: {"s": round(x.seconds, 2), "findings": x.findings, "error": x.error}
                              for x in runs}
            c["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            c["load_after"] = load()
            info["cold"] = c
            print(f"cold run (features computed on demand): {c['rules_s']} s, peak RSS {c['peak_rss_mb']} MB",
                  file=sys.stderr)
    if args.classify:
        env = dict(os.environ)
        t, p = timed(lambda: subprocess.run([str(ROOT / ".venv" / "bin" / "mast"), "-d", str(db), "classify",
                                             "--with", "rules", "--json"], capture_output=True, text=True, env=env))
        info["classify_cli_s"] = round(t, 1)
        info["classify_cli_rc"] = p.returncode
    info["load_after"] = load()
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: `mast classify --with learned` (the root-cause model) vs the rules, same store.

    .venv/bin/python bench/learned_bench.py [--db bench/out/learned-bench.duckdb] [--traces 100000]
                                            [--steps 2000000] [--rebuild] [--train 10000] [--repeat 2]

Build (once, kept for reruns): the store of ``rules_bench.py`` (the real labelled traces
of ../shared/datasets replicated in SQL with new ids until both sizes are met).

Timed, each a separate ``mast`` process (exactly what a user runs), in this order, per round:
- ``rules``: ``mast classify --with rules --json`` over every trace;
- ``learned``: ``mast classify --with learned --json`` (the shipped default model) over
  every trace: it attributes the traces that failed (outcome ``failure`` or a mode
  labelled present, so after the rules run that is most of them).
Wall time and peak RSS of each process (``wait4``), and the ratio learned / rules.

Then, in this process, training on ``--train`` labelled traces: the human root causes of
the real Who&When traces copied onto as many of their replicas as needed, and
``learn_attribution`` timed twice: one fit with fixed hyperparameters (what the final
model costs) and the whole ``mast learn attribution`` job (nested 5-fold CV with the
inner hyperparameter search, then the final fit).  Copies of one trace land in different
folds, so the CV figures of that run mean nothing: only its time is kept.
Load (``uptime``) is printed before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the package beside it
sys.path.insert(0, str(HERE))

from rules_bench import build, load  # noqa: E402

from mast.classify.learned import train as T  # noqa: E402
from mast.classify.learned.ranker import fit  # noqa: E402
from mast.store import Store  # noqa: E402

MAST = ROOT / ".venv" / "bin" / "mast"


def measure(db: Path, *args: str) -> dict:
    """``run_cli`` in a child that reports its own child's peak RSS (ru_maxrss of wait4)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: exec mast with stdout/stderr to /dev/null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(str(MAST), [str(MAST), "-d", str(db), *args])
    _, status, ru = os.wait4(pid, 0)
    # CPU time beside wall time: on a shared machine the wall time mostly measures the queue
    return {"s": round(time.perf_counter() - t0, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
            "rc": os.waitstatus_to_exitcode(status), "peak_rss_mb": round(ru.ru_maxrss / 1024)}


def add_gold(store, n: int) -> int:
    """Copy the human root causes of the real traces onto replicas until ``n`` exist."""
    store.execute("DELETE FROM attributions WHERE annotator = 'bench:gold'")
    src = store.fetchall("SELECT count(*) FROM attributions WHERE annotator = 'human' AND step IS NOT NULL "
                         "AND trace_id NOT LIKE '%-r%'")[0][0]
    copies = -(-n // src)
    with store.transaction():
        store.execute("""
            INSERT INTO attributions (trace_id, annotator, run_id, agent, step, confidence, rationale, created_at)
            SELECT CASE WHEN k = 0 THEN a.trace_id ELSE a.trace_id || '-r' || k END, 'bench:gold', NULL,
                   a.agent, a.step, a.confidence, a.rationale, a.created_at
            FROM range(0, ?) r(k), attributions a
            WHERE a.annotator = 'human' AND a.step IS NOT NULL AND a.trace_id NOT LIKE '%-r%'
              AND (k = 0 OR EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = a.trace_id || '-r' || k))
            LIMIT ?""", [copies, n])
    return store.fetchall("SELECT count(*) FROM attributions WHERE annotator = 'bench:gold'")[0][0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default=str(HERE / "out" / "learned-bench.duckdb"))
    ap.add_argument("--traces", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=2_000_000)
    ap.add_argument("--max-trace-bytes", type=int, default=200_000)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--train", type=int, default=10_000, help="labelled traces to train on (0: skip)")
    ap.add_argument("--skip-classify", action="store_true")
    ap.add_argument("--no-cv", action="store_true", help="time only the final fit, not the nested-CV job")
    args = ap.parse_args()

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    info: dict = {"load_before": load()}
    if args.rebuild and db.exists():
        db.unlink()
    if not db.exists():
        info["build"] = build(db, args.traces, args.steps, args.max_trace_bytes)
    with Store(db, read_only=True) as store:
        info["traces"], info["steps"] = store.fetchall("SELECT (SELECT count(*) FROM traces), count(*) FROM steps")[0]
    rounds = []
    for rep in range([0, args.repeat][not args.skip_classify]):
        r = {"load": load(), "rules": measure(db, "classify", "--with", "rules", "--json"),
             "learned": measure(db, "classify", "--with", "learned", "--json")}
        r["ratio_learned_vs_rules"] = round(r["learned"]["s"] / r["rules"]["s"], 2)
        r["cpu_ratio_learned_vs_rules"] = round(r["learned"]["cpu_s"] / max(r["rules"]["cpu_s"], 0.1), 2)
        r["load_end"] = load()
        rounds.append(r)
        print(f"round {rep + 1}: rules {r['rules']['s']} s / {r['rules']['cpu_s']} s CPU "
              f"({r['rules']['peak_rss_mb']} MB), learned {r['learned']['s']} s / {r['learned']['cpu_s']} s CPU "
              f"({r['learned']['peak_rss_mb']} MB), ratio x{r['ratio_learned_vs_rules']} "
              f"(CPU x{r['cpu_ratio_learned_vs_rules']})", file=sys.stderr)
    info["rounds"] = rounds
    if args.train:
        with Store(db) as store:
            n = add_gold(store, args.train)
            info["train_traces"] = n
            t0 = time.perf_counter()
            golds, _ = T.load_gold(store, "bench:gold", None)
            data = T.load_data(store, golds)
            t_load = time.perf_counter() - t0
            rows, off, gold_rows = T._rows(data, range(len(golds)))
            t1 = time.perf_counter()
            fit(data.X[rows], off, gold_rows, l2=0.03)
            t_fit = time.perf_counter() - t1
            info["train_load_features_s"] = round(t_load, 1)
            info["train_one_fit_s"] = round(t_fit, 1)
            print(f"training on {n} traces ({len(data.table)} steps): features {t_load:.1f} s, one fit {t_fit:.1f} s",
                  file=sys.stderr)
            if not args.no_cv:
                t2, c2 = time.perf_counter(), time.process_time()
                T.learn_attribution(store, "bench:gold", k=5, compare=())
                info["train_learn_attribution_cv5_s"] = round(time.perf_counter() - t2, 1)
                info["train_learn_attribution_cv5_cpu_s"] = round(time.process_time() - c2, 1)
                print(f"mast learn attribution (nested 5-fold CV + final fit): "
                      f"{info['train_learn_attribution_cv5_s']} s, {info['train_learn_attribution_cv5_cpu_s']} s CPU",
                      file=sys.stderr)
            store.execute("DELETE FROM attributions WHERE annotator = 'bench:gold'")
    info["load_after"] = load()
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cascade benchmark: judge calls saved, and agreement with the teacher, on --traces runs.

1. A fresh store of ``--traces`` (10,000) synthetic runs (``tests/_teacher.py``, seeded),
   stored with the ingest write hooks (the rules' per-step features), as ``mast ingest``
   would store them.
2. ``tests/_openai_server.py --teacher`` started as a separate process with a fixed
   ``--latency``: a judge whose verdicts are a deterministic, learnable function of the
   trace text it is shown.
3. ``mast classify --with cascade`` through :func:`mast.classify.runner.run` with
   ``--judge-share``, ``--check-share``, ``--retrain-every``, ``--concurrency``.
   Reported: judge calls and the share saved, the cascade's own agreement figure (the
   learned tier's final model vs the judge on the random check sample, kappa per mode and
   macro with the bootstrap interval), wall time.
4. The truth the check sample estimates: the teacher's labels for *every* trace,
   computed offline from exactly the prompts the judge would be sent (the judge's jobs
   API renders them; nothing is sent), against the cascade's stored labels: over all
   traces, and over the traces the learned tier labelled.  Target (issue 10): >= 80 % of
   judge calls saved at kappa >= 0.8 with the teacher on the check sample.

Run: ``.venv/bin/python bench/cascade_bench.py [--traces 10000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _teacher import TAUGHT, synthetic_traces, teacher_verdicts  # noqa: E402

from mast.classify import create  # noqa: E402
from mast.classify.cascade.check import agreement  # noqa: E402
from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.classify.runner import Selection, run  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import load as load_taxonomy  # noqa: E402

MODEL = "gpt-4o-mini"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "_openai_server.py"), "--teacher",
                          "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("READY "):
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return p, line.split(" ", 1)[1]


def teacher_truth(store, ids: list[str], modes: list[str]) -> dict[str, np.ndarray]:
    """The teacher's labels per trace, from the prompts the judge would send (nothing is sent)."""
    jobs = create("judge", model=MODEL).jobs()
    out = {}
    for k in range(0, len(ids), 500):
        for job in jobs.jobs_for(store, ids[k:k + 500]):
            present = set()
            for msgs in job.messages:  # a trace of several windows: present in any window
                v = teacher_verdicts({"messages": msgs})
                present |= {m for m, x in v["verdicts"].items() if x["verdict"] == "present"}
            out[job.trace_id] = np.asarray([int(m in present) for m in modes])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--judge-share", type=float, default=0.15)
    ap.add_argument("--check-share", type=float, default=0.2)
    ap.add_argument("--retrain-every", type=int, default=250)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pick", default="uncertain", help="uncertain, or random (the baseline)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cascade-bench-"))
    db = tmp / "bench.duckdb"
    t0 = time.perf_counter()
    with Store(db) as st, st.transaction():
        st.write_traces(synthetic_traces(args.traces, seed=args.seed), ingest_hooks())
    t_store = time.perf_counter() - t0
    proc, url = start_server(args.latency)
    try:
        clf = create("cascade", model=MODEL, base_url=url, judge_share=args.judge_share,
                     check_share=args.check_share, retrain_every=args.retrain_every,
                     concurrency=args.concurrency, seed=args.seed, pick=args.pick, timeout=30)
        with Store(db) as st:
            load0 = os.getloadavg()[0]
            t1 = time.perf_counter()
            res = run(st, clf, Selection())
            t_run = time.perf_counter() - t1
            load1 = os.getloadavg()[0]
            modes = load_taxonomy("mast-v1").mode_ids
            ids = [r[0] for r in st.fetchall("SELECT trace_id FROM traces ORDER BY trace_id")]
            truth = teacher_truth(st, ids, modes)
            lab = {}
            tier = {}
            for t, m, present, why in st.fetchall(
                    "SELECT trace_id, mode, label = 'present', split_part(rationale, ':', 1) FROM annotations "
                    "WHERE annotator = ?", [clf.annotator]):
                lab.setdefault(t, {})[m] = int(present)
                tier[t] = why
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    d = res.details["cascade"]
    Y = np.vstack([truth[t] for t in ids])
    P = np.vstack([[lab[t][m] for m in modes] for t in ids])
    learned = np.asarray([tier[t] == "learned tier" for t in ids])
    vs_all = agreement(Y, P, modes, bootstrap=200)
    vs_learned = agreement(Y[learned], P[learned], modes, bootstrap=200)
    check = d["agreement"]
    out = {
        "traces": args.traces, "judge_share": args.judge_share, "check_share": args.check_share,
        "retrain_every": args.retrain_every, "pick": args.pick, "concurrency": args.concurrency,
        "latency": args.latency,
        "judged": d["judged"], "judge_calls": d["judge_calls"], "saved_share": d["saved_share"],
        "check_sample": d["check_sample"], "retrains": len(d["models"]), "cost_usd": d["cost_usd"],
        "check_macro_kappa": check["macro"]["kappa"], "check_macro_kappa_ci": check["macro"]["kappa_ci"],
        "check_modes": {m: check["modes"][m] for m in TAUGHT},
        "truth_all_macro_kappa": vs_all["macro"]["kappa"], "truth_all_modes": {m: vs_all["modes"][m]["kappa"]
                                                                               for m in TAUGHT},
        "truth_learned_macro_kappa": vs_learned["macro"]["kappa"], "truth_learned_n": vs_learned["n"],
        "truth_learned_modes": {m: vs_learned["modes"][m]["kappa"] for m in TAUGHT},
        "store_seconds": round(t_store, 1), "run_seconds": round(t_run, 1), "load": [load0, load1],
        "target_met": bool(d["saved_share"] >= 0.8 and (check["macro"]["kappa"] or 0) >= 0.8),
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"traces {out['traces']:,}: judge called on {out['judged']:,} ({out['saved_share']:.1%} saved), "
          f"check sample {out['check_sample']}, {out['retrains']} retrains, {out['run_seconds']} s "
          f"(load {load0:.1f} -> {load1:.1f})")
    lo, hi = out["check_macro_kappa_ci"]
    print(f"check sample: macro kappa {out['check_macro_kappa']} (95% CI {lo}..{hi})")
    for m in TAUGHT:
        c = out["check_modes"][m]
        print(f"  {m}: kappa {c['kappa']} CI {c['kappa_ci']} (judge present {c['judge_present']}); "
              f"truth all {out['truth_all_modes'][m]}, truth learned-labelled {out['truth_learned_modes'][m]}")
    print(f"truth (teacher on every trace vs the cascade's labels): macro kappa {out['truth_all_macro_kappa']} "
          f"over all, {out['truth_learned_macro_kappa']} over the {out['truth_learned_n']:,} the learned tier labelled")
    print("target met" if out["target_met"] else "target NOT met")


if __name__ == "__main__":
    main()

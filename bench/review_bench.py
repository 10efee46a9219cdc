"""Benchmark: what the human review loop costs at scale (a synthetic store).

    .venv/bin/python bench/review_bench.py [--traces 20000] [--repeat 2]

Builds a store in a temp dir: ``--traces`` traces of 8 steps over 20 systems, labelled on
all 14 modes by ``rules`` (with confidences) and by ``human:alice`` (agreeing with the
rules on 80% of the labels, by a fixed seed).  Timed, in this process:
- ``sample``: ``sample_for_review(100, strategy)`` for each strategy;
- ``evaluate``: ``agreement(human:alice, rules)`` with 0 and with 1,000 bootstrap
  resamples (the difference is the intervals' cost);
- ``review page``: ``write_review`` of a 2,000-trace review set.
Load (``uptime``) is printed before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from mast.evaluate import agreement
from mast.model import Annotation, Label, Outcome, Step, StepKind, Trace
from mast.report import write_review
from mast.review import STRATEGIES, sample_for_review
from mast.store import Store
from mast.taxonomy import load


def build(path: Path, n: int) -> None:
    rng = random.Random(0)
    modes = load().mode_ids
    traces, labels = [], []
    for i in range(n):
        steps = [Step(agent=f"agent{k % 3}", content=f"step {k} of trace {i}: some words here", kind=StepKind.MESSAGE)
                 for k in range(8)]
        t = Trace(system=f"sys{i % 20:02d}", framework="bench", source_format="messages", source_path="bench.json",
                  source_index=i, steps=steps, task=f"task {i}", outcome=Outcome.FAILURE).finalise()
        traces.append(t)
        for m in modes:
            p = rng.random() < 0.15
            labels.append(Annotation(mode=m, label=Label.PRESENT if p else Label.ABSENT, annotator="rules",
                                     trace_id=t.trace_id, confidence=rng.uniform(0.5, 1.0), evidence_steps=[1]))
            h = p if rng.random() < 0.8 else not p
            labels.append(Annotation(mode=m, label=Label.PRESENT if h else Label.ABSENT, annotator="human:alice",
                                     trace_id=t.trace_id))
    with Store(path) as st:
        with st.transaction():
            st.write_traces(traces)
        st.write_annotations(labels)


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    print("load before:", os.getloadavg())
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "review-bench.duckdb"
        t0 = time.perf_counter()
        build(db, a.traces)
        print(f"build: {a.traces} traces, {a.traces * 28} labels in {time.perf_counter() - t0:.1f} s")
        with Store(db) as st:
            for s in STRATEGIES:
                print(f"sample 100, {s}: {timed(lambda: sample_for_review(st, 100, strategy=s), a.repeat):.2f} s")
            base = timed(lambda: agreement(st, "human:alice", "rules", bootstrap=0), a.repeat)
            boot = timed(lambda: agreement(st, "human:alice", "rules", bootstrap=1000), a.repeat)
            print(f"evaluate human:alice vs rules: {base:.2f} s without intervals, {boot:.2f} s with 1,000 resamples")
            rs = sample_for_review(st, 2000, strategy="random")
            page = Path(d) / "review.html"
            t = timed(lambda: write_review(st, rs.review_set, page), a.repeat)
            print(f"review page, 2,000 traces: {t:.2f} s, {page.stat().st_size / 1e6:.1f} MB")
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()

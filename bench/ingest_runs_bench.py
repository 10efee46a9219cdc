#!/usr/bin/env python3
"""Ingest speed with run identity: paired runs of two checkouts on the same corpora.

    python bench/ingest_runs_bench.py --code A_CHECKOUT --code B_CHECKOUT [--pairs 2]

Two corpora, built once under ``bench/out/runs_corpus``:

- ``messages``: 3,000 small message-list files (8 messages each), no run ids (the corpus
  of the "Ingest fidelity" section);
- ``agentchat``: 300 copies of the AgentChat 0.7.5 selector fixture folder (5 artefacts of
  one run each: TaskResult, messages, run_stream, two event logs), every copy a new run
  (every UUID's first 8 hex digits replaced by the copy number, from 1): 1,500 files, 300 runs.

Each timing is one ``ingest_paths(..., workers=0)`` into a fresh store, in a subprocess
that imports mast from the checkout named (``--code``), alternating the checkouts.  Prints
the load average before and after, the seconds per run (wall clock, and CPU time of the process: less
sensitive to the other sessions on a shared machine), and the traces stored.  Never part
of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECTOR = ROOT / "tests" / "fixtures" / "frameworks" / "autogen" / "0.7.5" / "selector"
RUN_FILES = ("task_result.json", "messages.json", "run_stream.jsonl", "events.jsonl", "events.log")
UUID = re.compile(r"(?<![0-9a-f])[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f])")

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import mast
from mast.ingest.pipeline import ingest_paths
from mast.store import Store
t0, c0 = time.perf_counter(), time.process_time()
with Store(sys.argv[3]) as st:
    res = ingest_paths(st, [sys.argv[2]], workers=0, keep_going=True)
    n = st.fetchall("SELECT count(*) FROM traces")[0][0]
print(json.dumps({"s": time.perf_counter() - t0, "cpu": time.process_time() - c0, "traces": n,
                  "errors": len(res.errors), "mast": mast.__file__}))
"""


def build(out: Path) -> dict[str, Path]:
    msgs, ac = out / "messages", out / "agentchat"
    if not msgs.exists():
        msgs.mkdir(parents=True)
        for i in range(3000):
            conv = [{"role": "user" if k % 2 == 0 else "assistant", "name": f"agent{k % 2}",
                     "content": f"run {i}: message {k} about the task at hand"} for k in range(8)]
            (msgs / f"{i:05d}.json").write_text(json.dumps({"messages": conv}))
    if not ac.exists():
        # the five artefacts of the folder's one run (the folder has since gained
        # save_state.json and otel.otlp.json, each from another run)
        files = [SELECTOR / n for n in RUN_FILES]
        for i in range(300):
            d = ac / f"{i:04d}"
            d.mkdir(parents=True)
            for f in files:
                (d / f.name).write_text(UUID.sub(lambda m: f"{i + 1:08x}{m.group(1)}", f.read_text()))
    return {"messages": msgs, "agentchat": ac}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", action="append", type=Path, required=True, help="a checkout to import mast from")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "runs_corpus")
    args = ap.parse_args()
    corpora = build(args.out)
    print(f"load average before: {load()}")
    print("| corpus | run | " + " | ".join(c.name for c in args.code) + " |")
    print("|---|---|" + "---|" * len(args.code))
    for name, path in corpora.items():
        for k in range(args.pairs):
            cells = []
            for code in (args.code if k % 2 == 0 else args.code[::-1]):
                with tempfile.TemporaryDirectory() as tmp:
                    r = subprocess.run([sys.executable, "-c", CHILD, str(code.resolve()), str(path),
                                        str(Path(tmp) / "s.duckdb")], capture_output=True, text=True, check=True)
                    got = json.loads(r.stdout.strip().splitlines()[-1])
                    assert got["mast"].startswith(str(code.resolve())), got
                cells.append((code, f"{got['s']:.2f} s wall, {got['cpu']:.2f} s CPU ({got['traces']} traces)"))
            cells.sort(key=lambda c: args.code.index(c[0]))
            print(f"| {name} | {k + 1} | " + " | ".join(c for _, c in cells) + " |", flush=True)
    print(f"load average after: {load()}")
    shutil.rmtree(args.out / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()

"""The floor: what mast's guarantees cost with its own Python free, against the peer's whole run.

    .venv/bin/python bench/floor_bench.py [--out bench/out/peers] [--runs 3]
        [--only whowhen,mast_human,otlp] [--corpus trajectory openai-agents ...] [--size-mb 20]

A rate target against a tool that does less (a peer that writes JSON Lines, DuckDB's
``read_json``) is only reachable if what mast must do beyond it fits in the peer's time.
This measures, per input, three things mast cannot drop without dropping a guarantee:

- ``import duckdb``: the store's library, loaded before the first byte is stored
  (``python -c "import duckdb"``, a subprocess, min of ``--runs``);
- **JSON decode**: the standard library's ``json.loads`` of every file (every line of a
  ``.jsonl``), in one process, no objects built from it;
- **the store's statements**: the DuckDB statements of a real ingest of the input
  (redaction's pre-check and chains, the inserts, the rules' feature pass, the commits and
  the closing checkpoint, and making the new store's schema), timed one by one as
  ``bench/ingest_profile.py`` does, in a fresh process with no parser processes; mast's own Python (importers, encoding, run identity,
  the writer's bookkeeping) is left out.

Their sum is the floor in CPU-seconds.  The shortest wall time it allows is the longer of
the floor spread over every core and the serial chain of loading DuckDB and then running the
statements for as long as DuckDB took for them (the decode overlapping both).  The bounds printed are the peer's time over the floor's:
no implementation of these guarantees on this machine is faster than that.  Beside them,
the real CLI (``mast ingest``, parser processes as it chooses) and the peer, interleaved.

The peers are those of ``bench/peers_bench.py`` (its virtualenvs and inputs under
``--out``); ``--corpus`` takes the framework corpora of ``bench/ingest_frameworks_bench.py``
(built under bench/out as that script does) against ``read_json``.  Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as harness  # noqa: E402
import ingest_frameworks_bench as fw  # noqa: E402
import peers_bench as peers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _files(paths: list[Path]) -> list[Path]:
    return sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()
                  and f.suffix in (".json", ".jsonl"))


def inner(paths: list[Path]) -> dict:
    """In this (fresh) process: the decode pass, then a real ingest with its statements timed."""
    c = time.process_time()
    for f in _files(paths):
        data = f.read_bytes()
        if f.suffix == ".jsonl":
            for line in data.splitlines():
                if line.strip():
                    json.loads(line)
        else:
            json.loads(data)
    decode = time.process_time() - c

    import ingest_profile as prof
    from mast.classify.hooks import ingest_hooks
    from mast.ingest import pipeline
    from mast.store import Store
    import tempfile

    prof._timed(pipeline, "_parse_chunk", "parse")

    class Foreground(pipeline._GroupWriter):  # statements on this thread only: each CPU its own
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.background = False

    pipeline._GroupWriter = Foreground
    with tempfile.TemporaryDirectory() as tmp:
        c0, w0 = time.process_time(), time.perf_counter()
        store = Store(Path(tmp) / "f.duckdb")  # a new store: its schema is made here
        open_cpu, open_wall = time.process_time() - c0, time.perf_counter() - w0
        store._con = prof._Con(store._con)
        summary = pipeline.ingest_paths(store, paths, keep_going=True, workers=0, hooks=ingest_hooks())
        c1, w1 = time.process_time(), time.perf_counter()
        store._con = store._con._c
        store.close()
        close, close_wall = time.process_time() - c1, time.perf_counter() - w1
        whole = time.process_time() - c0
    statements = sum(v for k, v in prof.CPU.items() if k != "parse") + close + open_cpu
    statements_wall = sum(v for k, v in prof.WALL.items() if k != "parse") + close_wall + open_wall
    return {"decode_cpu": decode, "statements_cpu": statements, "statements_wall": statements_wall,
            "open_cpu": open_cpu, "parse_cpu": prof.CPU["parse"],
            "whole_cpu": whole, "steps": sum(f.steps for f in summary.files),
            "errors": sum(1 for f in summary.files if f.error)}


def _inner_run(paths: list[Path]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])}
    r = subprocess.run([sys.executable, __file__, "--inner", *map(str, paths)], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise SystemExit(f"floor run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _import_duckdb(runs: int) -> tuple[float, float]:
    rs = [harness.run_measured([sys.executable, "-c", "import duckdb"]) for _ in range(runs)]
    return min(r["wall_s"] for r in rs), min(r["cpu_s"] for r in rs)


def measure(name: str, paths: list[Path], peer_name: str, run_peer, runs: int, imp: tuple[float, float],
            store: Path) -> dict:
    peer_runs, mast_runs, floors = [], [], []
    for i in range(runs):  # interleaved: each side sees the same drift of the load
        peer_runs.append(run_peer())
        mast_runs.append(harness.run_mast(paths, store))
        floors.append(_inner_run(paths))
        print(f"{name} run {i + 1}: {peer_name} {peer_runs[-1]['wall_s']:.2f} s, mast {mast_runs[-1]['wall_s']:.2f} s, "
              f"statements {floors[-1]['statements_cpu']:.2f} CPU-s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    best = {k: min(f[k] for f in floors)
            for k in ("decode_cpu", "statements_cpu", "statements_wall", "open_cpu", "parse_cpu", "whole_cpu")}
    floor = imp[1] + best["decode_cpu"] + best["statements_cpu"]
    cores = os.cpu_count() or 1
    # The shortest wall the floor allows: all of it spread over every core, and no less than
    # the serial chain of loading DuckDB and then running the statements as long as DuckDB
    # took for them here (they need the library; one writer runs them, each using the
    # threads DuckDB gives it).  The decode is left to overlap both.
    fastest = max(floor / cores, imp[0] + best["statements_wall"])
    pw, pc = min(r["wall_s"] for r in peer_runs), min(r["cpu_s"] for r in peer_runs)
    mw, mc = min(r["wall_s"] for r in mast_runs), min(r["cpu_s"] for r in mast_runs)
    return {"input": name, "peer": peer_name, "peer_wall_s": pw, "peer_cpu_s": pc, "mast_wall_s": mw,
            "mast_cpu_s": mc, "import_cpu_s": imp[1], **best, "floor_cpu_s": floor, "cores": cores,
            "fastest_wall_s": fastest, "bound_wall": pw / fastest, "bound_cpu": pc / floor,
            "now_wall": pw / mw, "now_cpu": pc / mc, "load": os.getloadavg()[0]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        print(json.dumps(inner([Path(p) for p in sys.argv[2:]])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/peers")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="whowhen,mast_human,otlp", help="peer inputs (comma-separated); '' for none")
    ap.add_argument("--corpus", nargs="*", default=[], help="framework corpora, against read_json")
    ap.add_argument("--size-mb", type=int, default=20)
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "floor_store.duckdb"
    imp = _import_duckdb(max(a.runs, 5))
    cases = {"whowhen": ("atap", lambda: [peers.build_whowhen(out / "inputs/whowhen")]),
             "mast_human": ("adamast", lambda: [peers.build_mast_human(out / "inputs/mast_human")]),
             "otlp": ("ghostspan", lambda: peers.OTLP)}
    rows = []
    for name in [c for c in a.only.split(",") if c]:
        peer, inputs = cases[name]
        bin_, inp = peers.venv(out, peer), inputs()
        rows.append(measure(name, inp, peer, lambda: harness.run_measured(
            peers.peer_cmd(peer, bin_, inp, out / f"{peer}.out")), a.runs, imp, store))
    for kind in a.corpus:
        corpus = fw.build(ROOT / "bench/out" / f"fw_corpus_{kind}", kind, a.size_mb,
                          log=lambda *x: print(*x, file=sys.stderr))
        rows.append(measure(kind, [Path(corpus.root)], "read_json",
                            lambda: harness.run_reference(corpus, out / "floor_ref.duckdb"), a.runs, imp, store))
    print(f"`import duckdb`: {imp[0]:.3f} s wall, {imp[1]:.3f} CPU-s (min of {max(a.runs, 5)}); "
          f"{rows[0]['cores'] if rows else os.cpu_count()} cores; min of {a.runs} runs each\n")
    print("| input | peer | peer wall / CPU s | mast now wall / CPU s | rate now (wall / CPU) "
          "| JSON decode CPU-s | store statements CPU (wall) s | floor CPU-s | fastest wall s the floor allows "
          "| mast's Python (parse + writer) CPU-s | best rate the floor allows (wall / CPU) | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r["input"], r["peer"], f"{r['peer_wall_s']:.2f} / {r['peer_cpu_s']:.2f}",
                 f"{r['mast_wall_s']:.2f} / {r['mast_cpu_s']:.2f}", f"{r['now_wall']:.2f}× / {r['now_cpu']:.2f}×",
                 f"{r['decode_cpu']:.2f}", f"{r['statements_cpu']:.2f} ({r['statements_wall']:.2f})",
                 f"**{r['floor_cpu_s']:.2f}**", f"{r['fastest_wall_s']:.2f}", f"{r['whole_cpu'] - r['statements_cpu']:.2f}",
                 f"**{r['bound_wall']:.2f}×** / {r['bound_cpu']:.2f}×", f"{r['load']:.1f}"]
        print("| " + " | ".join(cells) + " |")
    peers.save(out, "floor", rows)


if __name__ == "__main__":
    main()

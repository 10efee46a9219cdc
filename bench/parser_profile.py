"""One parser process's work, in this process: parse, encode, and the ready step, per component.

    .venv/bin/python bench/parser_profile.py DIR [--share 2] [--code CHECKOUT] [--runs 3] [--cprofile N]

Takes every ``--share``-th ready chunk of DIR's files, as ``mast ingest`` deals them to its
parser processes (``pipeline._chunks(..., ready=True)``: 1 → 16 MB), and runs what a parser
runs on each (``pipeline._parse_ready`` with the ingest's write hooks and an in-memory
store, as ``workers._worker_init`` sets them), then pickles the result as the pool would.
Reports ``time.process_time()`` of the whole and of each part (the functions named are
wrapped; the outermost call counts):

- ``decode``: ``json.loads`` as the importers' helpers call it (``mast.ingest._util``);
- ``detect``: the registry's head read and every importer's ``detect``;
- ``finish``: ``name_system`` (outcome reason, run key, fingerprint);
- ``encode``: ``encode_files`` (model objects to Arrow tables, trace ids);
- ``check`` / ``traces`` / ``steps`` / ``labels``: the ready step's hint check and INSERT
  bodies (redaction and casts) per table, in DuckDB;
- ``features``: the write hooks' SELECTs (the rules' feature pass);
- ``ready_rest``: the rest of ``ready.prepare`` (run rows, ids);
- ``pickle``: pickling the chunk's result;
- ``importer``: the rest (the importer's own per-record and per-step Python, file reads).

``--split`` also times the ready step's statements table by table (``insert.statement``'s
hint check, then each INSERT body, then the hooks), by running ``ready.prepare``'s loop here
on the same chunks.  ``--code`` imports the ``mast`` package of another checkout instead (a
before/after pair in one session).  Never part of the test run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pickle
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_profile import _Timer, json_shim  # noqa: E402  (the same wrapper: outermost calls' CPU per key)


def chunks_of(d: Path, share: int) -> list[list[Path]]:
    from mast.ingest.pipeline import _chunks, _Pending, expand
    from mast.ingest.summary import FileResult

    jobs = [_Pending(FileResult(str(p), None), p.stat().st_size, path=p) for p in expand([d])]
    return [[p.path for p in c] for c in _chunks(jobs, ready=True)][::share]


def setup():
    from mast.classify.hooks import ingest_hooks
    from mast.ingest import workers

    workers.WORKER.clear()
    workers._worker_init(os.getpid(), workers._parser_hooks(ingest_hooks()))


def run_once(chunks: list[list[Path]], profile: cProfile.Profile | None = None) -> dict:

    from mast.ingest import _util, faults, pipeline
    from mast.ingest import workers
    from mast.store import insert, ready

    setup()
    spent: dict = {}

    jj = json_shim()

    def table(a) -> str:
        return {"traces": "traces", "steps": "steps"}.get(a[1], "labels")
    timers = [_Timer(spent, "decode", jj, "loads"), _Timer(spent, "finish", pipeline, "name_system"),
              _Timer(spent, "detect", pipeline, "_importer"), _Timer(spent, "encode", pipeline, "encode_files"),
              _Timer(spent, "ready", workers, "prepare"), _Timer(spent, "features", ready, "_derived"),
              _Timer(spent, "check+sql", insert, "statement")]
    old_json, _util.json = _util.json, jj
    del faults
    n_steps = n_traces = 0
    sizes = 0
    t0, w0 = time.process_time(), time.perf_counter()
    try:
        if profile:
            profile.enable()
        for c in chunks:
            out = pipeline._parse_ready(c, "auto", None)
            bad = [f.error for f in out.files if f.error]
            if bad:
                raise SystemExit(f"parse error: {bad[0]}")
            for seg in out.segments:
                n_traces += seg.traces.num_rows
                n_steps += seg.steps.num_rows
            t = time.process_time()
            sizes += len(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
            spent["pickle"] = spent.get("pickle", 0.0) + time.process_time() - t
        if profile:
            profile.disable()
    finally:
        total, wall = time.process_time() - t0, time.perf_counter() - w0
        _util.json = old_json
        for t in timers:
            t.undo()
    # ready.prepare holds the INSERT bodies (their statement() check included) and the features
    spent["ready_sql"] = spent.get("ready", 0.0) - spent.get("features", 0.0)
    spent.pop("ready", None)
    spent.pop("check+sql", None)
    spent["importer"] = total - sum(v for k, v in spent.items())
    spent.update(total=total, wall=wall, traces=n_traces, steps=n_steps, pickled_mb=sizes / 1e6, chunks=len(chunks))
    return spent


def split(chunks: list[list[Path]]) -> dict:
    """CPU per statement of the ready step (``ready.prepare``'s loop, timed piece by piece)."""
    from mast.ingest import pipeline, workers
    from mast.store import Store, insert, ready

    setup()
    store = Store(":memory:")
    store.execute("SET threads = 1")
    store.execute("SET enable_progress_bar = false")
    con, spent = store._con, {}
    for c in chunks:
        got = pipeline._parse_chunk(c, "auto", None)
        tables = type(got.segments[0]).concat(got.segments)
        out = {}
        for t in ready.CORE:
            rows, name = getattr(tables, t), f"_mast_in_{t}"
            con.register(name, rows)
            t0 = time.process_time()
            sql = insert.statement(con, t, rows, name, seq=t != "traces")
            t1 = time.process_time()
            out[t] = con.sql(sql, params=[ready._now()] if insert.takes_time(t) else None).to_arrow_table()
            t2 = time.process_time()
            con.unregister(name)
            spent[f"check {t}"] = spent.get(f"check {t}", 0.0) + t1 - t0
            spent[f"insert {t}"] = spent.get(f"insert {t}", 0.0) + t2 - t1
        t0 = time.process_time()
        ready._derived(store, out, tables.traces.column("trace_id").to_pylist(), workers.WORKER["hooks"])
        spent["features"] = spent.get("features", 0.0) + time.process_time() - t0
    store.close()
    return spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--share", type=int, default=2, help="every Nth chunk (N parser processes)")
    ap.add_argument("--code", type=Path, help="a checkout whose mast package to import instead")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cprofile", type=int, default=0)
    ap.add_argument("--split", action="store_true")
    a = ap.parse_args(argv)
    if a.code:
        sys.path.insert(0, str(a.code.resolve()))
    import mast
    print(f"mast from {Path(mast.__file__).parent}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    chunks = chunks_of(a.dir, a.share)
    keys = ["decode", "detect", "importer", "finish", "encode", "ready_sql", "features", "pickle", "total", "wall"]
    runs = [run_once(chunks) for _ in range(a.runs)]
    best = min(runs, key=lambda r: r["total"])
    print(f"{best['chunks']} chunks, {best['traces']:,} traces, {best['steps']:,} steps, "
          f"{best['pickled_mb']:.1f} MB pickled; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print("| " + " | ".join(keys) + " |")
    print("|" + "---:|" * len(keys))
    print("| " + " | ".join(f"{best.get(k, 0.0):.2f}" for k in keys) + " |", flush=True)
    if a.split:
        runs = [split(chunks) for _ in range(a.runs)]
        keys = list(runs[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---:|" * len(keys))
        print("| " + " | ".join(f"{min(r[k] for r in runs):.3f}" for k in keys) + " |", flush=True)
    if a.cprofile:
        pr = cProfile.Profile()
        run_once(chunks, pr)
        pstats.Stats(pr, stream=sys.stderr).sort_stats("tottime").print_stats(a.cprofile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

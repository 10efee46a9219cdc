"""Parse-side CPU of ingest: everything before an Arrow batch reaches DuckDB, per component.

    .venv/bin/python bench/parse_profile.py DIR [DIR ...] [--code CHECKOUT] [--runs 3] [--cprofile N]

Runs ingest's own parse step (``mast.ingest.pipeline._parse_chunk``: detection, the
importer, ``name_system`` (outcome reason, run identity), trace ids, Arrow encoding) over
the files of each folder in the chunks ingest makes, in this process, with no DuckDB and
no parser processes, and reports ``time.process_time()`` of the whole and of each part
(measured by wrapping the functions named; "importer" is the rest).  ``--code`` imports
the ``mast`` package of another checkout instead (a before/after pair in one session).
``--cprofile N`` prints the N most expensive functions (cumulative) of one more run.

Components (CPU s; the minimum of ``--runs``):

- ``decode``: ``json.loads`` as the importers' helpers call it (``mast.ingest._util``);
- ``detect``: reading heads and asking the registry which importer takes each file;
- ``finish``: ``mast.ingest.finish.name_system`` (outcome reason, run key, fingerprint);
- ``ids``: ``Trace.compute_id`` (absent when ids are computed inside the encoder);
- ``encode``: ``mast.store.encode.encode_traces`` less the ids it computes;
- ``importer``: the rest (the importers' own per-record and per-step Python).

Never part of the test run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path


def _files(d: Path) -> list[Path]:
    from mast.ingest.pipeline import expand
    return expand([d])


def _chunks(files: list[Path]) -> list[list[Path]]:
    from mast.ingest.pipeline import CHUNK_BYTES, CHUNK_FILES
    out, cur, size = [], [], 0
    for f in files:
        if cur and (size >= CHUNK_BYTES or len(cur) >= CHUNK_FILES):
            out.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += f.stat().st_size
    return out + ([cur] if cur else [])


class _Timer:
    """Wraps ``owner.name`` so that its CPU time (outermost calls only) adds up in ``spent[key]``."""

    def __init__(self, spent: dict, key: str, owner, name: str):
        self.owner, self.name, self.orig = owner, name, getattr(owner, name)
        depth = [0]
        orig = self.orig

        def wrapped(*a, **k):
            if depth[0]:
                return orig(*a, **k)
            depth[0] += 1
            t = time.process_time()
            try:
                return orig(*a, **k)
            finally:
                spent[key] = spent.get(key, 0.0) + time.process_time() - t
                depth[0] -= 1
        setattr(owner, name, wrapped)

    def undo(self):
        setattr(self.owner, self.name, self.orig)


def json_shim():
    """``json`` as ``mast.ingest._util`` sees it, with its own ``loads`` (for a timer to wrap)."""
    import json as _json

    class _J:
        def __getattr__(self, k):
            return getattr(_json, k)
    jj = _J()
    jj.loads = _json.loads
    return jj


def run_once(chunks: list[list[Path]]) -> dict:
    from mast.ingest import _util, pipeline
    from mast import model
    from mast.store import encode
    spent: dict = {}

    jj = json_shim()
    timers = [_Timer(spent, "decode", jj, "loads"), _Timer(spent, "ids", model.Trace, "compute_id"),
              _Timer(spent, "encode", encode, "encode_traces"), _Timer(spent, "finish", pipeline, "name_system"),
              _Timer(spent, "detect", pipeline, "_importer")]
    old_json, _util.json = _util.json, jj
    # older code: encode_files (faults) calls encode_traces through its own import;
    # newer code imports it from mast.store.encode when called, so the wrapper is seen
    from mast.ingest import faults
    old_enc = getattr(faults, "encode_traces", None)
    if old_enc is not None:
        faults.encode_traces = encode.encode_traces
    t0 = time.process_time()
    w0 = time.perf_counter()
    n_steps = n_traces = 0
    try:
        for c in chunks:
            out = pipeline._parse_chunk(c, "auto", None)
            for seg in out.segments:
                n_traces += seg.traces.num_rows
                n_steps += seg.steps.num_rows
            bad = [f.error for f in out.files if f.error]
            if bad:
                raise SystemExit(f"parse error: {bad[0]}")
    finally:
        total = time.process_time() - t0
        wall = time.perf_counter() - w0
        if old_enc is not None:
            faults.encode_traces = old_enc
        _util.json = old_json
        for t in timers:
            t.undo()
    spent["encode"] = spent.get("encode", 0.0) - spent.get("ids", 0.0) * (1 if "ids" in spent else 0)
    spent["importer"] = total - sum(spent.values())
    spent["total"], spent["wall"], spent["traces"], spent["steps"] = total, wall, n_traces, n_steps
    return spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--code", type=Path, help="a checkout whose mast package to import instead")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cprofile", type=int, default=0)
    a = ap.parse_args(argv)
    if a.code:
        sys.path.insert(0, str(a.code.resolve()))
    import mast
    print(f"mast from {Path(mast.__file__).parent}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    keys = ["decode", "detect", "importer", "finish", "ids", "encode", "total", "wall"]
    print("| input | traces | steps | " + " | ".join(keys) + " |")
    print("|---|---:|---:|" + "---:|" * len(keys))
    for d in a.dirs:
        chunks = _chunks(_files(d))
        runs = [run_once(chunks) for _ in range(a.runs)]
        best = min(runs, key=lambda r: r["total"])
        print(f"| {d.name} | {best['traces']:,} | {best['steps']:,} | "
              + " | ".join(f"{best.get(k, 0.0):.2f}" for k in keys) + " |", flush=True)
        if a.cprofile:
            from mast.ingest import pipeline
            pr = cProfile.Profile()
            pr.enable()
            for c in chunks:
                pipeline._parse_chunk(c, "auto", None)
            pr.disable()
            pstats.Stats(pr, stream=sys.stderr).sort_stats("tottime").print_stats(a.cprofile)
    print(f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

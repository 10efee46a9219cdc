"""Where one ingest's CPU goes, in process: importer (parse), encode, and the write side.

    .venv/bin/python bench/ingest_split.py [--corpus KIND ...] [--size-mb 20] [--out bench/out]

Builds (or reuses) the corpora of ``bench/ingest_frameworks_bench.py`` and ingests each
into a fresh on-disk store with :func:`mast.ingest.pipeline.ingest_paths` in this process
(no parser processes, so every CPU-second is seen here), with the rules' feature hook as
the CLI runs it.  The pipeline's own seams are timed with ``time.process_time``:

- **detect**: choosing the importer (the registry's head read and every importer's ``detect``);
- **parse**: the importer's ``read`` (each ``next()`` of its generator);
- **encode**: ``encode_files`` / ``encode_safely`` (model objects to Arrow tables);
- **write**: everything else in ``ingest_paths`` — the group writer, DuckDB inserts,
  the feature hook, commits, file bookkeeping.

Prints one Markdown row per corpus and writes ``<out>/ingest_split_<timestamp>.json``.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_frameworks_bench as fw  # noqa: E402

from mast.classify.hooks import ingest_hooks  # noqa: E402
from mast.ingest import pipeline  # noqa: E402
from mast.store import Store  # noqa: E402


class _Clock:
    def __init__(self) -> None:
        self.detect = 0.0
        self.parse = 0.0
        self.encode = 0.0

    def install(self) -> None:
        real_importer, real_files, real_safely = pipeline._importer, pipeline.encode_files, pipeline.encode_safely
        clock = self

        class Timed:
            """The importer, with its read() generator's CPU counted."""

            def __init__(self, imp) -> None:
                self._imp = imp

            def __getattr__(self, k):
                return getattr(self._imp, k)

            def read(self, path):
                t = time.process_time()
                it = iter(self._imp.read(path))
                clock.parse += time.process_time() - t
                while True:
                    t = time.process_time()
                    try:
                        x = next(it)
                    except StopIteration:
                        clock.parse += time.process_time() - t
                        return
                    clock.parse += time.process_time() - t
                    yield x

        def importer(path, fmt):
            t = time.process_time()
            imp, note = real_importer(path, fmt)
            clock.detect += time.process_time() - t
            return (Timed(imp) if imp is not None else None), note

        def timed(fn):
            def run(*a, **k):
                t = time.process_time()
                try:
                    return fn(*a, **k)
                finally:
                    clock.encode += time.process_time() - t
            return run

        pipeline._importer = importer
        pipeline.encode_files = timed(real_files)
        pipeline.encode_safely = timed(real_safely)


def split(kind: str, a) -> dict:
    corpus = fw.build(a.out / f"fw_corpus_{kind}", kind, a.size_mb, log=lambda *x: print(*x, file=sys.stderr))
    clock = _Clock()
    clock.install()
    with tempfile.TemporaryDirectory(dir=a.out) as tmp:
        load = os.getloadavg()[0]
        w0, c0 = time.perf_counter(), time.process_time()
        with Store(Path(tmp) / "split.duckdb") as store:
            s = pipeline.ingest_paths(store, [corpus.root], keep_going=True, workers=0, hooks=ingest_hooks())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    mb = corpus.bytes / 1e6
    return {"kind": kind, "mb": mb, "files": corpus.files, "traces": s.traces_new, "steps": s.steps,
            "errors": len(s.errors), "load": load, "wall_s": wall, "cpu_s": cpu, "detect_s": clock.detect,
            "parse_s": clock.parse, "encode_s": clock.encode,
            "write_s": cpu - clock.detect - clock.parse - clock.encode}


def main(argv: list[str] | None = None) -> int:
    kinds = ["otlp", "crewai", *fw.EXPORT_TEMPLATES, *fw.AG2X_TEMPLATES, *fw.RUN_TEMPLATES, *fw.PAGE_TEMPLATES]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", choices=kinds, default=kinds)
    ap.add_argument("--size-mb", type=int, default=20)
    ap.add_argument("--out", type=Path, default=fw.ROOT / "bench" / "out", help="work folder (gitignored)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    print("| corpus | MB | traces | steps | load | CPU s | detect s | parse s (MB/CPU-s) | encode s | write s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for k in a.corpus:
        r = split(k, a)
        rows.append(r)
        print(f"| {k} | {r['mb']:.1f} | {r['traces']:,} | {r['steps']:,} | {r['load']:.1f} | {r['cpu_s']:.1f} | {r['detect_s']:.1f} | "
              f"{r['parse_s']:.1f} ({r['mb'] / max(r['parse_s'], 1e-9):.1f}) | {r['encode_s']:.1f} | "
              f"{r['write_s']:.1f} | {r['wall_s']:.1f} |", flush=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (a.out / f"ingest_split_{stamp}.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

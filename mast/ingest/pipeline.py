"""Ingest files into a store: detection, batching, one transaction per file.

A file is stored whole or not at all: its traces are written in batches inside one
transaction that commits only after the last record was read.  A file already ingested
unchanged (same path, size and mtime) is skipped, so a rerun after a crash or Ctrl-C
continues where the last run stopped.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mast import ingest as registry
from mast.errors import IngestError, MastError
from mast.model import Trace
from mast.store import Store

#: Suffixes picked up when walking a folder (explicit file arguments are always tried).
TRACE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".txt", ".log", ".db", ".sqlite", ".sqlite3"}
#: Flush a batch to DuckDB once it holds this many steps (bounds memory per file).
BATCH_STEPS = 50_000


@dataclass
class FileResult:
    path: str
    format: str | None
    traces_new: int = 0
    traces_present: int = 0
    steps: int = 0
    skipped: bool = False
    error: MastError | None = None
    #: Set when the file is a known companion of a trace file (e.g. its labels): not read.
    companion: str | None = None


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)

    @property
    def errors(self) -> list[MastError]:
        return [f.error for f in self.files if f.error]

    @property
    def traces_new(self) -> int:
        return sum(f.traces_new for f in self.files)

    @property
    def traces_present(self) -> int:
        return sum(f.traces_present for f in self.files)

    @property
    def steps(self) -> int:
        return sum(f.steps for f in self.files)

    @property
    def formats(self) -> Counter:
        return Counter(f.format for f in self.files if f.format and not f.error)


def expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named directly, plus trace-looking files found recursively in folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*")
                              if f.is_file() and f.suffix.lower() in TRACE_SUFFIXES
                              and not any(part.startswith(".") for part in f.relative_to(p).parts)))
        elif p.exists():
            out.append(p)
        else:
            raise IngestError(str(p), None, "no such file or folder")
    return out


def _batches(traces: Iterator[Trace]) -> Iterator[list[Trace]]:
    batch: list[Trace] = []
    n = 0
    for t in traces:
        batch.append(t)
        n += len(t.steps)
        if n >= BATCH_STEPS:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def ingest_file(store: Store, path: Path, fmt: str = "auto", system: str | None = None,
                on_bytes: Callable[[int], None] | None = None) -> FileResult:
    st = path.stat()
    key = str(path.resolve())
    if store.file_done(key, st.st_size, st.st_mtime_ns):
        return FileResult(str(path), None, skipped=True)
    if fmt == "auto":
        head = registry.read_head(path)
        note = registry.companion_note(path, head)
        if note:
            return FileResult(str(path), None, companion=note)
        imp = registry.detect(path, head)
    else:
        imp = registry.get(fmt)
    res = FileResult(str(path), imp.name)
    n = 0
    with store.transaction():
        for batch in _batches(imp.read(path)):
            for t in batch:
                if system and not t.system:
                    t.system = system
            w = store.write_traces(batch)
            res.traces_new += w.new
            res.traces_present += w.present
            res.steps += w.steps
            n += len(batch)
        if n == 0:
            raise IngestError(str(path), None, "no traces found in file")
        store.record_file(key, st.st_size, st.st_mtime_ns, imp.name, n)
    if on_bytes:
        on_bytes(st.st_size)
    return res


def ingest_paths(store: Store, paths: Iterable[str | os.PathLike], fmt: str = "auto",
                 system: str | None = None, keep_going: bool = False,
                 on_file: Callable[[FileResult, int], None] | None = None) -> IngestSummary:
    """Ingest every file; stop at the first bad file unless ``keep_going``.

    ``on_file(result, size)`` is called after each file (for progress display).
    """
    files = expand(paths)
    summary = IngestSummary()
    for path in files:
        size = path.stat().st_size
        try:
            res = ingest_file(store, path, fmt, system)
        except MastError as e:
            res = FileResult(str(path), None, error=e)
        summary.files.append(res)
        if on_file:
            on_file(res, size)
        if res.error and not keep_going:
            break
    return summary

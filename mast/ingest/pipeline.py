"""Ingest files into a store: detection, parsing, grouped commits.

Contract:
- A file is stored whole or not at all, by exactly one transaction.  Small files
  (up to :data:`STREAM_BYTES`) are read completely before they join a group of whole
  files that is committed together; a larger file is streamed in batches into
  temporary staging tables, which one transaction of its own copies into the store
  only after the file's last record was read.
- A file already ingested unchanged (same path, size and mtime) is skipped, so a rerun
  after a crash or Ctrl-C continues where the last run stopped; trace ids are content
  hashes, so a changed or copied file adds only traces not yet stored.
- The file is the unit of re-ingest: a changed file replaces the traces its earlier
  version produced, in the transaction that stores the new version.  A trace it still
  holds unchanged keeps its id and labels; one it no longer holds is deleted with its
  labels and derived rows, unless another file holds it too (``FileResult.traces_replaced``).
- A bad file is an error naming the file (and the record); with ``keep_going`` the
  walk goes on, otherwise it stops after committing the good files read before it.
  *Whatever* goes wrong with one file is that file's error (:mod:`mast.ingest.faults`),
  never the end of the run, except running out of disk or memory
  (:class:`~mast.errors.IngestAborted`): that stops at once, even with ``keep_going``,
  naming the file whose transaction was rolled back.
- Limits: a record or string over ``max_record`` bytes (MAST_INGEST_MAX_RECORD_MB) and
  JSON nested deeper than Python's parser goes are errors naming the record.
- File names that are not UTF-8 are shown and stored as :func:`mast.errors.path_text`
  spells them (``\\xNN`` escapes), so a rerun recognises the file.

Speed (see bench/README.md): parsing runs in up to :data:`MAX_WORKERS` worker processes
when there is enough work (:mod:`mast.ingest.workers`), and a single writer (this process)
owns the DuckDB connection.  The parser processes also make their rows ready for the store
(redacted, cast, the hooks' rows computed: :mod:`mast.store.ready`), so that the writer only
appends and commits; a full group is committed on a writer thread while the next one is
gathered (DuckDB runs without the GIL), one group in flight at a time.  Memory stays bounded
whatever the corpus size: at most ``workers * READY_WINDOW`` ready chunks of up to
:data:`READY_CHUNK_BYTES` in flight (``workers * POOL_WINDOW`` chunks of lists for a small
job), two groups of :data:`mast.ingest.writer.GROUP_BYTES` (one being committed, one
gathered), and one batch of a streamed file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from mast import ingest as registry
from mast.errors import IngestAborted, IngestError, path_text
from mast.ingest._util import ingest_collector, limits, max_record_bytes
from mast.ingest.pieces import join_pieces
from mast.ingest.finish import SYSTEM_RULES, name_system  # noqa: F401 - SYSTEM_RULES re-exported for the CLI
from mast.ingest.summary import FileResult, IngestSummary  # also re-exported: callers import them from here
from mast.ingest.writer import _GroupWriter, _Parsed, _Pending, _Stop
from mast.ingest.faults import (INGEST_MEMORY_DEFAULT, IngestLimits, check_sizes, contained, encode_files,
                                encode_safely, file_error, fix_source_path)
from mast.model import Trace
from mast.ingest.workers import WORKER, _pool, _ready, broken, trim
from mast.store import Store, WriteHook
from mast.store.ready import ReadyTables
from mast.store.rows import SMALL_JOB_BYTES
from mast.settings import current as current_settings

if TYPE_CHECKING:
    from mast.store.encode import TraceTables

#: Suffixes picked up when walking a folder (explicit file arguments are always tried).
TRACE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".txt", ".log", ".db", ".sqlite", ".sqlite3"}
#: A streamed file is flushed to DuckDB every this many steps or characters of content.
BATCH_STEPS = 50_000
BATCH_CHARS = 16_000_000
#: Files larger than this are streamed in their own transaction; smaller ones are parsed whole.
STREAM_BYTES = 16_000_000
#: Small files are parsed (and encoded) in chunks of about this many bytes or files.
CHUNK_BYTES = 1_000_000
CHUNK_FILES = 64
#: DuckDB's memory limit during ingest (its default, 80 % of RAM, lets RSS grow with the corpus);
#: MAST_INGEST_MEMORY_LIMIT changes it (see faults.IngestLimits).
INGEST_MEMORY_LIMIT = INGEST_MEMORY_DEFAULT
#: DuckDB checkpoints during ingest once its WAL holds this much (its default, 16 MB, made
#: it checkpoint after nearly every group, rewriting the steps' last row group each time).
INGEST_CHECKPOINT = "128MB"
#: Parser processes: at most this many, and only for jobs of at least this size.
MAX_WORKERS = 2
POOL_MIN_FILES = 8
POOL_MIN_BYTES = 64_000_000
#: Parsed chunks in flight per worker (bounds the memory of results not yet written).
POOL_WINDOW = 3
#: Whether parser processes make their rows ready for the store (redacted, cast, the hooks'
#: rows: :func:`_parse_ready`).  It moves 55 % of the writer's CPU to them at the same total
#: CPU, and costs ~150 MB per parser process (bench/RESULTS.md, session 5).
READY = True
#: Chunks of parsers that make their rows ready (:func:`_parse_ready`) grow to this size,
#: and this many are in flight per worker.
READY_CHUNK_BYTES = 16_000_000
READY_CHUNK_FILES = 1024
READY_WINDOW = 1
#: DuckDB's memory limit in the writer while parsers hand it ready rows, unless the user set
#: one (MAST_INGEST_MEMORY_LIMIT): it then only appends and commits, and the default's room
#: for the redaction chains and the feature pass would only keep written blocks resident
#: (Who&When x20: 75 MB less writer RSS; bench/RESULTS.md, session 6).  A file streamed in
#: the same run is still written under the full limit.  It costs the writer 0.5-1 s of CPU
#: there (DuckDB evicts and re-reads blocks); None keeps the full limit.
READY_MEMORY_LIMIT: str | None = "128MB"


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


def _batches(path: Path, traces: Iterator[Trace], system: str | None = None,
             check: bool = False, named: Counter | None = None) -> Iterator[list[Trace]]:
    batch: list[Trace] = []
    n = chars = 0
    for t in traces:
        rule = name_system(path, t, system)
        if named is not None and rule:
            named[rule] += 1
        if check:
            check_sizes(path, t)
        batch.append(t)
        n += len(t.steps)
        chars += sum(len(s.content) for s in t.steps if s.content)
        if n >= BATCH_STEPS or chars >= BATCH_CHARS:
            yield batch
            batch, n, chars = [], 0, 0
    if batch:
        yield batch


def _importer(path: Path, fmt: str) -> tuple[registry.Importer | None, str | None]:
    """(importer, None), or (None, note) for a known companion file (e.g. a labels file)."""
    if fmt != "auto":
        return registry.get(fmt), None
    head = registry.read_head(path)
    note = registry.companion_note(path, head)
    if note:
        return None, note
    return registry.detect(path, head), None


def ingest_file(store: Store, path: Path, fmt: str = "auto", system: str | None = None,
                on_bytes: Callable[[int], None] | None = None, hooks: Sequence[WriteHook] = (),
                lim: IngestLimits | None = None) -> FileResult:
    """Ingest one file in its own transaction, streaming it in batches (any size).

    ``hooks`` run on every batch written (see :mod:`mast.store.hooks`).  Any failure is
    raised as the file's :class:`~mast.errors.IngestError` (see :mod:`mast.ingest.faults`),
    with nothing of the file stored."""
    lim = lim or IngestLimits.from_settings()
    try:
        with limits(lim.max_record):
            return _ingest_file(store, path, fmt, system, on_bytes, hooks, lim)
    except Exception as e:  # the boundary: whatever fails here is this file's error
        raise file_error(path, e, memory_limit=lim.memory_limit) from None


def _ingest_file(store: Store, path: Path, fmt: str, system: str | None,
                 on_bytes: Callable[[int], None] | None, hooks: Sequence[WriteHook], lim: IngestLimits) -> FileResult:
    st = path.stat()
    key = path_text(path.resolve())
    if store.file_done(key, st.st_size, st.st_mtime_ns):
        return FileResult(path_text(path), None, skipped=True)
    imp, note = _importer(path, fmt)
    if imp is None:
        return FileResult(path_text(path), None, companion=note)
    res = FileResult(path_text(path), imp.name)
    n = 0
    ids: list[str] = []
    runs: list[tuple] = []  # (trace id, steps, metadata) for the run sources
    # Batches are committed into staging tables, and published in one transaction once
    # the last record was read (see Store.begin_staging: bounded memory at any size).
    store.begin_staging(hooks)
    try:
        traces = contained(path, imp.read(path), imp.name, lim.memory_limit)
        for batch in _batches(path, traces, system, check=st.st_size > max_record_bytes(), named=res.systems_named):
            fix_source_path(path, batch)
            tables = encode_safely(batch)
            with store.transaction():
                w = store.write_tables(tables, hooks)
            res.traces_new += w.new
            res.traces_present += w.present
            res.steps += w.steps
            ids.extend(tables.traces.column("trace_id").to_pylist())
            runs.extend(tables.run_rows())
            n += len(batch)
        if n == 0:
            raise IngestError(path, None, "no traces found in file")
        with store.transaction():
            store.publish_staging()
            rep = store.record_file(key, st.st_size, st.st_mtime_ns, imp.name, n, trace_ids=ids)
            [src] = store.record_sources([key], [imp.name], [runs])
    finally:
        store.end_staging()
    res.traces_replaced, res.labels_replaced = rep.traces, rep.labels
    res.take_sources(src)
    res.key = key
    if on_bytes:
        on_bytes(st.st_size)
    return res


# -- small files: parsed whole, a chunk of files at a time (in worker processes when many) --

@dataclass
class _Chunk:
    """Parsed files of one chunk, in order; consecutive good files share one encoded segment.

    Encoding many small files together saves the fixed cost of building Arrow columns
    (and of pickling them back from a worker) per file.  A bad or companion file ends a
    segment, so a segment holds whole good files only.
    """

    files: list[_Parsed]
    segments: list[TraceTables]


def _parse_chunk(paths: list[Path], fmt: str, system: str | None, lim: IngestLimits | None = None,
                 small: bool = False) -> _Chunk:
    """Read and encode a chunk of small files; a file that fails is its own error.

    An :class:`~mast.errors.IngestAborted` (out of memory) ends the chunk there: nothing
    after it is read, and the writer stops at it.
    """
    lim = lim or IngestLimits()
    out = _Chunk([], [])
    run: list[tuple[int, Path, list[Trace]]] = []  # (index in out.files, path, traces)

    def error(path: Path, e: BaseException) -> IngestError:
        return file_error(path, e, memory_limit=lim.memory_limit)

    def close_run() -> None:
        if not run:
            return
        try:
            enc = encode_files([(p, ts) for _, p, ts in run], error, small)
        except IngestAborted as e:
            for k, _, _ in run:  # not one of them can be stored: the first is the one named
                out.files[k] = _Parsed(error=e)
            run.clear()
            raise
        for tables, idxs in enc.segments:
            for i in idxs:
                out.files[run[i][0]].segment = len(out.segments)
            out.segments.append(tables)
        for i, e in enc.errors.items():
            out.files[run[i][0]] = _Parsed(error=e)
        run.clear()

    with limits(lim.max_record):
        try:
            for path in paths:
                try:
                    imp, note = _importer(path, fmt)
                    if imp is None:
                        close_run()
                        out.files.append(_Parsed(companion=note))
                        continue
                    traces = list(contained(path, imp.read(path), imp.name, lim.memory_limit))
                    if not traces:
                        raise IngestError(path, None, "no traces found in file")
                    fix_source_path(path, traces)
                    if path.stat().st_size > lim.max_record:
                        for t in traces:
                            check_sizes(path, t)
                except Exception as e:  # the boundary: whatever fails here is this file's error
                    close_run()
                    out.files.append(_Parsed(error=error(path, e)))
                    if isinstance(out.files[-1].error, IngestAborted):
                        return out
                    continue
                named = Counter(r for t in traces if (r := name_system(path, t, system)))
                out.files.append(_Parsed(imp.name, len(traces), named=named))
                run.append((len(out.files) - 1, path, traces))
            close_run()
        except IngestAborted:
            del out.files[next(i for i, f in enumerate(out.files) if isinstance(f.error, IngestAborted)) + 1:]
    return out


def _parse_ready(paths: list[Path], fmt: str, system: str | None, lim: IngestLimits | None = None,
                 small: bool = False) -> _Chunk:
    """:func:`_parse_chunk` in a parser process, then made ready for the store: redacted,
    cast, the hooks' rows computed, by the writer's own statements on an in-memory store
    (:mod:`mast.store.ready`), so that the writer only appends and commits.

    The chunk (up to :data:`READY_CHUNK_BYTES`) is parsed :data:`CHUNK_BYTES` at a time, so
    the parse holds no more decoded files than before, and made ready as one batch: a
    statement's regexes (DuckDB builds their automata afresh for each statement) cost
    0.23 s per MB on batches of 1 MB against 0.05 s on 16 MB (bench/RESULTS.md)."""
    if small or "hooks" not in WORKER:
        return _parse_chunk(paths, fmt, system, lim, small)  # a small job's lists: written as they are
    trim()  # the previous chunk was pickled and sent: its pages are free
    out = _Chunk([], [])
    for part in _sub_chunks(paths):
        got = _parse_chunk(part, fmt, system, lim, small)
        for f in got.files:
            if f.segment is not None:
                f.segment += len(out.segments)
        out.files += got.files
        out.segments += got.segments
        if got.files and isinstance(got.files[-1].error, IngestAborted):
            break
    if out.segments:
        whole = _ready(type(out.segments[0]).concat(out.segments))  # Arrow: no import here
        if isinstance(whole, ReadyTables):
            # One segment for the chunk, its files in order (the writer takes each file's
            # traces from it by offset, across the bad files between them): slices of it
            # would each pickle the whole table's buffers.
            out.segments = [whole]
            for f in out.files:
                if f.segment is not None:
                    f.segment = 0
    return out


def _sub_chunks(paths: list[Path]) -> Iterator[list[Path]]:
    cur: list[Path] = []
    size = 0
    for p in paths:
        try:
            size += p.stat().st_size
        except OSError:
            pass  # its parse reports it
        cur.append(p)
        if size >= CHUNK_BYTES or len(cur) >= CHUNK_FILES:
            yield cur
            cur, size = [], 0
    if cur:
        yield cur


def _workers(n_files: int, n_bytes: int) -> int:
    """Parser processes to start: none for small jobs (start-up costs more than it saves)."""
    env = (current_settings().ingest_workers or "").strip()
    if env.isdecimal():
        return int(env)
    if n_files < POOL_MIN_FILES or n_bytes < POOL_MIN_BYTES:
        return 0
    return min(MAX_WORKERS, os.cpu_count() or 1)


def _chunks(jobs: list[_Pending], ready: bool = False) -> list[list[_Pending]]:
    """Consecutive small files (and skipped ones between them), a few MB per chunk; big files alone.

    ``ready``: chunks for parsers that make their rows ready (:func:`_parse_ready`): they
    grow fourfold from :data:`CHUNK_BYTES` to :data:`READY_CHUNK_BYTES`, so the first files
    are stored soon and the later batches are big enough for the regexes to pay."""
    out: list[list[_Pending]] = []
    cur: list[_Pending] = []
    size = 0
    limit, files = CHUNK_BYTES, CHUNK_FILES
    for p in jobs:
        big = not p.res.skipped and p.size > STREAM_BYTES
        if cur and (big or size >= limit or len(cur) >= files):
            out.append(cur)
            cur, size = [], 0
            if ready:
                limit, files = min(READY_CHUNK_BYTES, limit * 4), min(READY_CHUNK_FILES, files * 4)
        if big:
            out.append([p])
            continue
        cur.append(p)
        size += 0 if p.res.skipped else p.size
    if cur:
        out.append(cur)
    return out


def ingest_paths(store: Store, paths: Iterable[str | os.PathLike], fmt: str = "auto",
                 system: str | None = None, keep_going: bool = False,
                 on_file: Callable[[FileResult, int], None] | None = None,
                 workers: int | None = None, hooks: Sequence[WriteHook] = (),
                 limits: IngestLimits | None = None) -> IngestSummary:
    """Ingest every file; stop at the first bad file unless ``keep_going``.

    ``on_file(result, size)`` is called after each file, in file order, once the file is
    committed (for progress display).  Files up to :data:`STREAM_BYTES` are parsed whole
    (by ``workers`` parser processes when there are many; default: automatic) and
    committed in groups; larger files are streamed in batches in their own transaction.
    ``hooks`` run on every batch written, in its transaction (:mod:`mast.store.hooks`;
    :func:`mast.classify.hooks.ingest_hooks` gives the classifiers' ones).
    ``limits``: default from the settings (:meth:`IngestLimits.from_settings`).  Disk
    full or out of memory ends the run at once whatever ``keep_going`` says
    (:attr:`IngestSummary.aborted`).
    """
    lim = limits or IngestLimits.from_settings()
    files = expand(paths)
    summary = IngestSummary()

    def report(res: FileResult, size: int) -> None:
        summary.files.append(res)
        if on_file:
            on_file(res, size)

    done = store.ingested_files()
    jobs: list[_Pending] = []
    seen: set[str] = set()
    for path in files:
        try:
            st = path.stat()
            key = path_text(path.resolve())
        except (OSError, RuntimeError) as e:  # vanished since it was listed, or a symlink loop
            # Reported in its place (see _take_chunk); never read.
            jobs.append(_Pending(FileResult(path_text(path), None, error=file_error(path, e)), 0, path=path))
            continue
        p = _Pending(FileResult(path_text(path), None), st.st_size, key, st.st_mtime_ns, path=path, known=key in done)
        if done.get(key) == (st.st_size, st.st_mtime_ns) or key in seen:
            p.res.skipped = True
        seen.add(key)
        jobs.append(p)
    small = [p for p in jobs if not (p.res.skipped or p.res.error) and p.size <= STREAM_BYTES]
    n = _workers(len(small), sum(p.size for p in small)) if workers is None else workers
    # A job this small is written without pyarrow, whose import would cost more than the job (mast.store.rows).
    lists = sum(p.size for p in small) <= SMALL_JOB_BYTES
    pool = _pool(n, hooks) if n > 0 and small else None
    ready = READY and pool is not None and not lists  # the parsers hand over rows ready to append
    chunks = _chunks(jobs, ready)
    todo = [[p.path for p in c if not (p.res.skipped or p.res.error)] for c in chunks]
    # Ready chunks are up to 16 times bigger: fewer in flight bound the memory the same way.
    window = n * (READY_WINDOW if ready else POOL_WINDOW)
    futures: dict[int, object] = {}
    # With parser processes, a full group is committed by a writer thread while the next is
    # gathered.  Not without: the parse in this process and the group's write would then
    # hold their peaks at once (MAST human x20: +38 MB RSS, 12 %; bench/RESULTS.md).
    capped = ready and READY_MEMORY_LIMIT and not lim.memory_set
    wlim = replace(lim, memory_limit=READY_MEMORY_LIMIT) if capped else lim
    writer = _GroupWriter(store, report, hooks, wlim, background=pool is not None)
    # DuckDB may otherwise keep up to 80 % of RAM of freshly written blocks resident.
    with store.memory_limit(wlim.memory_limit), store.checkpoint_threshold(INGEST_CHECKPOINT), ingest_collector():
        try:
            nxt = 0  # next chunk for the pool: a bounded window in flight bounds memory

            def feed() -> None:
                nonlocal nxt
                while pool and nxt < len(chunks) and len(futures) < window:
                    c = chunks[nxt]
                    if todo[nxt] and not (len(c) == 1 and c[0].size > STREAM_BYTES):
                        parse = _parse_ready if ready else _parse_chunk
                        futures[nxt] = pool.submit(parse, todo[nxt], fmt, system, lim, lists)
                    nxt += 1

            for ci, chunk in enumerate(chunks):
                feed()
                if len(chunk) == 1 and not chunk[0].res.skipped and chunk[0].size > STREAM_BYTES:
                    p = chunk[0]
                    writer.flush()  # earlier files first, and never in the same transaction
                    try:
                        with store.memory_limit(lim.memory_limit):  # it redacts here: the full limit
                            res = ingest_file(store, p.path, fmt, system, hooks=hooks, lim=lim)
                    except IngestError as e:
                        res = FileResult(p.res.path, None, error=e)
                    report(res, p.size)
                    if res.error and (not keep_going or isinstance(res.error, IngestAborted)):
                        break
                    continue
                fut = futures.pop(ci, None)
                parsed = (_result(fut, todo[ci], fmt, system, lim, lists) if fut is not None
                          else _parse_chunk(todo[ci], fmt, system, lim, lists) if todo[ci] else _Chunk([], []))
                go = _take_chunk(writer, chunk, parsed, report, keep_going)
                # The writer holds what it still has to commit: the chunk (and its future)
                # must not also stay alive here while the next one is awaited.
                fut = parsed = None
                if not go:
                    break
            writer.flush()
        except _Stop:
            pass
        finally:
            writer.drain()  # before anything else touches the store (or the caller closes it)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if not summary.aborted:
            # pieces of one trace in several files (pages saved one per file) become one trace
            summary.joined = join_pieces(store, summary.files, system, hooks)
    return summary


def _result(fut, paths: list[Path], fmt: str, system: str | None, lim: IngestLimits, small: bool = False) -> _Chunk:
    """A worker's chunk.  A worker that died (the OS kills a process out of memory) stops
    the ingest at the chunk's first file; any other failure to hand the chunk over (say, an
    error that does not unpickle) parses the chunk again in this process."""
    try:
        return fut.result()
    except Exception as e:  # the boundary: the writer's own parse reports each file's error
        if broken(e):
            return _Chunk([_Parsed(error=file_error(paths[0], MemoryError(f"a parser process died: {e}"),
                                                    memory_limit=lim.memory_limit))], [])
        return _parse_chunk(paths, fmt, system, lim, small)


def _take_chunk(writer: _GroupWriter, chunk: list[_Pending], parsed: _Chunk,
                report: Callable[[FileResult, int], None], keep_going: bool) -> bool:
    """Hand a parsed chunk to the writer in file order; False to stop (a bad file, no keep_going)."""
    results = iter(parsed.files)
    seg_files: list[_Pending] = []
    seg = None
    seg_off = 0  # traces of segment ``seg`` handed over already (a skipped file split it)

    def close_segment() -> None:
        nonlocal seg_files, seg_off
        if seg_files:
            tables = parsed.segments[seg]
            n = sum(p.parsed.traces for p in seg_files)
            if seg_off or n != tables.traces.num_rows:
                tables = tables.select(seg_off, n)
            writer.add_segment(tables, seg_files)
            seg_off += n
        seg_files = []

    for p in chunk:
        if p.res.skipped:
            close_segment()
            writer.add(p)
            continue
        if p.res.error:  # failed before it could be read (it vanished)
            close_segment()
            writer.flush()
            report(p.res, p.size)
            if not keep_going:
                return False
            continue
        r = next(results, None)
        if r is None:  # the parser stopped early (it was aborted): the writer stops with it
            break
        if r.error:
            close_segment()
            writer.flush()  # the good files before it are committed before it is reported
            report(FileResult(p.res.path, None, error=r.error), p.size)
            if not keep_going or isinstance(r.error, IngestAborted):
                return False
            continue
        p.res.format, p.res.companion, p.parsed = r.format, r.companion, r
        p.res.systems_named = r.named or Counter()
        if r.segment is None:
            close_segment()
            writer.add(p)
            continue
        if seg is not None and r.segment != seg:
            close_segment()
            seg_off = 0
        seg = r.segment
        seg_files.append(p)
    close_segment()
    return True



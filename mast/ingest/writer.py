"""The group writer of :mod:`mast.ingest.pipeline`: small files committed a group at a time.

One transaction holds several *whole* files, so each file is still stored whole or not at
all, while the fixed cost of a statement and of a commit is paid per group rather than per
file.  A group that fails is written again file by file, so that the error lands on the
file that caused it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from mast.errors import IngestAborted, IngestError, MastError
from mast.ingest.faults import IngestLimits, file_error
from mast.ingest.identity import poorer_in_group, without
from mast.ingest.summary import FileResult
from mast.store import Store, WriteHook

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from mast.store import TraceTables

#: Commit a group of small files once it holds this many bytes of source or this many files.
#: The first group is smaller and the limit grows fourfold per commit, so that the first
#: files are stored (and a killed run has made progress) within a fraction of a second (4 MB
#: parse in ~0.3 s).  Each group pays a fixed cost per INSERT (DuckDB compiles the RE2
#: programs of the redaction chains it carries for every statement) and per feature pass,
#: ~0.05 CPU-s: a first group of 0.5 MB made 20 MB four groups, 4 MB makes it two (-0.1 to
#: -0.2 CPU-s, +10-20 MB peak RSS on the 20 MB framework corpora); groups go up to 16 MB
#: (32 MB saved a little more CPU but held up to 50 MB more; bench/RESULTS.md, issue 16).
GROUP_BYTES_FIRST = 4_000_000
GROUP_BYTES = 16_000_000
GROUP_FILES = 2048


@dataclass
class _Parsed:
    """What a parser reports for one small file (picklable, errors too: it may come from a worker)."""

    format: str | None = None
    traces: int = 0
    segment: int | None = None  # index of the chunk segment holding its traces
    companion: str | None = None
    error: MastError | None = None
    named: Counter | None = None  # traces per system-naming rule


@dataclass
class _Pending:
    res: FileResult
    size: int
    key: str = ""
    mtime_ns: int = 0
    parsed: _Parsed | None = None
    path: Path | None = None  # the file as the OS names it (res.path is its printable form)
    #: whether the store may hold an earlier version of it (recorded when the ingest began)
    known: bool = True


class _Stop(Exception):
    """Raised by the writer when ingest must end at once (an IngestAborted was reported)."""


class _GroupWriter:
    """Commits small files in groups: one transaction holds several *whole* files.

    A file joins a group only after it was read completely, so a group's transaction
    still stores each of its files whole or not at all; committing every few MB instead
    of every file removes the per-statement and per-commit cost that dominated ingest of
    many small files.  If a group fails to write, its files are retried one by one so
    that the error lands on the file that caused it.

    With ``background``, a group that fills up is written by a thread of its own while the
    next one is gathered (DuckDB runs its statements without the GIL, so parsing goes on on
    the other core).  At most one group is in flight, and the store is touched by one
    thread at a time: every call that writes, and :meth:`drain`, first waits for it.  Files
    are still reported in order, by the caller's thread.
    """

    def __init__(self, store: Store, report: Callable[[FileResult, int], None], hooks: Sequence[WriteHook] = (),
                 lim: IngestLimits | None = None, background: bool = False):
        self.store, self.report, self.hooks = store, report, hooks
        self.lim = lim or IngestLimits()
        self.pending: list[_Pending] = []  # every file, in order (reported at flush)
        self.segments: list[tuple[TraceTables, list[_Pending]]] = []
        self.bytes = 0
        self.limit = GROUP_BYTES_FIRST
        self.background = background
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None

    def add(self, p: _Pending) -> None:
        """A file with nothing to write (unchanged, companion)."""
        self.pending.append(p)

    def add_segment(self, tables: TraceTables, files: list[_Pending]) -> None:
        self.pending.extend(files)
        self.segments.append((tables, files))
        self.bytes += sum(p.size for p in files)
        if self.bytes >= self.limit or len(self.pending) >= GROUP_FILES:
            self.flush(wait=False)
            self.limit = min(GROUP_BYTES, self.limit * 4)

    def flush(self, wait: bool = True) -> None:
        """Commit the group; raises :class:`_Stop` (after reporting) when ingest must end.

        ``wait=False`` (with ``background``): hand the group to the writer thread and
        return; its files are reported when the next flush (or :meth:`drain`) waits for it."""
        self._join()
        pending, segments = self.pending, self.segments
        self.pending, self.segments, self.bytes = [], [], 0
        if segments and self.background and not wait:
            if self._pool is None:
                # Imported here, though standard library: concurrent.futures brings logging
                # (~0.007 s of every start), and only a job with parser processes writes in
                # the background.
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mast-writer")
            self._inflight = self._pool.submit(self._commit, pending, segments)
            return
        self._finish(self._commit(pending, segments) if segments else ([(p.res, p.size) for p in pending], False))

    def drain(self) -> None:
        """Wait for the group in flight and report its files; the writer thread ends."""
        try:
            self._join()
        except _Stop:
            pass
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _join(self) -> None:
        fut, self._inflight = self._inflight, None
        if fut is not None:
            self._finish(fut.result())

    def _finish(self, done: tuple[list[tuple[FileResult, int]], bool]) -> None:
        reports, stop = done
        for res, size in reports:
            self.report(res, size)
        if stop:
            raise _Stop

    def _commit(self, pending: list[_Pending], segments: list[tuple[TraceTables, list[_Pending]]]
                ) -> tuple[list[tuple[FileResult, int]], bool]:
        """Write one group; what to report, in order, and whether ingest must stop.

        Runs on the writer thread when in the background: it reports nothing itself."""
        try:
            self._write([t for t, _ in segments], [p for _, fs in segments for p in fs])
        except Exception:  # the boundary: a group that fails is retried file by file
            # ...disk full and out of memory too: the files before the one that fails
            # alone are stored, and ingest stops at that one.
            for tables, files in segments:  # find the culprit: each file alone
                off = 0
                for p in files:
                    try:
                        self._write([tables.select(off, p.parsed.traces)], [p])
                    except Exception as e:  # the boundary, per file
                        err = self._error(p, e)
                        if isinstance(err, IngestAborted):
                            return self._abort(pending, p, err), True
                        p.res = FileResult(p.res.path, None, error=err)
                    off += p.parsed.traces
        return [(p.res, p.size) for p in pending], False

    def _error(self, p: _Pending, e: BaseException) -> IngestError:
        return file_error(p.path or p.res.path, e, memory_limit=self.lim.memory_limit)

    @staticmethod
    def _abort(pending: list[_Pending], culprit: _Pending, err: IngestError) -> list[tuple[FileResult, int]]:
        """What to report when ingest stops at ``culprit``: what came before it (stored
        earlier, or unchanged), then it."""
        out = []
        for p in pending:
            if p is culprit:
                break
            if p.parsed is None or p.parsed.segment is None or p.res.error or p.res.traces_new \
                    or p.res.traces_present:
                out.append((p.res, p.size))
        out.append((FileResult(culprit.res.path, None, error=err), culprit.size))
        return out

    def _write(self, parts: list[TraceTables], files: list[_Pending]) -> None:
        with self.store.transaction():
            sizes = [p.parsed.traces for p in files]
            ids = [i for t in parts for i in t.traces.column("trace_id").to_pylist()]
            offs = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
            runs = [r for t in parts for r in t.run_rows()]
            keys, fmts = [p.key for p in files], [p.parsed.format for p in files]
            runs = [runs[offs[k]:offs[k + 1]] for k in range(len(files))]
            # one trace per run: the poorer artefacts of a run in this group are not written
            drop = poorer_in_group(keys, fmts, runs)
            wparts, wsizes = without(parts, sizes, drop) if drop else (parts, sizes)
            results = self.store.write_parts(wparts, wsizes, self.hooks)
            # no earlier version of any of them: nothing of theirs to replace or forget
            fresh = not any(p.known for p in files)
            replaced = self.store.record_files([(p.key, p.size, p.mtime_ns, p.parsed.format, p.parsed.traces)
                                                for p in files],
                                               [ids[offs[k]:offs[k + 1]] for k in range(len(files))], fresh=fresh)
            sources = self.store.record_sources(keys, fmts, runs, unwritten=drop, fresh=fresh)
        for p, w, r, src in zip(files, results, replaced, sources):
            p.res.traces_new, p.res.traces_present, p.res.steps = w.new, w.present, w.steps
            p.res.traces_replaced, p.res.labels_replaced = r.traces, r.labels
            p.res.take_sources(src)
            p.res.key = p.key

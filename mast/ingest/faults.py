"""What goes wrong with one file, as that file's error: the pipeline's fault boundary.

Contract:
- :func:`file_error` turns *any* exception raised while reading, encoding or storing one
  file into an :class:`~mast.errors.IngestError` naming that file (and the record, when
  known).  An importer's own errors pass unchanged; an exception it did not expect is an
  :class:`~mast.errors.ImporterCrash`; Python running out of recursion is "nested too
  deeply"; a file that cannot be opened is "cannot read file".
- Running out of room is not the file's fault and no other file would fare better: a
  full disk (ENOSPC, EDQUOT, EFBIG) becomes :class:`~mast.errors.DiskFull` and memory
  running out (Python's MemoryError, DuckDB's Out of Memory) :class:`~mast.errors.OutOfMemory`,
  both :class:`~mast.errors.IngestAborted`: the pipeline stops at once, the file's
  transaction rolled back, and says what to do.
- :func:`read_whole` reads one file's traces with that boundary around the importer;
  :func:`encode_files` encodes several files' traces together and, if that fails, finds
  the file that made it fail.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from mast.errors import (DiskFull, ImporterCrash, IngestAborted, IngestError, MastError, OutOfMemory,
                         StoreError, StoreFull, StoreOutOfMemory, UsageError, path_text)
from mast.ingest._util import DEFAULT_MAX_RECORD_MB, max_record_bytes, too_big
from mast.model import Trace
from mast.settings import current as current_settings
from mast.store.rows import RowTables, encode_rows

if TYPE_CHECKING:
    from mast.store.encode import TraceTables

#: DuckDB's memory limit during ingest unless MAST_INGEST_MEMORY_LIMIT says otherwise.
INGEST_MEMORY_DEFAULT = "256MB"

@dataclass(frozen=True)
class IngestLimits:
    """Resource limits of one ingest (from MAST_INGEST_MAX_RECORD_MB / MAST_INGEST_MEMORY_LIMIT)."""

    max_record: int = DEFAULT_MAX_RECORD_MB * 1_000_000
    memory_limit: str = INGEST_MEMORY_DEFAULT
    #: whether the user chose ``memory_limit``: then it is kept as given, even if it equals the
    #: default (ingest otherwise lowers the pool of a writer that only appends).  None: chosen
    #: if it differs from the default.
    memory_set: bool | None = None

    def __post_init__(self) -> None:
        if self.memory_set is None:
            object.__setattr__(self, "memory_set", self.memory_limit != INGEST_MEMORY_DEFAULT)

    @staticmethod
    def from_settings(settings=None) -> "IngestLimits":
        s = settings or current_settings()
        mb = (s.ingest_max_record_mb or "").strip()
        mem = (s.ingest_memory_limit or "").strip()
        try:
            max_record = int(float(mb) * 1_000_000) if mb else DEFAULT_MAX_RECORD_MB * 1_000_000
        except ValueError:
            max_record = 0
        if max_record <= 0:
            raise UsageError(f"MAST_INGEST_MAX_RECORD_MB={mb!r} is not a positive number of megabytes")
        if mem and not _MEMORY_RX.match(mem):
            raise UsageError(f"MAST_INGEST_MEMORY_LIMIT={mem!r} is not a memory size",
                             "Give a size DuckDB reads, such as 512MB or 2GB.")
        return IngestLimits(max_record, mem or INGEST_MEMORY_DEFAULT, bool(mem))


_MEMORY_RX = re.compile(r"(?i)^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DISK_HINT = ("Free space on the disk holding the store (and DuckDB's temporary directory), then rerun the same "
             "command: files already stored are skipped, and this one is read again from the start.")
MEMORY_HINT = ("Raise DuckDB's memory limit for ingest (MAST_INGEST_MEMORY_LIMIT, default {limit}), give the "
               "process more memory, or split the file; then rerun: files already stored are skipped.")
#: How much of an unexpected exception's text goes into the message.
_DETAIL_CHARS = 300


def file_error(path: Path | str, exc: BaseException, *, record: int | str | None = None,
               importer: str | None = None, memory_limit: str = INGEST_MEMORY_DEFAULT) -> IngestError:
    """``exc``, raised while reading or storing ``path``, as that file's error."""
    if isinstance(exc, IngestError):  # the importer's own words (or an abort already named)
        return exc
    if isinstance(exc, StoreFull) or (isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS):
        return DiskFull(path, record, f"disk full while storing this file, nothing of it was stored ({_detail(exc)})",
                        DISK_HINT)
    if isinstance(exc, (StoreOutOfMemory, MemoryError)):
        return OutOfMemory(path, record, "out of memory while reading or storing this file, nothing of it was "
                           f"stored ({_detail(exc) or type(exc).__name__})", MEMORY_HINT.format(limit=memory_limit))
    if isinstance(exc, RecursionError):
        return IngestError(path, record, "nested too deeply to read (Python's recursion limit)",
                           "Flatten or split the record.")
    if isinstance(exc, OSError):
        return IngestError(path, record, f"cannot read file: {exc.strerror or exc}")
    if isinstance(exc, StoreError):
        return IngestError(path, record, f"not stored: {exc}", exc.hint)
    if isinstance(exc, MastError):
        return IngestError(path, record, str(exc), exc.hint)
    who = f"the {importer} importer" if importer else "reading it"
    return ImporterCrash(path, record, f"{who} failed unexpectedly: {type(exc).__name__}: {_detail(exc)}",
                         "This is a bug in mast (or a file shaped as it never expected): please report it "
                         "with the file. The other files are not affected.")


def _detail(exc: BaseException) -> str:
    s = str(exc).splitlines()[0] if str(exc) else ""
    return s if len(s) <= _DETAIL_CHARS else s[:_DETAIL_CHARS] + "…"


def contained(path: Path, traces: Iterator[Trace], importer: str | None = None,
              memory_limit: str = INGEST_MEMORY_DEFAULT) -> Iterator[Trace]:
    """``traces`` as the importer yields them; whatever it raises becomes the file's error.

    An unexpected exception names the trace being read (the count read before it), as
    near to a record as a format-agnostic boundary can get.
    """
    n = 0
    it = iter(traces)
    while True:
        try:
            t = next(it)
        except StopIteration:
            return
        except Exception as e:  # the boundary: whatever an importer raises is this file's error
            raise file_error(path, e, record=None if isinstance(e, MastError) else f"trace {n}",
                             importer=importer, memory_limit=memory_limit) from None
        n += 1
        yield t


def fix_source_path(path: Path, traces: Sequence[Trace]) -> None:
    """Store a file name that is not UTF-8 in the same printable form its errors use."""
    shown = path_text(path)
    if shown != str(path):
        for t in traces:
            if t.source_path is not None:
                t.source_path = path_text(t.source_path)


def check_sizes(path: Path, trace: Trace) -> None:
    """A trace whose task or step text is over the record cap is an error naming it.

    Only called for files larger than the cap (no string of a smaller file can exceed
    it: a character takes at least one byte of source).
    """
    cap = max_record_bytes()
    where = trace.source_index if trace.source_index is not None else None
    if trace.task and len(trace.task) > cap:
        raise too_big(path, where, "the task text", len(trace.task))
    for i, s in enumerate(trace.steps):
        for name in ("content", "tool_args"):
            v = getattr(s, name)
            if v is not None and len(v) > cap:
                raise too_big(path, where, f"step {i}'s {name.replace('_', ' ')}", len(v))


# -- text that is not valid Unicode -----------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub_str(s: str) -> str:
    # Lone surrogates (JSON's "\ud83d" without its pair, a truncated emoji) cannot be
    # UTF-8: they become U+FFFD, as a decoder's "replace" does with bad bytes.
    return _SURROGATE.sub("\ufffd", s) if isinstance(s, str) else s


def _scrub_value(v: Any) -> Any:
    """``v`` with every string (keys too) scrubbed; iterative, so any nesting is safe."""
    if isinstance(v, str):
        return _scrub_str(v)
    if not isinstance(v, (dict, list)):
        return v
    root: list = [v]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        x = parent[key]
        if isinstance(x, str):
            parent[key] = _scrub_str(x)
        elif isinstance(x, list):
            y = list(x)
            parent[key] = y
            stack.extend((y, i) for i in range(len(y)))
        elif isinstance(x, dict):
            y = {_scrub_str(k) if isinstance(k, str) else k: w for k, w in x.items()}
            parent[key] = y
            stack.extend((y, k) for k in y)
    return root[0]


def scrub(traces: Sequence[Trace]) -> None:
    """Replace text that UTF-8 cannot hold (lone surrogates) in every field of ``traces``."""
    for t in traces:
        for name in ("system", "framework", "task", "source_path", "trace_id"):
            setattr(t, name, _scrub_str(getattr(t, name)))
        t.metadata = _scrub_value(t.metadata)
        for s in t.steps:
            for name in ("span_id", "parent_span_id", "agent", "role", "content", "tool_name", "tool_args",
                         "target_agent", "started_at", "ended_at", "status"):
                setattr(s, name, _scrub_str(getattr(s, name)))
            s.attributes = _scrub_value(s.attributes)
        for a in (*t.annotations, *t.attributions):
            for name in ("rationale", "annotator", "agent"):
                if hasattr(a, name):
                    setattr(a, name, _scrub_str(getattr(a, name)))


def encode(traces: Sequence[Trace], small: bool) -> TraceTables | RowTables:
    """The batch for :meth:`mast.store.Store.write_parts`: lists when ``small``, else Arrow."""
    if small:
        return encode_rows(traces)
    from mast.store.encode import encode_traces  # pyarrow (and numpy): ~0.15 s to import, for big jobs only

    return encode_traces(traces)


def encode_safely(traces: Sequence[Trace], small: bool = False) -> TraceTables | RowTables:
    """The traces encoded (:func:`encode`: lists when ``small``, else Arrow), retried once
    with text scrubbed if it is not valid Unicode."""
    try:
        return encode(traces, small)
    except UnicodeEncodeError:
        scrub(traces)
        return encode(traces, small)


@dataclass
class Encoded:
    """What :func:`encode_files` made of a run of files: segments of whole files, and failures."""

    segments: list[tuple[TraceTables | RowTables, list[int]]]  # (tables, indexes of the files they hold)
    errors: dict[int, IngestError]


def encode_files(files: Sequence[tuple[Path, list[Trace]]],
                 error: Callable[[Path, BaseException], IngestError], small: bool = False) -> Encoded:
    """Encode the traces of consecutive files together (cheaper than one by one).

    If that fails, each file is encoded alone, so a failure lands on the file that
    caused it and the others still make segments (of one file each).
    """
    try:
        return Encoded([(encode_safely([t for _, ts in files for t in ts], small), list(range(len(files))))], {})
    except IngestAborted:
        raise
    except Exception:
        pass
    out = Encoded([], {})
    for i, (path, ts) in enumerate(files):
        try:
            out.segments.append((encode_safely(ts, small), [i]))
        except Exception as e:  # the boundary, per file
            err = error(path, e)
            if isinstance(err, IngestAborted):
                raise err from None
            out.errors[i] = err
    return out

"""Helpers every format module shares, so each failure reads the same whichever importer hit it.

- opening a file and walking its lines (:func:`open_source`, :func:`lines`), parsing one
  JSON line (:func:`json_line`) and JSON Lines files (:func:`iter_jsonl`): every error is an
  :class:`~mast.errors.IngestError` naming the file and the 1-based line;
- whole JSON documents and arrays of records (:func:`load_json`, :func:`iter_records`),
  errors naming the record index;
- the size limit on one record or string (:func:`max_record_bytes`, set per ingest by
  :func:`limits`) and the nesting limit of JSON (:func:`too_deep`, what every parse here
  raises when Python's parser gives up): a record over either is an error naming it;
- timestamps (:func:`iso_z`, :func:`iso_utc`), dict clean-up (:func:`drop_none`);
- the patterns that recognise a handoff in frameworks that do not log one as such
  (CrewAI's delegation tools, LangGraph's ``Command(goto=...)``).
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import gc
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator, TypeVar

from mast.errors import IngestError

T = TypeVar("T")

#: Default cap on one record (a JSON Lines line, an element of a JSON array) and on any
#: one string of a trace, in MB; MAST_INGEST_MAX_RECORD_MB raises it.  Storing a string
#: needs about twice its size of DuckDB memory (MAST_INGEST_MEMORY_LIMIT).
DEFAULT_MAX_RECORD_MB = 64
RECORD_LIMIT_HINT = ("Split the record, or raise the limit with MAST_INGEST_MAX_RECORD_MB "
                     f"(default {DEFAULT_MAX_RECORD_MB}; storing a string needs about twice its size "
                     "of MAST_INGEST_MEMORY_LIMIT).")
DEPTH_HINT = "Flatten or split the record."
_MAX_RECORD: contextvars.ContextVar[int] = contextvars.ContextVar("mast_max_record",
                                                                 default=DEFAULT_MAX_RECORD_MB * 1_000_000)


def max_record_bytes() -> int:
    """The cap on one record or string during this ingest (bytes; characters for text)."""
    return _MAX_RECORD.get()


@contextlib.contextmanager
def limits(max_record: int | None) -> Iterator[None]:
    """Run an ingest (or a worker's chunk of it) with this record cap (None: the default)."""
    token = _MAX_RECORD.set(max_record or DEFAULT_MAX_RECORD_MB * 1_000_000)
    try:
        yield
    finally:
        _MAX_RECORD.reset(token)


def too_big(path: Path, record: int | str | None, what: str, size: int | None = None) -> IngestError:
    """``what`` is over :func:`max_record_bytes` (``size``: how far, when known without reading on)."""
    over = f"{_size(size)} > " if size is not None else "over "
    return IngestError(path, record, f"{what} is over the size limit ({over}{_size(max_record_bytes())})",
                       RECORD_LIMIT_HINT)


def _size(n: int) -> str:
    return f"{n / 1e6:,.4g} MB" if n >= 100_000 else f"{n:,} bytes"


def too_deep(path: Path, record: int | str | None) -> IngestError:
    # json's C parser gives up at Python's recursion limit, less the stack in use.
    return IngestError(path, record, f"JSON nested too deeply (over about {sys.getrecursionlimit() - 100} "
                       "levels)", DEPTH_HINT)


#: CrewAI's built-in delegation tools: a call to one is a handoff to the named coworker.
#: CrewAI 1.x events and its own spans name them as sent to the model
#: (``delegate_work_to_coworker``); the tools themselves and OpenInference by their title.
DELEGATE_RX = re.compile(r"(?i)^(delegate[ _]work[ _]to[ _]coworker|ask[ _]question[ _]to[ _]coworker)$")
#: langgraph-supervisor hands over by raising ``ParentCommand(Command(goto=...))``: the
#: "error" it records is a handoff, and ``goto`` names the target.
PARENT_CMD_RX = re.compile(r"ParentCommand\(")
GOTO_RX = re.compile(r"goto=(?:\[)?['\"]([^'\"]+)['\"]")


def strip_bom(head: bytes) -> bytes:
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def first_char(head: bytes) -> str:
    s = strip_bom(head).lstrip()
    return chr(s[0]) if s else ""


class DeclineDetects:
    """Base for an importer whose ``detect`` is "its ``decline`` finds nothing against it".

    ``decline(path, head) -> (depth, reason) | None`` is then the one place an importer's
    checks live, so the reason a file is refused (`mast formats`' closest importer) can
    never disagree with whether it is taken.
    """

    def detect(self, path, head: bytes) -> bool:
        return self.decline(path, head) is None


def first_json(head: bytes, into_array: bool = True) -> Any:
    """The first JSON value in a file's head (its first element, if it opens an array).

    Detectors judge a file by its first record; a ValueError means that record is not
    JSON or does not end within the head, and each detector decides what that means.
    The value is shared by the detectors asking about the same head (see :func:`_memo`):
    read it, never change it.
    """
    # (into_array only matters for a head that opens an array: one decode serves both)
    return _memo(("first", into_array and first_char(head) == "["), head, _first_json)


def _first_json(key: tuple, head: bytes) -> Any:
    text = strip_bom(head).decode("utf-8", "replace").lstrip()
    if key[1]:
        text = text[1:].lstrip()
    return json.JSONDecoder().raw_decode(text)[0]


def line_json(line: bytes) -> Any:
    """``json.loads(line)`` of a head's first line, shared by the detectors asking (see
    :func:`_memo`): read it, never change it."""
    # JSON's own whitespace around the line changes nothing json.loads returns: stripped,
    # the callers' differently trimmed first lines share one decode
    return _memo("line", line.strip(b" \t\r\n"), lambda _, b: json.loads(b))


#: kind -> (bytes, value, error) of the last head decoded for detection
_LAST: dict[Any, tuple] = {}


def _memo(kind: Any, data: bytes, decode) -> Any:
    """``decode(kind, data)``, remembered for the last ``data`` of each kind.

    Detection asks some 25 importers about each file, and a dozen of them decode the
    same 64 KB head (or its first line) as JSON: for a file of one long line, such as
    a compact OTLP request, that was most of the cost of ingesting a small file.  The
    error is remembered too (and raised again), so a head that is no JSON is decoded
    once as well.
    """
    last = _LAST.get(kind)
    if last is not None and (last[0] is data or last[0] == data):
        if last[2] is not None:
            raise last[2].with_traceback(None)
        return last[1]
    try:
        value = decode(kind, data)
    except Exception as e:
        _LAST[kind] = (data, None, e)
        raise
    _LAST[kind] = (data, value, None)
    return value


def load_json(path: Path) -> Any:
    """Load a whole JSON file, turning every failure into an IngestError."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    if not raw or raw.isspace():  # (strip() would copy the whole file to find out)
        raise IngestError(str(path), None, "file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(str(path), None, f"not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise too_deep(path, _bad_element(text, len(text))) from None
    except json.JSONDecodeError as e:
        # A string still open at the end of the file, or an error at the very end, means
        # the file was cut short (JSON strings cannot span raw newlines).
        truncated = e.msg.startswith("Unterminated string") or e.pos >= len(text.rstrip()) - 1
        raise IngestError(str(path), _bad_element(text, e.pos),
                          f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
                          + (" (file truncated?)" if truncated else "")) from None


def _bad_element(text: str, pos: int) -> int | None:
    """Index of the top-level array element holding the error at ``pos`` (None if not an array).

    Only runs on the error path, so a file that parses pays nothing for it.
    """
    i = len(text) - len(text.lstrip())
    if not text.startswith("[", i):
        return None
    dec = json.JSONDecoder()
    i += 1
    n = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= pos:
            return n
        try:
            _, i = dec.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError):
            return n
        n += 1


def open_source(path: Path) -> IO[bytes]:
    """The file opened for binary reading; failing to open it is an IngestError naming it."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None


def lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) for every line of the file, a BOM taken off line 1.

    Raw bytes, because some logs mix JSON records with plain text that each format
    treats its own way; blank lines are yielded too, for formats that count them.  A
    line over :func:`max_record_bytes` is an error naming it, found without reading
    more of it than the limit.
    """
    cap = max_record_bytes()
    with open_source(path) as f:
        lineno = 0
        while True:
            raw = f.readline(cap + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > cap:
                raise too_big(path, f"line {lineno}", "the line")
            yield lineno, strip_bom(raw) if lineno == 1 else raw


_JSON_OPENERS = (b"{", b"[")
_JSON_OPENERS_STR = ("{", "[")
_DECODE = json.JSONDecoder().decode  # json.loads' own default decoder, called directly
_SCAN = json.JSONDecoder().scan_once  # the scanner inside such a decoder's decode()


def json_line(path: Path, lineno: int, line: bytes | str) -> Any:
    """One JSON Lines record; a line that does not parse is an error naming file and line.

    A bad line in an append-only log is almost always the last one, cut by a crash:
    the message says so.
    """
    try:
        if type(line) is bytes and line[:1] in _JSON_OPENERS and line[1:2] not in (b"", b"\x00"):
            # what json.loads does with such bytes (its encoding sniff says UTF-8), without
            # the sniff and the call layers: a per-line cost on every JSON Lines file
            return _DECODE(line.decode("utf-8", "surrogatepass"))
        return json.loads(line)
    except RecursionError:
        raise too_deep(path, f"line {lineno}") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
        reason = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise IngestError(str(path), f"line {lineno}", f"invalid JSON ({reason}); file truncated?") from None


def first_line_object(path: Path) -> tuple[Any, bool] | None:
    """The file's first line as a JSON object, and whether more text follows it.

    None when that line is not a complete object by itself, i.e. the file is one JSON
    document spread over lines, not JSON Lines.  Both named and unnamed JSON Lines files
    exist in the wild, so the suffix alone cannot decide.
    """
    with open_source(path) as f:
        # A JSON array on one line (a results file) would otherwise be read whole here.
        start = strip_bom(f.read(64)).lstrip(b" \t\r\x0b\x0c")
        if start[:1] and start[:1] != b"{":
            return None
        f.seek(0)
        line = strip_bom(f.readline()).strip()
        if not line.startswith(b"{"):
            return None
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return None
        return obj, bool(f.read(64).strip())


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (0-based line index, object) for each non-blank line of a JSON Lines file."""
    for lineno, raw in lines(path):
        if raw.strip():
            yield lineno - 1, json_line(path, lineno, raw)


def documents(path: Path) -> Iterator[tuple[int, Any]]:
    """(index, document) of a file that holds one JSON document, an array of them, or one per line."""
    if path.suffix in (".jsonl", ".ndjson") or first_line_object(path) is not None:
        yield from iter_jsonl(path)
        return
    data = load_json(path)
    yield from enumerate(data if isinstance(data, list) else [data])


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for an importer's loop that decodes a file's
    records and builds its spans or steps, tens of thousands of objects without cycles,
    over which the collector's passes (the older generations' over a heap that only
    grows) cost a tenth to a fifth of the parse.  Never around a ``yield``: the consumer's
    code would run without collection too.  Whatever it left is collected after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


#: the first 16 bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_probe(path: Path, head: bytes, ask: Callable[[Any], T]) -> T | None:
    """``ask(connection)`` on a SQLite file opened read-only, for a detector: None when
    ``head`` is no SQLite header or the file is no readable database.  sqlite3 is imported
    only for such files (every detection asks the SQLite importers)."""
    if not head.startswith(SQLITE_HEADER):
        return None
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return ask(con)
        finally:
            con.close()
    except sqlite3.Error:
        return None


@contextlib.contextmanager
def sqlite_reading(path: Path) -> Iterator[tuple[Any, set[str]]]:
    """A SQLite file opened read-only for an importer's ``read``, with its table names.
    Every failure is an :class:`IngestError` naming the file: it cannot be opened, its
    schema cannot be read (truncated), or a query inside the block fails (damaged)."""
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise IngestError(str(path), None, f"cannot open SQLite database: {e}") from None
    try:
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise IngestError(str(path), None, f"not a readable SQLite database ({e}); file truncated?") from None
        yield con, tables
    except sqlite3.DatabaseError as e:
        raise IngestError(str(path), None, f"SQLite error while reading: {e}; file truncated or damaged?") from None
    finally:
        con.close()


#: the youngest generation's threshold during an ingest (CPython's default is 700)
INGEST_GC_GEN0 = 20_000


@contextlib.contextmanager
def ingest_collector() -> Iterator[None]:
    """The cyclic collector set for an ingest, and put back after: what is alive when it
    starts (the imported modules, the caller's objects) frozen out of every collection,
    and young collections 30 times rarer.  An ingest allocates millions of short-lived,
    acyclic objects (decoded records, spans, steps, Arrow buffers); at 700 allocations a
    pass, the passes and the promotions they cause cost 4-6 % of the CPU of a 20 MB ingest
    (bench/RESULTS.md).  The threshold bounds what a cycle can hold before it is found to
    20,000 objects, a few MB."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(INGEST_GC_GEN0, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


#: JSON Lines files up to this size may be read whole by :func:`jsonl_records`
WHOLE_JSONL_BYTES = 32_000_000


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """What :func:`iter_jsonl` yields, with the same errors, for an importer that keeps the
    whole file anyway (it groups its records into traces at the end).

    A file up to :data:`WHOLE_JSONL_BYTES` (and the record cap) is read and decoded once
    and split on newlines, so that each line costs one decoder call instead of a read,
    a bytes decode and two call layers (on files of short records that is most of the
    parse).  A line the fast route cannot take as it stands (not ``{``/``[`` first, or
    invalid) is handed to :func:`json_line` as its bytes, for the same result or error;
    a file that is no UTF-8 throughout, or larger, goes the line-by-line way.
    """
    cap = max_record_bytes()
    with open_source(path) as f:
        try:
            data = f.read(min(cap, WHOLE_JSONL_BYTES) + 1)
        except OSError as e:
            raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    try:
        text = None if len(data) > min(cap, WHOLE_JSONL_BYTES) else data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = None
    if text is None:
        yield from iter_jsonl(path)
        return
    del data
    if text.startswith("\ufeff"):  # lines() takes a UTF-8 BOM off line 1
        text = text[1:]
    scan = _SCAN
    pieces = text.split("\n")
    last = len(pieces) - 1
    for i, line in enumerate(pieces):
        # bytes.strip()'s whitespace, not str.strip()'s (which also drops Unicode spaces)
        if not line.strip(" \t\r\x0b\x0c"):
            continue
        if line[:1] in _JSON_OPENERS_STR and line[1:2] not in ("", "\x00"):
            # the decoder's own scanner, as decode() calls it for a line with no leading
            # white space (without its two white-space matches per call); anything but
            # one value and trailing white space is json_line's to refuse
            try:
                obj, end = scan(line, 0)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if end != len(line) and (end < 0 or line[end:].strip(" \t\r")):
                obj = json_line(path, i + 1, _raw(line, i < last))  # raises its error
        else:
            obj = json_line(path, i + 1, _raw(line, i < last))
        yield i, obj


def _raw(line: str, newline: bool) -> bytes:
    # the line's bytes as lines() reads them, its newline too (UTF-16 text parts from it)
    return line.encode("utf-8", "surrogatepass") + (b"\n" if newline else b"")


#: JSON arrays larger than this are read element by element (see iter_records); one
#: element may not exceed max_record_bytes() (bounds memory on a corrupt file too).
STREAM_JSON_BYTES = 8_000_000


def iter_records(path: Path, expected: str = "a JSON array of records") -> Iterator[Any]:
    """The records of a file holding a JSON array of them (or one object), one at a time.

    Small files are loaded whole (with :func:`load_json`'s messages).  A large array is
    parsed element by element, so memory holds a record and a read buffer, never the
    whole file: ingest's memory stays bounded whatever the file size.  Errors name the
    record index.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    if size <= STREAM_JSON_BYTES or first_char(head) != "[":
        yield from records(path, load_json(path), expected)
        return
    yield from _stream_array(path)


def _stream_array(path: Path) -> Iterator[Any]:
    dec = json.JSONDecoder()
    udec = codecs.getincrementaldecoder("utf-8-sig")()
    where = str(path)
    with open(path, "rb") as f:
        buf, pos, eof, index, want = "", 0, False, 0, 1 << 20

        def more() -> None:
            nonlocal buf, pos, eof, want
            chunk = f.read(want)
            try:
                text = udec.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise IngestError(where, index, "not UTF-8 text") from None
            eof = not chunk
            buf, pos = buf[pos:] + text, 0

        def skip_ws() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf):
                    return buf[pos]
                if eof:
                    return ""
                more()

        more()
        if skip_ws() != "[":
            raise IngestError(where, None, "expected a JSON array")
        pos += 1
        if skip_ws() == "]":
            return
        while True:
            skip_ws()
            while True:
                try:
                    obj, end = dec.raw_decode(buf, pos)
                    if end < len(buf) or eof:  # a number cut by the read boundary parses too
                        break
                except RecursionError:
                    raise too_deep(path, index) from None
                except json.JSONDecodeError as e:
                    if eof:
                        raise IngestError(where, index, f"invalid JSON: {e.msg}"
                                          + (" (file truncated?)" if e.pos >= len(buf.rstrip()) - 1
                                             or e.msg.startswith("Unterminated string") else "")) from None
                    if len(buf) - pos > max_record_bytes():
                        raise IngestError(where, index, "invalid JSON, or a record over the size limit "
                                          f"({_size(max_record_bytes())})", RECORD_LIMIT_HINT) from None
                want = min(want * 2, 64 << 20)  # a record spanning reads: grow, so retries stay linear
                more()
            want = 1 << 20
            yield obj
            index += 1
            pos = end
            c = skip_ws()
            if c == ",":
                pos += 1
                continue
            if c == "]":
                pos += 1
                if skip_ws():
                    raise IngestError(where, None, "invalid JSON: extra data after the array")
                return
            raise IngestError(where, index, "invalid JSON: expected ',' or ']' after the record"
                              + (" (file truncated?)" if not c else ""))


def records(path: Path, data: Any, expected: str = "a JSON array of records") -> list:
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise IngestError(str(path), None, f"expected {expected}, found {type(data).__name__}")
    return data


def require(path: Path, index: int | str, rec: Any, *fields: str) -> None:
    if not isinstance(rec, dict):
        raise IngestError(str(path), index, f"expected an object, found {type(rec).__name__}")
    missing = [f for f in fields if f not in rec]
    if missing:
        raise IngestError(str(path), index, "missing required field(s): " + ", ".join(missing))


def as_text(v: Any) -> str | None:
    """Content as text without losing anything: structured content becomes JSON."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


def iso_z(ts: Any) -> str | None:
    """A timestamp as written, with a trailing ``Z`` spelled ``+00:00`` (as DuckDB reads it).

    For sources that already write ISO 8601; values are not otherwise re-parsed.
    """
    if ts is None:
        return None
    s = str(ts)
    return s[:-1] + "+00:00" if s.endswith("Z") else s


def iso_utc(v: Any) -> str | None:
    """A timestamp of any shape the AutoGen family writes, as UTC ISO 8601 (``...+00:00``).

    ISO with ``Z`` or an offset, AG2's naive ``YYYY-MM-DD HH:MM:SS.ffffff`` (which is UTC),
    ``logging``'s ``asctime`` with a comma, epoch seconds (or nanoseconds).  Naive values
    are taken as UTC; a value that is not a timestamp gives None rather than a guess.
    """
    if v is None or v == "":
        return None
    try:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # Epoch seconds (logging's record.created); nanoseconds when implausibly large.
            secs = v / 1e9 if v > 1e14 else v
            return datetime.fromtimestamp(secs, tz=timezone.utc).isoformat()
        s = str(v).strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        s = s.replace(",", ".", 1) if re.match(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d,\d+", s) else s
        dt = datetime.fromisoformat(s)
    except (ValueError, OverflowError, OSError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat()


def drop_none(d: dict) -> dict:
    """``d`` without its None values (attributes keep only what the source said)."""
    return {k: v for k, v in d.items() if v is not None}

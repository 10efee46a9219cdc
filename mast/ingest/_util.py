"""Shared helpers for importers: JSON loading with errors that name the file and record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError


def strip_bom(head: bytes) -> bytes:
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def first_char(head: bytes) -> str:
    s = strip_bom(head).lstrip()
    return chr(s[0]) if s else ""


def load_json(path: Path) -> Any:
    """Load a whole JSON file, turning every failure into an IngestError."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    if not raw.strip():
        raise IngestError(str(path), None, "file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(str(path), None, f"not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
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
        except json.JSONDecodeError:
            return n
        n += 1


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line index, object) for each non-blank line of a JSON Lines file."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    with f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except (ValueError, UnicodeDecodeError) as e:
                raise IngestError(str(path), f"line {i + 1}", f"invalid JSON (file truncated?): {e}") from None


#: JSON arrays larger than this are read element by element (see iter_records).
STREAM_JSON_BYTES = 8_000_000
#: One element of a streamed array may not exceed this (bounds memory on a corrupt file).
MAX_ELEMENT_CHARS = 256_000_000


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
    import codecs

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
                except json.JSONDecodeError as e:
                    if eof:
                        raise IngestError(where, index, f"invalid JSON: {e.msg}"
                                          + (" (file truncated?)" if e.pos >= len(buf.rstrip()) - 1
                                             or e.msg.startswith("Unterminated string") else "")) from None
                    if len(buf) - pos > MAX_ELEMENT_CHARS:
                        raise IngestError(where, index, f"invalid JSON, or a record over {MAX_ELEMENT_CHARS:,} "
                                          "characters") from None
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

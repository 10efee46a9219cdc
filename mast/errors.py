"""Errors meant for users: one short message and, where there is one, the fix.

Anything else that escapes is a bug and keeps its traceback.  Every error here pickles
with its message, hint and fields (an ingest worker process hands its errors to the
writer as they are).
"""

from __future__ import annotations

import os
from typing import Any


class MastError(Exception):
    """Base for errors shown to the user as a message, not a traceback."""

    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint:
            self.hint = hint

    def __reduce__(self):
        # Exception's own pickling calls ``cls(*args)``, which subclasses whose constructor
        # takes other arguments (IngestError) cannot take: rebuild from the message and
        # the instance's fields instead, whatever the constructor.
        return _restore, (type(self), str(self), dict(self.__dict__))


def _restore(cls: type[MastError], message: str, state: dict[str, Any]) -> MastError:
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    e.__dict__.update(state)
    return e


class StoreError(MastError):
    pass


class StoreInUse(StoreError):
    hint = "Wait for the other mast process to finish, or use another store with -d/--db."


class StoreFull(StoreError):
    """A write failed because the store's file system is full (or refused to grow the file)."""

    hint = "Free space on the disk holding the store (or its temporary directory), then rerun."


class StoreOutOfMemory(StoreError):
    """DuckDB could not allocate memory for a write or a query."""


class StoreMissing(StoreError):
    hint = "Run `mast ingest PATH` first, or point -d/--db (or MAST_DB) at an existing store."


def path_text(path: str | os.PathLike) -> str:
    """A file name as printable, storable text: bytes that are not UTF-8 as ``\\xNN``.

    Python decodes such names with surrogate escapes, which neither UTF-8 output nor the
    store can hold; the escaped form is the same on every run, so a rerun finds the file
    it recorded.
    """
    s = os.fspath(path)
    if isinstance(s, bytes):
        return s.decode("utf-8", "backslashreplace")
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return os.fsencode(s).decode("utf-8", "backslashreplace") if _fs_escaped(s) else \
            s.encode("utf-8", "backslashreplace").decode("utf-8")


def _fs_escaped(s: str) -> bool:
    try:
        os.fsencode(s)
        return True
    except UnicodeEncodeError:
        return False


class IngestError(MastError):
    """A record that cannot be read.  Names the file and the record index."""

    def __init__(self, path: str | os.PathLike, record: int | str | None, message: str, hint: str | None = None):
        path = path_text(path)
        where = f"{path}" if record is None else f"{path}, record {record}"
        super().__init__(f"{where}: {message}", hint)
        self.path = path
        self.record = record
        self.reason = message


class UnknownFormat(IngestError):
    pass


class ImporterCrash(IngestError):
    """An importer failed on a file in a way it did not report itself (a bug, or a file
    shaped as it never expected): the file's error, so the other files go on."""


class IngestAborted(IngestError):
    """Ingest cannot go on at all (the disk is full, memory ran out): stop at once, even
    with ``--keep-going``; the file named was rolled back and a rerun continues with it."""


class DiskFull(IngestAborted):
    pass


class OutOfMemory(IngestAborted):
    pass


class UsageError(MastError):
    pass

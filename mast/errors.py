"""Errors meant for users: one short message and, where there is one, the fix.

Anything else that escapes is a bug and keeps its traceback.  Every error here pickles
with its message, hint and fields (an ingest worker process hands its errors to the
writer as they are).
"""

from __future__ import annotations

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


class StoreMissing(StoreError):
    hint = "Run `mast ingest PATH` first, or point -d/--db (or MAST_DB) at an existing store."


class IngestError(MastError):
    """A record that cannot be read.  Names the file and the record index."""

    def __init__(self, path: str, record: int | str | None, message: str, hint: str | None = None):
        where = f"{path}" if record is None else f"{path}, record {record}"
        super().__init__(f"{where}: {message}", hint)
        self.path = path
        self.record = record
        self.reason = message


class UnknownFormat(IngestError):
    pass


class UsageError(MastError):
    pass

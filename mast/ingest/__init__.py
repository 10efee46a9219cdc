"""Importers: one module per source format, one registry, detection from the first bytes.

Importer contract (see DESIGN.md "Contracts"): an object with
- ``name`` (the ``--format`` value) and ``description``;
- ``detect(path, head) -> bool`` where ``head`` is the file's first bytes
  (:data:`HEAD_BYTES`); it must be cheap and must not read the whole file;
- ``read(path) -> Iterator[Trace]`` yielding traces in file order with
  ``source_index`` set; a bad record raises :class:`mast.errors.IngestError` naming the
  file and the record.

Built-ins and plugins register the same way: a plugin package exposes an importer object
under the ``mast.importers`` entry-point group; built-ins are listed in ``_BUILTINS`` and
go through :func:`register` like any plugin.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from mast.errors import UnknownFormat, UsageError
from mast.model import Trace

HEAD_BYTES = 64 * 1024


@runtime_checkable
class Importer(Protocol):
    name: str
    description: str

    def detect(self, path: Path, head: bytes) -> bool: ...

    def read(self, path: Path) -> Iterator[Trace]: ...


_REGISTRY: dict[str, Importer] = {}
# Order matters for detection: specific formats first, the generic message list last.
_BUILTINS = [
    "mast.ingest.mad",
    "mast.ingest.whowhen",
    "mast.ingest.crewai",
    "mast.ingest.langsmith",
    "mast.ingest.langgraph",
    "mast.ingest.otel",
    "mast.ingest.autogen_events",
    "mast.ingest.autogen",
    "mast.ingest.ag2_runtime",
    "mast.ingest.ag2",
    "mast.ingest.generic",
]
_loaded = False


def register(importer: Importer) -> Importer:
    if importer.name in _REGISTRY and _REGISTRY[importer.name] is not importer:
        raise ValueError(f"importer {importer.name!r} registered twice")
    _REGISTRY[importer.name] = importer
    return importer


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTINS:
        importlib.import_module(mod)
    for ep in entry_points(group="mast.importers"):
        register(ep.load())


def importers() -> list[Importer]:
    _load()
    return list(_REGISTRY.values())


def get(name: str) -> Importer:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown format {name!r}",
                         "Known formats: " + ", ".join(sorted(_REGISTRY)) + " (or auto).") from None


def read_head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def companion_note(path: Path, head: bytes) -> str | None:
    """Why ``path`` is not a trace file, when an importer knows it as a companion.

    An importer may define ``companion(path, head) -> str | None`` for files it reads
    beside its own (a labels file next to its records).  Such files are skipped with
    the returned note; unknown files still fail detection.
    """
    for imp in importers():
        fn = getattr(imp, "companion", None)
        if fn is None:
            continue
        try:
            note = fn(path, head)
        except Exception:  # a companion check that chokes on odd bytes does not match
            note = None
        if note:
            return note
    return None


def detect(path: Path, head: bytes | None = None) -> Importer:
    """Return the first importer that recognises the file, or raise UnknownFormat."""
    head = read_head(path) if head is None else head
    if not head.strip():
        raise UnknownFormat(str(path), None, "file is empty")
    for imp in importers():
        try:
            if imp.detect(path, head):
                return imp
        except Exception:  # a detector that chokes on odd bytes simply does not match
            continue
    raise UnknownFormat(str(path), None, "no importer recognises this file",
                        "See `mast formats` for what mast reads, or pass --format.")

"""The importer registry: what mast reads, and in which order ``--format auto`` asks.

Importer contract (see DESIGN.md "Contracts"): an object with
- ``name`` (the ``--format`` value) and ``description``;
- ``detect(path, head) -> bool`` where ``head`` is the file's first bytes
  (:data:`HEAD_BYTES`); it must be cheap and must not read the whole file;
- ``read(path) -> Iterator[Trace]`` yielding traces in file order with
  ``source_index`` set; a bad record raises :class:`mast.errors.IngestError` naming the
  file and the record;
- optionally ``companion(path, head) -> str | None`` (see :func:`companion_note`),
  ``before``: the name of an importer it must be asked ahead of, ``example``: the first
  bytes of a typical file (shown by ``mast formats``), and ``decline(path, head)``: why it
  does not take a file (see :func:`closest`).

Built-ins and plugins are loaded the same way, from ``module:attribute`` references:
built-ins from :data:`BUILTINS`, plugins from the ``mast.importers`` entry-point group.
:data:`BUILTINS` is the only place that fixes detection order: specific formats first,
formats whose detection is looser later, the catch-all ``messages`` last.  A plugin is
asked after every built-in, unless it sets ``before`` (usually ``before = "messages"``,
so that a format that is also a list of role/content messages is not taken by the
catch-all).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

from mast.errors import UnknownFormat, UsageError
from mast.ingest.catalogue import BUILTIN_COMPANIONS, BUILTIN_FORMATS
from mast.plugins import entry_points, may_declare

if TYPE_CHECKING:  # the model (and hashlib with it) is not needed to list formats
    from mast.model import Trace

HEAD_BYTES = 64 * 1024

#: Built-in importers in detection order.  The order encodes which detector is stricter:
#: MAD and Who&When records are message-like, AgentChat messages look like events of
#: other logs, and everything with role/content would also pass for ``messages``.
BUILTINS = [
    "mast.ingest.formats.mad:MadImporter",
    "mast.ingest.formats.whowhen:WhoWhenImporter",
    "mast.ingest.formats.crewai:CrewAIEventsImporter",
    "mast.ingest.formats.crewai:CrewAICheckpointImporter",
    "mast.ingest.formats.crewai:CrewOutputImporter",
    "mast.ingest.formats.crewai:CrewAILogImporter",
    "mast.ingest.formats.crewai:CrewAIStepCallbackImporter",
    "mast.ingest.formats.langsmith:LangSmithImporter",
    "mast.ingest.formats.langgraph:LangGraphStreamImporter",
    "mast.ingest.formats.langgraph:LangGraphEventsImporter",
    "mast.ingest.formats.langgraph:LangGraphMessagesImporter",
    "mast.ingest.formats.otel.phoenix:PhoenixImporter",
    "mast.ingest.formats.otel.langfuse:LangfuseImporter",
    "mast.ingest.formats.otel.spantree:SpanTreeImporter",
    "mast.ingest.formats.otel.openai_agents:OpenAIAgentsImporter",
    "mast.ingest.formats.otel:OTelImporter",
    "mast.ingest.formats.magentic_one:MagenticOneLogImporter",
    "mast.ingest.formats.autogen_events:AutoGenEventsImporter",
    "mast.ingest.formats.autogen_state:AgentChatStateImporter",
    "mast.ingest.formats.autogen:AgentChatImporter",
    "mast.ingest.formats.ag2_runtime:AG2RuntimeDbImporter",
    "mast.ingest.formats.ag2_runtime:AG2RuntimeLogImporter",
    "mast.ingest.formats.openai_agents_session:OpenAIAgentsSessionImporter",
    "mast.ingest.formats.ag2:AG2EventsImporter",
    "mast.ingest.formats.ag2x_events:AG2xEventsImporter",
    "mast.ingest.formats.ag2x_hub:AG2xWalImporter",
    "mast.ingest.formats.ag2x_hub:AG2xAuditImporter",
    "mast.ingest.formats.ag2:AG2ChatImporter",
    "mast.ingest.formats.openai_agents_state:OpenAIAgentsStateImporter",
    "mast.ingest.formats.trajectory:TrajectoryImporter",
    "mast.ingest.formats.messages:MessagesImporter",
]
ENTRY_POINT_GROUP = "mast.importers"


@runtime_checkable
class Importer(Protocol):
    name: str
    description: str

    def detect(self, path: Path, head: bytes) -> bool: ...

    def read(self, path: Path) -> Iterator[Trace]: ...


_REGISTRY: dict[str, Importer] = {}
_order: list[Importer] | None = None
_loaded = False
#: Built-ins resolved so far (``module:attribute`` -> importer): detection imports an
#: importer's module only when it reaches that importer (see :func:`_in_order`).
_builtins: dict[str, Importer] = {}


def register(importer: Importer) -> Importer:
    """Add an importer (after the built-ins, or ahead of the one its ``before`` names)."""
    global _order
    _load()
    _add(importer)
    _order = None
    return importer


def _add(importer: Importer) -> None:
    if importer.name in _REGISTRY and _REGISTRY[importer.name] is not importer:
        raise ValueError(f"importer {importer.name!r} registered twice")
    _REGISTRY[importer.name] = importer


def _resolve(ref: str) -> Importer:
    """``module:attribute`` to an importer object; a class is instantiated (as built-ins are)."""
    mod, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(mod), attr)
    return obj() if isinstance(obj, type) else obj


def _builtin(ref: str) -> Importer:
    imp = _builtins.get(ref)
    if imp is None:
        imp = _builtins[ref] = _resolve(ref)
    return imp


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ref in BUILTINS:
        _add(_builtin(ref))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        _add(obj() if isinstance(obj, type) else obj)


def importers() -> list[Importer]:
    """Every importer, in the order detection asks them."""
    global _order
    _load()
    if _order is None:
        _order = _ranked(list(_REGISTRY.values()))
    return list(_order)


def _only_builtins() -> bool:
    """Whether the importers are exactly :data:`BUILTINS`, in that order: nothing registered
    in this process and no distribution that may declare a plugin (asked once a process)."""
    global _plugins
    if _loaded:
        return False
    if _plugins is None:
        _plugins = may_declare(ENTRY_POINT_GROUP)
    return not _plugins


_plugins: bool | None = None


def _in_order(companions: bool = False) -> Iterator[Importer]:
    """The importers in detection order, each built-in's module imported when the walk
    reaches it; ``companions``: only those that may know a companion file.

    With nothing but the built-ins, detection that stops at the first importer taking a
    file imports only the modules up to it (a small ingest spent a tenth of its time
    importing all 29: bench/RESULTS.md, "Start-up, session 7"), and the companion check
    only the built-ins the catalogue lists with a ``companion``.  Otherwise every importer,
    plugins included, in :func:`importers`' order."""
    if not _only_builtins():
        yield from importers()
        return
    for ref, (name, _, _) in zip(BUILTINS, BUILTIN_FORMATS, strict=True):
        if not companions or name in BUILTIN_COMPANIONS:
            yield _builtin(ref)


def listing() -> list[tuple[str, str, str | None]]:
    """``(name, description, example)`` of every importer, in detection order (``mast formats``).

    With nothing but the built-ins (no plugin installed, none registered) the rows come
    from :mod:`mast.ingest.catalogue`, so listing them imports no importer module."""
    if not _loaded and not may_declare(ENTRY_POINT_GROUP):
        return list(BUILTIN_FORMATS)
    return [(i.name, i.description, getattr(i, "example", None)) for i in importers()]


def _ranked(order: list[Importer]) -> list[Importer]:
    for imp in [i for i in order if getattr(i, "before", None)]:
        target = _REGISTRY.get(imp.before)
        if target is None:
            raise ValueError(f"importer {imp.name!r} asks to rank before {imp.before!r}, which is not registered")
        order.remove(imp)
        order.insert(order.index(target), imp)
    return order


def get(name: str) -> Importer:
    if _only_builtins():  # a built-in's own module only
        for ref, (n, _, _) in zip(BUILTINS, BUILTIN_FORMATS, strict=True):
            if n == name:
                return _builtin(ref)
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
    for imp in _in_order(companions=True):
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
    for imp in _in_order():
        try:
            if imp.detect(path, head):
                return imp
        except Exception:  # a detector that chokes on odd bytes simply does not match
            continue
    near = closest(path, head)
    raise UnknownFormat(str(path), None, "no importer recognises this file"
                        + (f"; closest: {near[0]} ({near[1]})" if near else ""),
                        "See `mast formats` for what mast reads, or pass --format.")


def closest(path: Path, head: bytes) -> tuple[str, str] | None:
    """The importer that came nearest to taking a file it declined, and its reason.

    An importer may define ``decline(path, head) -> (depth, reason) | None``: None when it
    would take the file, else how many of its checks the file passed (0: not even its
    container) and why it stopped.  The deepest wins, ties going to detection order; a
    file that got past nobody's first check has no closest importer.
    """
    best: tuple[int, str, str] | None = None
    for imp in importers():
        fn = getattr(imp, "decline", None)
        if fn is None:
            continue
        try:
            r = fn(path, head)
        except Exception:  # a decliner that chokes on odd bytes says nothing
            continue
        if r is None:
            continue
        depth, reason = r
        if depth > 0 and (best is None or depth > best[0]):
            best = (depth, imp.name, reason)
    return (best[1], best[2]) if best else None

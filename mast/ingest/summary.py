"""What an ingest reports: one :class:`FileResult` per file, rolled up by :class:`IngestSummary`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mast.errors import IngestAborted, MastError


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
    #: How many of its traces each rule of :data:`SYSTEM_RULES` named.
    systems_named: Counter = field(default_factory=Counter)
    #: A changed file replaces its earlier version: the traces of that version it no
    #: longer holds were deleted, with their labels (annotations and attributions).
    traces_replaced: int = 0
    labels_replaced: int = 0
    #: One trace per run (mast.ingest.identity): traces of this file whose run is stored
    #: as a richer artefact's trace (not counted as new), and traces of other files that
    #: this file's richer artefact replaced, with their labels.
    alternates: int = 0
    traces_superseded: int = 0
    labels_superseded: int = 0
    #: Files whose trace looks like the same run as one of this file's, with no id tying them.
    same_run_as: list[str] = field(default_factory=list)
    #: Files merged with this file's run by content (no id tying them: mast.store.run_match).
    merged_by_content: list[str] = field(default_factory=list)
    #: The file as the store records it (its resolved path), when it was read.
    key: str | None = None
    #: Whether a run of it has other artefacts in the store (:attr:`mast.store.sources.Sources.shared`).
    shared: bool = False

    def take_sources(self, src) -> None:
        """Take what recording the file's artefacts did (a :class:`mast.store.sources.Sources`)."""
        self.alternates = src.alternates
        # An alternate written and then dropped is not a new trace of the store (one never
        # written was not counted as new).
        self.traces_new = max(0, self.traces_new - (src.alternates - src.unwritten))
        self.traces_superseded, self.labels_superseded = src.superseded, src.superseded_labels
        self.same_run_as = list(src.same_run_as)
        self.merged_by_content = list(src.merged_by_content)
        self.shared = src.shared


@dataclass
class Joined:
    """What joining the pieces of one trace in several files did (mast.ingest.pieces)."""

    #: (stored trace id, the files it was built from), one per run joined.
    traces: list[tuple[str, list[str]]] = field(default_factory=list)
    #: Traces (and their labels) the joined traces replaced.
    replaced: int = 0
    labels: int = 0
    #: Why a run with pieces was not joined (a piece's file gone or changed, unreadable).
    notes: list[str] = field(default_factory=list)


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)
    joined: Joined = field(default_factory=Joined)

    @property
    def errors(self) -> list[MastError]:
        return [f.error for f in self.files if f.error]

    @property
    def aborted(self) -> IngestAborted | None:
        """The error that stopped the whole run (disk full, out of memory), if one did."""
        return next((f.error for f in self.files if isinstance(f.error, IngestAborted)), None)

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
    def systems_named(self) -> Counter:
        """Traces per rule that gave them their system name (see :func:`name_system`)."""
        out: Counter = Counter()
        for f in self.files:
            out.update(f.systems_named)
        return out

    @property
    def traces_replaced(self) -> int:
        return sum(f.traces_replaced for f in self.files)

    @property
    def labels_replaced(self) -> int:
        return sum(f.labels_replaced for f in self.files)

    @property
    def alternates(self) -> int:
        return sum(f.alternates for f in self.files)

    @property
    def traces_superseded(self) -> int:
        return sum(f.traces_superseded for f in self.files)

    @property
    def labels_superseded(self) -> int:
        return sum(f.labels_superseded for f in self.files)

    @property
    def shown_paths(self) -> dict[str, str]:
        """Stored (resolved) path -> the path as this ingest names it, for the files it read."""
        return {f.key: f.path for f in self.files if f.key}

    @property
    def same_run(self) -> list[tuple[str, str]]:
        """``(file, other file)`` pairs that look like one run although no id ties them."""
        return [(f.path, o) for f in self.files for o in f.same_run_as]

    @property
    def merged_by_content(self) -> list[tuple[str, str]]:
        """``(file, other file)`` pairs made one run by content, no id tying them."""
        return [(f.path, o) for f in self.files for o in f.merged_by_content]

    @property
    def formats(self) -> Counter:
        return Counter(f.format for f in self.files if f.format and not f.error)

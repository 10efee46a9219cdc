"""Build the report's context: a pure function from a store to one object.

Contract:
- :func:`build_context` only reads the store (TEMP tables on the connection, which never
  touch the file, are created and dropped by their owners); the same store gives the
  same context apart from ``generated_at``.
- It builds the :class:`~mast.report.page.Page` (selection, labels, page-wide facts),
  then each section of :data:`mast.report.sections.SECTIONS` in order.  What a section
  returns is kept under its id in :attr:`ReportContext.sections`, and each of its names
  reads as an attribute of the context (``ctx.explorer``, ``ctx.views``, …).
- Summaries cover **every** selected trace; per-trace detail is bounded by
  :class:`~mast.report.page.Limits` and the explorer says what it left out.
- Every string in the context is untrusted data from traces; the renderer escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Sequence

from mast import __version__
from mast.report.labels import Labels
from mast.report.page import AnnotatorInfo, Limits, Page, SystemOverview
from mast.report.sections import SECTIONS
from mast.taxonomy import DEFAULT_TAXONOMY, Mode
from mast.taxonomy import load as load_taxonomy


@dataclass
class ReportContext:
    title: str
    generated_at: str
    mast_version: str
    store_path: str
    taxonomy_id: str
    taxonomy_name: str
    selected_systems: list[str]
    selected_annotators: list[str]
    modes: list[Mode]
    categories: list[tuple[str, str]]             # (id, name)
    systems: list[SystemOverview]
    annotators: list[AnnotatorInfo]
    sections: dict[str, dict[str, Any]]            # section id -> the values its builder returned
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        own = {f.name for f in fields(self)} | {"totals"}
        seen: dict[str, str] = {}
        for sid, values in self.sections.items():
            for name in values:
                if name in own or name in seen:
                    raise ValueError(f"report section {sid!r} publishes {name!r}, "
                                     f"already {'a context field' if name in own else 'from ' + repr(seen[name])}")
                seen[name] = sid
        self._published = seen

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a value some section published.
        sid = self.__dict__.get("_published", {}).get(name)
        if sid is None:
            raise AttributeError(f"{type(self).__name__!r} has no field and no section value {name!r}")
        return self.__dict__["sections"][sid][name]

    @property
    def totals(self) -> dict[str, Any]:
        tok = [s.tokens for s in self.systems if s.tokens is not None]
        cost = [s.cost_usd for s in self.systems if s.cost_usd is not None]
        return {"traces": sum(s.traces for s in self.systems), "steps": sum(s.steps for s in self.systems),
                "systems": len(self.systems), "tokens": sum(tok) if tok else None,
                "cost_usd": sum(cost) if cost else None}


def build_context(store, *, systems: Sequence[str] | None = None, annotators: Sequence[str] | None = None,
                  taxonomy: str = DEFAULT_TAXONOMY, limits: Limits | None = None,
                  title: str = "Multi-agent failure report",
                  comparison: tuple[str, str] | None = None) -> ReportContext:
    tax = load_taxonomy(taxonomy)
    systems, annotators = list(systems or []), list(annotators or [])
    with Labels(store, tax.id, systems, annotators) as labels:
        page = Page(store, tax, labels, limits or Limits(), systems, annotators, comparison=comparison)
        built = {s.id: dict(s.build(page)) if s.build else {} for s in SECTIONS}
    return ReportContext(
        title=title, generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        mast_version=__version__, store_path=str(getattr(store, "path", "")), taxonomy_id=tax.id,
        taxonomy_name=tax.name, selected_systems=systems, selected_annotators=annotators, modes=page.modes,
        categories=page.categories, systems=page.systems, annotators=page.annotators, sections=built,
        notes=page.notes)

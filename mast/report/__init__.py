"""The HTML report: a pure function from the store to one self-contained file.

- :func:`mast.report.context.build_context` reads the store into a
  :class:`~mast.report.context.ReportContext` (summaries of every trace, bounded detail).
- :func:`mast.report.html.render` turns a context into one HTML string: inline CSS,
  JS and SVG, a strict Content-Security-Policy, no network request of any kind.
- :func:`write_report` does both and writes the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mast.report.context import ReportContext, build_context
from mast.report.html import render
from mast.report.page import Limits
from mast.taxonomy import DEFAULT_TAXONOMY


@dataclass(frozen=True)
class ReportResult:
    path: Path
    bytes: int
    context: ReportContext


def write_report(store, path: str | Path, *, systems: Sequence[str] | None = None,
                 annotators: Sequence[str] | None = None, taxonomy: str = DEFAULT_TAXONOMY,
                 limits: Limits | None = None, comparison: tuple[str, str] | None = None) -> ReportResult:
    ctx = build_context(store, systems=systems, annotators=annotators, taxonomy=taxonomy, limits=limits,
                        comparison=comparison)
    html = render(ctx)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = html.encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # never leave a half-written report where the old one was
    return ReportResult(path, len(data), ctx)


__all__ = ["Limits", "ReportContext", "ReportResult", "build_context", "write_report"]

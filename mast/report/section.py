"""What a report section is: a builder, its template partial and (optionally) its script.

Contract:
- A section is one module in :mod:`mast.report.sections` that defines ``SECTION`` (a
  :class:`Section`) and sits in that package's ordered list, which is the page's order.
  Beside the module: its Jinja partial ``<id>.html.j2`` (required) and its script
  ``<id>.js`` (optional).
- ``build(page)`` gets the :class:`~mast.report.page.Page` (store, selection, labels,
  limits, the page-wide facts) and returns a mapping of names to values.  Each name is
  published twice: to the partial as ``data.<name>`` and on the
  :class:`~mast.report.context.ReportContext` as ``ctx.<name>``; names are unique across
  sections.  A section that only shows page-wide facts has no builder.
- A temporary table a builder needs is created and dropped inside that builder.
- The partial is rendered with ``ctx`` (the whole context), ``data`` (the section's own
  values) and ``BEST``; it must be one ``<section id="<id>">`` element and escape
  everything (autoescape is on; never ``|safe`` on data).  A partial that renders only
  whitespace (a view the user did not ask for) leaves the section and its table-of-contents
  entry off the page.
- ``script_data(values)`` (optional) returns JSON-able values for the page's script,
  merged into the page's one data block (keys unique across sections).
- The script, if any, is joined in page order after ``assets/runtime.js`` into the
  page's one ``<script>`` (the CSP allows exactly that one, by hash).  Write it as
  ``(function (R) { "use strict"; ... })(R);``: ``R`` is the runtime (``R.data``, DOM
  helpers, ``R.on``/``R.emit`` for talking to other sections).  Trace strings go into
  the page through ``textContent`` and DOM properties only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from mast.report.page import Page

Values = Mapping[str, Any]


@dataclass(frozen=True)
class Section:
    id: str                                          # the element id, and the partial's / script's file name
    title: str                                       # its entry in the page's table of contents
    build: Callable[[Page], Values] | None = None    # reads the store; None: only page-wide facts
    script_data: Callable[[Values], dict[str, Any]] | None = None  # JSON for the page's script

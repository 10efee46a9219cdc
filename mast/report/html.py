"""Write a :class:`~mast.report.context.ReportContext` as one self-contained HTML page.

The page is ``templates/report.html.j2`` (head, header, notes, footer) around each
section's partial, rendered in :data:`~mast.report.sections.SECTIONS` order; its one
script is ``assets/runtime.js`` followed by each section's script, inside one function.

Security contract (every string from a trace is untrusted):
- One Jinja environment with autoescape on for everything; the only values marked safe
  are our own assets (CSS, JS) and the JSON data block, which :func:`script_json`
  escapes so that nothing inside can close the ``<script>`` element or open a comment:
  ``<``, ``>``, ``&``, U+2028 and U+2029 become ``\\uXXXX`` escapes (still valid JSON).
- The page's script renders trace data with ``textContent`` and DOM APIs only.
- A Content-Security-Policy meta tag allows exactly our one script and one stylesheet
  (by SHA-256 hash), images only from ``data:``, and nothing else: no request can leave
  the page, and an injected script or handler would be refused even if escaping failed.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from mast.report.context import ReportContext
from mast.report.jsonblock import script_json
from mast.report.labels import BEST, Cell
from mast.report.review import ReviewContext
from mast.report.sections import SECTIONS

HERE = Path(__file__).resolve().parent
HEAT_BUCKETS = 9


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def csp(script: str, style: str) -> str:
    return ("default-src 'none'; "
            f"script-src {csp_hash(script)}; style-src {csp_hash(style)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def page_script() -> str:
    """The runtime, then every section's script in page order, inside one function."""
    parts = [_asset("assets/runtime.js")]
    parts += [_asset(f"sections/{s.id}.js") for s in SECTIONS if (HERE / "sections" / f"{s.id}.js").exists()]
    return "(function () {\n" + "\n".join([*parts, "R.ready();"]) + "\n})();\n"


# -- filters -------------------------------------------------------------------------
def pct(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def num(x: int | float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if isinstance(x, int) or float(x).is_integer() else f"{x:,.2f}"


def money(x: float | None) -> str:
    if x is None:
        return "–"
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}"


def heat(cell: Cell | None) -> str:
    """The colour bucket of a cell: by the lower end of its 95% interval, not the observed
    rate, so a rate resting on one trace (1/1: 21–100%) is not painted as a certain 100%."""
    if cell is None or not cell.assessed:
        return "na"
    if cell.count == 0:
        return "h0"
    lo = cell.ci[0] if cell.ci else 0.0
    return f"h{1 + min(HEAT_BUCKETS - 2, int(lo * (HEAT_BUCKETS - 1)))}"


def ci_text(cell: Cell | None) -> str:
    if cell is None or not cell.assessed:
        return "not assessed"
    lo, hi = cell.ci
    return f"{cell.count} of {cell.n} traces ({pct(cell.rate)}); 95% interval {pct(lo)}–{pct(hi)}"


def source_text(item, limit: int = 2) -> str:
    """Whose labels a best-available figure counts: "from rules", or "from human 19, rules 224"."""
    src = getattr(item, "sources", ()) or ()
    if not src:
        return ""
    if len(src) == 1:
        return f"from {src[0][0]}"
    shown = ", ".join(f"{a} {n:,}" for a, n in src[:limit])
    return f"from {shown}" + (f" +{len(src) - limit} more" if len(src) > limit else "")


def sources_title(item) -> str:
    """The full list, for a tooltip: "labels from human (19 traces), rules (224 traces)"."""
    src = getattr(item, "sources", ()) or ()
    return ("labels from " + ", ".join(f"{a} ({n:,} traces)" for a, n in src)) if src else ""


def ci_range(cell: Cell | None) -> str:
    if cell is None or not cell.assessed:
        return ""
    lo, hi = cell.ci
    return f"{100 * lo:.0f}–{pct(hi)}"


def bar(value: float | None, width: int = 120) -> int:
    return 0 if not value else max(1, round(min(1.0, value) * width))


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, num=num, money=money, heat=heat, ci_text=ci_text, ci_range=ci_range, bar=bar,
                       source_text=source_text, sources_title=sources_title)
    return env


def page_data(ctx: ReportContext) -> dict[str, Any]:
    """What the page's script needs: modes and filter values, plus what sections add."""
    data: dict[str, Any] = {
        "modes": [{"id": m.id, "name": m.name, "category": m.category, "category_name": m.category_name,
                   "definition": m.definition} for m in ctx.modes],
        "systems": [s.system for s in ctx.systems],
        "annotators": [a.name for a in ctx.annotators],
    }
    for sec in SECTIONS:
        if sec.script_data is None:
            continue
        extra = sec.script_data(ctx.sections[sec.id])
        clash = data.keys() & extra.keys()
        if clash:
            raise ValueError(f"report section {sec.id!r} adds script data already present: {sorted(clash)}")
        data.update(extra)
    return data


def render(ctx: ReportContext) -> str:
    env = _env()
    parts = [Markup(env.get_template(f"sections/{s.id}.html.j2").render(ctx=ctx, data=ctx.sections[s.id], BEST=BEST))
             for s in SECTIONS]
    script, style = page_script(), _asset("assets/report.css")
    # A section whose partial renders nothing (a view not asked for) has no place on the page.
    return env.get_template("templates/report.html.j2").render(
        ctx=ctx, sections=[(s, p) for s, p in zip(SECTIONS, parts) if p.strip()], csp=csp(script, style), script=Markup(script),
        style=Markup(style), data=Markup(script_json(page_data(ctx))))


@lru_cache(maxsize=1)
def review_script() -> str:
    """The review page's one script: the same runtime, then the review app."""
    return "(function () {\n" + "\n".join([_asset("assets/runtime.js"), _asset("assets/review.js"), "R.ready();"]) \
        + "\n})();\n"


def render_review(ctx: ReviewContext) -> str:
    """The review page: the report's stylesheet and runtime, the same CSP, one trace shown at a time."""
    script, style = review_script(), _asset("assets/report.css") + _asset("assets/review.css")
    return _env().get_template("templates/review.html.j2").render(
        ctx=ctx, csp=csp(script, style), script=Markup(script), style=Markup(style),
        data=Markup(script_json(ctx.script_data())))

"""The section contract: one registered list, each section a builder with its partial (and script)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mast.report.sections as sections_pkg
from mast.report import build_context
from mast.report.html import page_script, render
from mast.report.section import Section
from mast.report.sections import SECTIONS
from mast.store import Store
from tests.report.test_html import parse

HERE = Path(sections_pkg.__file__).parent


def test_every_section_module_is_registered_once_with_its_partial():
    ids = [s.id for s in SECTIONS]
    assert len(ids) == len(set(ids))
    modules = sorted(p.stem for p in HERE.glob("*.py") if p.stem != "__init__")
    assert sorted(ids) == modules  # a section module that is not in the list would never show
    for s in SECTIONS:
        assert isinstance(s, Section)
        assert (HERE / f"{s.id}.html.j2").exists(), s.id


def test_page_follows_the_list_and_each_partial_is_its_section(small_store):
    path, _ = small_store
    with Store(path, read_only=True) as st:
        ctx = build_context(st)
    doc = parse(render(ctx))
    main = doc.find("main")
    # views that render nothing unless asked for (a comparison) or given data (another taxonomy's labels)
    shown = [s.id for s in SECTIONS if s.id not in ("compare", "taxonomies")]
    assert [n.attrs.get("id") for n in main.children if n.tag == "section"] == shown
    assert [a.attrs["href"] for a in doc.find("nav").find_all("a")] == [f"#{i}" for i in shown]
    assert list(ctx.sections) == [s.id for s in SECTIONS]


def test_section_values_read_as_context_attributes(small_store):
    path, _ = small_store
    with Store(path, read_only=True) as st:
        ctx = build_context(st)
    assert ctx.explorer is ctx.sections["explorer"]["explorer"]
    assert ctx.views is ctx.sections["exposure"]["views"]
    with pytest.raises(AttributeError):
        ctx.no_such_value


def test_the_page_script_is_the_runtime_then_each_sections_script_in_order():
    script = page_script()
    own = [s.id for s in SECTIONS if (HERE / f"{s.id}.js").exists()]
    assert own  # exposure and explorer have scripts
    at = [script.index((HERE / f"{sid}.js").read_text(encoding="utf-8")) for sid in own]
    assert at == sorted(at) and script.index("var R = ") < at[0] and script.rstrip().endswith("})();")

"""The format notes the importers cite are files of the project, and every importer has one."""

from __future__ import annotations

import re
from pathlib import Path

from mast import ingest

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "docs" / "formats"


def test_every_cited_note_exists():
    cited = set()
    for p in (ROOT / "mast" / "ingest").rglob("*.py"):
        cited |= {(p, m) for m in re.findall(r"docs/formats/[\w.-]+\.md", p.read_text())}
    assert cited
    missing = [f"{p.relative_to(ROOT)} cites {m}" for p, m in cited if not (ROOT / m).is_file()]
    assert not missing, missing


def test_no_module_cites_the_old_unshipped_notes():
    offenders = [p.relative_to(ROOT) for p in (ROOT / "mast").rglob("*.py") if "FORMATS.md" in p.read_text()]
    assert not offenders


def test_every_builtin_importer_is_described_in_a_note():
    text = "\n".join(p.read_text() for p in NOTES.glob("*.md"))
    undocumented = [i.name for i in ingest.importers() if f"`{i.name}`" not in text]
    assert not undocumented

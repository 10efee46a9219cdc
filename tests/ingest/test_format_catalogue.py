"""The built-in importers' names, descriptions and examples as a static table (mast/ingest/catalogue.py).

``mast formats`` lists the built-ins from that table without importing the 28 importer
modules; this test holds the table to the importers themselves.  When it fails (an
importer added, renamed or re-described), rewrite the table from the importers with
``.venv/bin/python tests/ingest/test_format_catalogue.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mast.ingest import catalogue, registry

TABLE = Path(catalogue.__file__)

HEADER = '''"""The built-in importers as ``mast formats`` lists them, without importing them.

Generated from the importers (``tests/ingest/test_format_catalogue.py`` checks it and, run
as a script, rewrites it): one ``(name, description, example)`` per entry of
:data:`mast.ingest.registry.BUILTINS`, in that order.  Listing formats from this table
saves importing every importer module (a third of the command's start-up); detection and
reading still use the importers.  :data:`BUILTIN_COMPANIONS` names the built-ins that
define ``companion`` (a file they read beside their own, to be skipped): the only ones the
companion check imports before detection.
"""

BUILTIN_FORMATS: tuple[tuple[str, str, str | None], ...] = (
'''


def _rows() -> list[tuple[str, str, str | None]]:
    rows = []
    for ref in registry.BUILTINS:
        imp = registry._resolve(ref)
        rows.append((imp.name, imp.description, getattr(imp, "example", None)))
    return rows


def _companions() -> tuple[str, ...]:
    imps = [registry._resolve(ref) for ref in registry.BUILTINS]
    return tuple(i.name for i in imps if callable(getattr(i, "companion", None)))


def render() -> str:
    return (HEADER + "".join(f"    {row!r},\n" for row in _rows()) + ")\n"
            + f"BUILTIN_COMPANIONS: frozenset[str] = frozenset({_companions()!r})\n")


def test_table_matches_the_importers():
    assert list(catalogue.BUILTIN_FORMATS) == _rows(), \
        "mast/ingest/catalogue.py is stale: rewrite it with `.venv/bin/python tests/ingest/test_format_catalogue.py`"


def test_companions_are_the_builtins_that_define_one():
    assert catalogue.BUILTIN_COMPANIONS == frozenset(_companions())
    assert len(catalogue.BUILTIN_COMPANIONS) >= 1


def test_table_file_is_as_generated():
    # the file itself, so that a hand edit (or a stale comment) is caught as well as a stale row
    assert TABLE.read_text() == render()


def test_formats_lists_the_table_without_importing_an_importer():
    probe = ("import json, sys\nfrom click.testing import CliRunner\nfrom mast.cli import cli\n"
             "res = CliRunner().invoke(cli, ['formats', '--json'], catch_exceptions=False)\n"
             "print(json.dumps({'rows': json.loads(res.stdout), "
             "'imported': sorted(m for m in sys.modules if m.startswith('mast.ingest.formats'))}))\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    doc = json.loads(run.stdout)
    assert doc["imported"] == []
    assert [(r["name"], r["description"], r["example"]) for r in doc["rows"]] == _rows()


if __name__ == "__main__":
    TABLE.write_text(render())
    print(f"wrote {len(registry.BUILTINS)} formats to {TABLE}")

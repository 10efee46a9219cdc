"""Digests of what the parse side of ingest hands the store, per input file.

The parse side (detection, the importer, ``name_system``, trace ids, Arrow encoding:
:func:`mast.ingest.pipeline._parse_chunk`) is made fast without changing a byte of its
output: ``parse_digests.json`` holds, for every file under ``tests/fixtures`` and
``traces`` (and the data sets in ``../shared/datasets`` when present), the format, the
trace ids and a SHA-256 of every Arrow table's rows, as the code before that work
produced them.  ``test_parse_digests.py`` compares today's output with it, so a changed
trace id (which would duplicate traces on re-ingest of an existing store) or any changed
column value fails, naming the file and the table.

Regenerate only when a change of the stored result is intended (say why in the commit):

    .venv/bin/python tests/ingest/parse_digests.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
EXPECTED = Path(__file__).with_name("parse_digests.json")
TABLES = ("traces", "steps", "annotations", "attributions")


def inputs() -> dict[str, Path]:
    """Every input file by its key (a path relative to the clone, or ``shared/...``)."""
    from mast.ingest.pipeline import expand
    out = {}
    for base, tag in ((ROOT / "tests" / "fixtures", None), (ROOT / "traces", None), (SHARED, "shared")):
        if not base.exists():
            continue
        for p in expand([base]):
            key = ("shared/" + p.relative_to(SHARED).as_posix()) if tag else p.relative_to(ROOT).as_posix()
            out[key] = p
    return out


def _canon(v, prefixes: list[tuple[str, str]]):
    if isinstance(v, str):
        for a, b in prefixes:
            v = v.replace(a, b)
        return v
    if isinstance(v, list):
        return [_canon(x, prefixes) for x in v]
    if isinstance(v, dict):
        return {k: _canon(x, prefixes) for k, x in v.items()}
    return v


def digest(path: Path) -> dict:
    """What the parse side makes of one file: format, error, trace ids, a digest per table."""
    from mast.ingest.pipeline import _parse_chunk
    out = _parse_chunk([path], "auto", None)
    [f] = out.files
    res: dict = {"format": f.format, "companion": f.companion}
    # where the clone sits must not matter
    prefixes = [(str(SHARED), "<shared>"), (str(ROOT), "<root>")]
    if f.error is not None:
        res["error"] = _canon(str(f.error), prefixes)
        return res
    if not out.segments:  # a companion file (labels beside records): nothing to store
        return res
    [seg] = out.segments
    res["trace_ids"] = seg.traces.column("trace_id").to_pylist()
    for name in TABLES:
        t = getattr(seg, name)
        rows = _canon(t.to_pylist(), prefixes)
        body = json.dumps({"schema": str(t.schema), "rows": rows}, sort_keys=True, default=repr)
        res[name] = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    return res


def all_digests() -> dict[str, dict]:
    return {k: digest(p) for k, p in sorted(inputs().items())}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__)
    import mast
    print(f"mast from {Path(mast.__file__).parent}", file=sys.stderr)
    d = all_digests()
    EXPECTED.write_text(json.dumps(d, indent=1, sort_keys=True) + "\n")
    print(f"{len(d)} files -> {EXPECTED.name}", file=sys.stderr)

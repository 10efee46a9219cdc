"""The README's main job: analyse the sample traces in traces/ into a fresh store.

Kept as a module (not shell in the README) so it runs the same on every machine:
``mast -d reports/quickstart.duckdb analyze traces -o reports/index.html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mast.cli import cli
from mast.settings import QUICKSTART_DB


def main(argv: list[str]) -> int:
    # Its own store, not ./mast.duckdb: rebuilt fresh each run, which must never delete a
    # user's store; the read commands fall back to it (mast.settings.store_to_read).
    db = Path(QUICKSTART_DB)
    db.parent.mkdir(exist_ok=True)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)  # a fresh store each time: the job is reproducible
    args = ["-d", str(db), "analyze", "traces", "-o", "reports/index.html", *argv]
    try:
        # not standalone: click returns the exit code instead of ending the process
        rv = cli.main(args, prog_name="mast", standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

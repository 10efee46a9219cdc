"""The README's main job: analyse the sample traces in traces/ into a fresh store.

Kept as a module (not shell in the README) so it runs the same on every machine.  It
calls `mast analyze` when that command exists, else ingest + stats.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mast.cli import COMMANDS, cli


def main(argv: list[str]) -> int:
    db = Path("reports") / "quickstart.duckdb"
    db.parent.mkdir(exist_ok=True)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)  # a fresh store each time: the job is reproducible
    import importlib.util
    if importlib.util.find_spec(COMMANDS["analyze"].split(":")[0]):
        args = ["-d", str(db), "analyze", "traces", "-o", "reports/index.html", *argv]
    else:
        try:
            cli.main(["-d", str(db), "ingest", "traces"], standalone_mode=False)
        except SystemExit as e:
            if e.code:
                return int(e.code)
        args = ["-d", str(db), "stats"]
    try:
        cli.main(args, prog_name="mast", standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

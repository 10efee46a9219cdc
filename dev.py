#!/usr/bin/env python3
"""Quick start, needing only python3 >= 3.11: sets up .venv on first use, then runs.

    python3 dev.py analyze     # the main job: analyse traces/ and write reports/index.html
    python3 dev.py test        # the whole test suite

Any further arguments go to the command (``python3 dev.py test -k store``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".mast-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"mast needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    if not (BIN / "python").exists():
        print("setting up .venv (first run only) …", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing mast and its dependencies into .venv …", file=sys.stderr)
    # pip's output is kept back unless it fails: the quick start should print the job, not pip.
    res = subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "-e", f"{ROOT}[test]"], capture_output=True, text=True)
    if res.returncode:
        sys.stderr.write(res.stdout + res.stderr)
        sys.exit(f"setting up .venv failed (pip exit {res.returncode}); see the output above")
    STAMP.write_text(want)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("analyze", "test", "mast"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    cmd, rest = sys.argv[1], sys.argv[2:]
    os.chdir(ROOT)
    if cmd == "test":
        return subprocess.call([str(BIN / "python"), "-m", "pytest", "-q", *rest])
    if cmd == "mast":
        return subprocess.call([str(BIN / "mast"), *rest])
    return subprocess.call([str(BIN / "python"), "-m", "mast.quickstart", *rest])


if __name__ == "__main__":
    sys.exit(main())

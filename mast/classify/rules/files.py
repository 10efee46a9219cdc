"""Rule files: reading a folder of SQL detectors and their headers.

Contract of a rules folder (``classifiers/rules/`` by default; ``rules_dir=`` or the
environment variable ``MAST_RULES_DIR`` point elsewhere, e.g. in tests):

- ``_*.sql`` files are *preludes*, run first in name order.  ``_features.sql`` is the
  per-step feature pass (:mod:`mast.classify.rules.features`).
- Every other ``*.sql`` file is one *detector*: a single SELECT returning rows of
  ``(trace_id, mode, confidence, evidence_steps INTEGER[], rationale)`` for the traces
  where it found its failure mode.  Its header is a block of ``-- key: value`` comment
  lines: ``mode``, ``name``, ``version``, ``description`` (continuation lines start with
  ``--`` and more indentation), and optionally ``role``: ``label`` (the default: its
  findings are failure labels) or ``signal`` (its findings are hints, not labels; see
  :mod:`mast.classify.rules.detect`).  Preludes need no ``mode``.
- Detectors of the default taxonomy (``mast-v1``) are the folder's own ``*.sql`` files;
  those of another taxonomy live in a subfolder named by its id (e.g. ``distsys-v1/``)
  and share the folder's preludes (the feature pass).  A run is for one taxonomy, so
  ``mast classify --with rules -t distsys-v1`` runs only that subfolder's detectors.
- Detectors read the temporary views ``sel_traces`` and ``sel_steps`` (the selected
  traces and their steps), the table ``sel(trace_id)`` and ``rule_steps`` (the stored
  features of the selected steps); see :mod:`mast.classify.rules.detect`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mast.errors import UsageError
from mast.model import DEFAULT_TAXONOMY
from mast.resources import data_dir
from mast.settings import ENV, Settings
from mast.settings import current as current_settings

ENV_RULES_DIR = ENV["rules_dir"]
_HEADER_RX = re.compile(r"^--\s?(?P<key>[a-z_]+):\s*(?P<value>.*)$")
_REQUIRED = ("name", "version", "description")
#: ``-- role:`` values: a *label* detector's findings are failure labels; a *signal*
#: detector's are hints (stored, shown and given to the judge, never counted as labels).
LABEL, SIGNAL = "label", "signal"
ROLES = (LABEL, SIGNAL)


@dataclass(frozen=True)
class Detector:
    name: str
    mode: str | None  # None for a prelude
    version: str
    description: str
    path: Path
    sql: str
    role: str = LABEL
    taxonomy: str = DEFAULT_TAXONOMY

    @property
    def prelude(self) -> bool:
        return self.mode is None

    @property
    def signal(self) -> bool:
        return not self.prelude and self.role == SIGNAL


def default_rules_dir(settings: Settings | None = None) -> Path:
    """``settings.rules_dir`` (default: the environment's), else the shipped ``classifiers/rules``."""
    env = (settings or current_settings()).rules_dir
    if env:
        return Path(env)
    return data_dir("classifiers") / "rules"


def parse_detector(path: Path, taxonomy: str = DEFAULT_TAXONOMY) -> Detector:
    """Read one SQL file and its header; a header without mode is only allowed on preludes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read rule file: {e}") from None
    header: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("--"):
            if line.strip():
                break
            continue
        m = _HEADER_RX.match(line)
        if m:
            key = m.group("key")
            header[key] = m.group("value").strip()
        elif key:  # continuation of the previous key
            header[key] = (header[key] + " " + line[2:].strip()).strip()
    prelude = path.name.startswith("_")
    missing = [k for k in _REQUIRED + (() if prelude else ("mode",)) if not header.get(k)]
    if missing:
        raise UsageError(f"{path}: rule header lacks {', '.join(missing)}",
                         "Start the file with comment lines such as `-- mode: 1.3`, `-- name: ...`, "
                         "`-- version: 1`, `-- description: ...`.")
    role = header.get("role", LABEL).lower()
    if role not in ROLES:
        raise UsageError(f"{path}: rule header has role {header['role']!r}",
                         "Use `-- role: label` (the default: findings are failure labels) or `-- role: signal` "
                         "(findings are hints, not labels).")
    return Detector(name=header["name"], mode=None if prelude else header["mode"], version=header["version"],
                    description=header["description"], path=path, sql=text, role=role, taxonomy=taxonomy)


def load_detectors(rules_dir: str | os.PathLike | None = None, taxonomy: str = DEFAULT_TAXONOMY) -> list[Detector]:
    """Preludes first (name order), then the detectors of ``taxonomy`` (file name order).

    The default taxonomy's detectors are the folder's own files; another taxonomy's are
    in the subfolder named by its id.  A taxonomy without a subfolder has no detectors
    (the preludes still load: ``covers()`` is then empty, never an error).
    """
    d = Path(rules_dir) if rules_dir else default_rules_dir()
    if not d.is_dir():
        raise UsageError(f"rules folder {d} does not exist", f"Point -C rules_dir=DIR or {ENV_RULES_DIR} at a folder of .sql rules.")
    preludes = sorted(p for p in d.glob("_*.sql"))
    own = d if taxonomy == DEFAULT_TAXONOMY else d / taxonomy
    files = sorted(p for p in own.glob("*.sql") if not p.name.startswith("_")) if own.is_dir() else []
    dets = [parse_detector(p) for p in preludes] + [parse_detector(p, taxonomy) for p in files]
    names = [x.name for x in dets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"rules folder {own}: duplicate detector name(s) {', '.join(dup)}")
    return dets


def strip_semicolon(sql: str) -> str:
    """A rule file's SELECT without its trailing semicolons, to nest it in another statement."""
    s = sql.rstrip()
    while s.endswith(";"):
        s = s[:-1].rstrip()
    return s



"""Locate the data folders (taxonomy/, classifiers/) in a checkout or an installed wheel.

The wheel ships them as ``mast/_data/<name>`` (see pyproject's force-include); a source
checkout or an editable install reads them from the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for cand in (_PKG / "_data" / name, _PKG.parent / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"mast data folder {name!r} not found (looked in {_PKG / '_data'} and {_PKG.parent})")

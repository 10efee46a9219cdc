"""pyarrow and pyarrow.compute, imported without numpy when nothing has loaded numpy yet.

``import pyarrow`` imports numpy if it can (0.09-0.10 CPU-s of its 0.14 here; so does
``pyarrow.compute``), although pyarrow has needed numpy only for its numpy conversions
since 16.0, and the store's write path uses none: it builds tables from Python lists and
hands them to DuckDB.  An ingest paid that import in the writer and in every parser
process.  So while numpy is not loaded, these imports are made with numpy hidden
(``sys.modules["numpy"] = None`` makes its import fail; pyarrow then runs without it),
and numpy is importable again right after.

What this gives up, for the rest of the process: ``pyarrow.Array.to_numpy()`` and
building Arrow arrays from numpy arrays raise.  Nothing in mast does either (polars'
``to_numpy`` and DuckDB's results do not go through pyarrow's numpy side); a process
that has loaded numpy before (a classifier, scikit-learn) imports pyarrow as usual.
Nothing on the ingest path imports numpy, so no other thread can meet the hidden entry.
Take ``pa`` and :func:`compute` from here in a module that may be the first to load them.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def _without_numpy(name: str) -> ModuleType:
    if name in sys.modules or "numpy" in sys.modules:
        return importlib.import_module(name)
    sys.modules["numpy"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules["numpy"]


pa = _without_numpy("pyarrow")


def compute() -> ModuleType:
    """``pyarrow.compute`` (imported on first use: ~0.03 s without numpy)."""
    return _without_numpy("pyarrow.compute")


__all__ = ["pa", "compute"]

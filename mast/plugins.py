"""Entry points of mast's plugin groups, without importing :mod:`importlib.metadata` for nothing.

``importlib.metadata`` (with the ``email`` parser it brings) is a fifth of the start-up of
``mast formats`` and a small ingest, and most installs declare no mast plugin at all.  So a
quick look comes first: the ``entry_points.txt`` of each distribution on ``sys.path``, read
as text.  Only when one of them names the group (or something is on the path that the
quick look cannot read, e.g. a zip, or a finder of its own) is the real lookup made, which
stays the one that decides what a plugin is.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import PathFinder
from typing import Any


def entry_points(group: str) -> Any:
    """``importlib.metadata.entry_points(group=group)``, or ``()`` when no distribution declares the group."""
    if not may_declare(group):
        return ()
    from importlib.metadata import entry_points as lookup  # ~0.03-0.05 s to import: only when a plugin may exist

    return lookup(group=group)


def may_declare(group: str) -> bool:
    """Whether some distribution on ``sys.path`` may declare entry points in ``group``.

    False only when every place ``importlib.metadata`` would look was read and none names
    the group; anything else (a zip on the path, a meta-path finder that finds
    distributions of its own, a file that cannot be read) answers True."""
    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True
    needle = group  # the bare name: a header spelt with spaces inside its brackets still matches
    for entry in sys.path:
        where = entry or "."  # '' is the current directory, as importlib.metadata reads it
        try:
            with os.scandir(where) as it:
                names = [e.name for e in it if e.name.endswith((".dist-info", ".egg-info", ".egg"))]
        except NotADirectoryError:
            if os.path.exists(where):
                return True  # a zip or an egg file: let importlib.metadata read it
            continue
        except FileNotFoundError:
            continue
        except OSError:
            return True
        for name in names:
            for sub in ("entry_points.txt", "EGG-INFO/entry_points.txt"):
                path = os.path.join(where, name, sub)
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        if needle in f.read():
                            return True
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError:
                    return True
    return False

"""What a labels file (the review page's export) looks like from its first bytes.

Apart from :mod:`mast.review`, which reads and stores such files, so that ``mast ingest``
can tell one from a trace file without importing the review machinery (it brings the
judge's example files and, through them, the judge client): most ingests hold none.
"""

from __future__ import annotations

import re
from pathlib import Path

LABELS_FORMAT = "mast-review-labels"
_HEAD_BYTES = 4096
_FORMAT_RX = re.compile(rb'"format"\s*:\s*"' + re.escape(LABELS_FORMAT.encode()) + rb'"')


def is_labels_file(path: str | Path, head: bytes | None = None) -> bool:
    """Whether ``path`` looks like a labels file (a JSON object naming :data:`LABELS_FORMAT` early)."""
    p = Path(path)
    if head is None:
        if not p.is_file():
            return False
        with p.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and _FORMAT_RX.search(text) is not None

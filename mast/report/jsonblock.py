"""JSON that is safe inside ``<script type="application/json">``.

``<``, ``>``, ``&``, U+2028 and U+2029 are written as ``\\uXXXX`` escapes: the text stays
valid JSON (``JSON.parse`` restores them) but can never close the script element, open
an HTML comment, or end a JavaScript line.
"""

from __future__ import annotations

import json
from typing import Any

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(data: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    return text.translate(_JSON_ESCAPES)

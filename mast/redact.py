"""Secret redaction, applied before anything is stored or shown.

The patterns are written in the common subset of Python ``re`` and RE2 so that the same
list runs inside DuckDB (``regexp_replace``, vectorised over a whole ingest batch) and
in Python (for text that never passes through the store, such as a judge prompt).
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

#: (pattern, replacement).  Replacements use ``\\1`` for a kept prefix (both engines).
PATTERNS: list[tuple[str, str]] = [
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-...
    (r"sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{16,}", "sk-" + REDACTED),
    # key = value / "key": "value" for fields that hold credentials
    (r"(?i)((?:api[_-]?key|x-api-key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}\]]{4,}",
     r"\1" + REDACTED),
    # Authorization headers, with or without a scheme
    (r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+|token\s+)?)[A-Za-z0-9._~+/=\-]{8,}",
     r"\1" + REDACTED),
    (r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{20,}", r"\1" + REDACTED),
    # Well-known token shapes
    (r"AKIA[0-9A-Z]{16}", REDACTED),
    (r"AIza[0-9A-Za-z_\-]{35}", REDACTED),
    (r"gh[pousr]_[A-Za-z0-9]{36,}", REDACTED),
    (r"xox[baprs]-[A-Za-z0-9\-]{10,}", REDACTED),
]

_COMPILED = [(re.compile(p), r) for p, r in PATTERNS]
# Cheap pre-check: every pattern needs one of these substrings (case-insensitive).
_HINTS = re.compile(r"(?i)sk-|key|secret|token|password|authorization|bearer|AKIA|AIza|gh[pousr]_|xox")


def redact(text: str | None) -> str | None:
    """Return ``text`` with every credential-looking substring replaced."""
    if not text or not _HINTS.search(text):
        return text
    for rx, rep in _COMPILED:
        text = rx.sub(rep, text)
    return text


def sql_redact(expr: str) -> str:
    """Wrap a SQL string expression so DuckDB applies every pattern to it."""
    out = expr
    for pattern, rep in PATTERNS:
        p = pattern.replace("'", "''")
        r = rep.replace("'", "''")
        out = f"regexp_replace({out}, '{p}', '{r}', 'g')"
    return out

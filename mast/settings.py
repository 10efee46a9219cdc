"""Every environment variable mast reads, resolved in one place.

The CLI resolves a :class:`Settings` once per command and passes values down; library
functions take explicit arguments and fall back to :func:`current` only where a caller
gave none (so a test that sets a variable with ``monkeypatch.setenv`` sees it at once:
nothing here is cached).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

DEFAULT_DB = "mast.duckdb"
#: Where ``python3 dev.py analyze`` (mast/quickstart.py) builds its fresh store.
QUICKSTART_DB = "reports/quickstart.duckdb"
#: The taxonomy a label belongs to unless it says otherwise (taxonomy/<id>.json).
DEFAULT_TAXONOMY = "mast-v1"

#: Settings field -> environment variable.  A new variable is a new line here (and a
#: field below), never an ``os.environ`` lookup somewhere else.
ENV: dict[str, str] = {
    "db": "MAST_DB",
    "judge_model": "MAST_JUDGE_MODEL",
    "base_url": "OPENAI_BASE_URL",
    "api_key": "OPENAI_API_KEY",
    "rules_dir": "MAST_RULES_DIR",
    "judge_prices": "MAST_JUDGE_PRICES",
    "judge_response_format": "MAST_JUDGE_RESPONSE_FORMAT",
    "judge_examples": "MAST_JUDGE_EXAMPLES",
    "ingest_workers": "MAST_INGEST_WORKERS",
    "ingest_max_record_mb": "MAST_INGEST_MAX_RECORD_MB",
    "ingest_memory_limit": "MAST_INGEST_MEMORY_LIMIT",
}


#: What rich reads to decide whether and how wide to write plain text to a stream; the CLI
#: decides the same way when it writes a plain line itself (:mod:`mast.cli._plain`).
TERMINAL_ENV = ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")


def terminal_env() -> dict[str, str]:
    """The :data:`TERMINAL_ENV` variables that are set, as set (an empty value counts here:
    ``FORCE_COLOR=""`` asks for no colour); read afresh at each call, as rich reads them
    for each console it makes."""
    return {k: os.environ[k] for k in TERMINAL_ENV if k in os.environ}


@dataclass(frozen=True)
class Settings:
    db: str = DEFAULT_DB
    judge_model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    rules_dir: str | None = None
    judge_prices: str | None = None
    judge_response_format: str | None = None
    judge_examples: str | None = None
    ingest_workers: str | None = None
    ingest_max_record_mb: str | None = None
    ingest_memory_limit: str | None = None

    def replace(self, **values: str | None) -> "Settings":
        """A copy with the given values; ``None`` keeps the current one (an option not given)."""
        return Settings(**{f.name: (values.get(f.name) if values.get(f.name) is not None else getattr(self, f.name))
                           for f in fields(self)})


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (empty values count as unset)."""
    env = os.environ if environ is None else environ
    found = {name: env.get(var) or None for name, var in ENV.items()}
    if found["db"] is None:
        found["db"] = DEFAULT_DB
    return Settings(**found)


def store_to_read(settings: Settings) -> tuple[str, str | None]:
    """The store a read-only command opens, and a note for the user when it is not ``settings.db``.

    After the quick start the README's next commands (``mast stats``, ``mast traces list``)
    name no store: with no ``./mast.duckdb`` they read the quick start's store instead of
    failing.  The quick start itself never writes ``./mast.duckdb``: rebuilding it fresh
    each run would delete a user's own store of that name.  A store named by ``-d/--db``
    or ``MAST_DB`` is always the one read.
    """
    if settings.db == DEFAULT_DB and not os.path.exists(DEFAULT_DB) and os.path.exists(QUICKSTART_DB):
        return QUICKSTART_DB, (f"no store at {DEFAULT_DB}: reading the quick start's store {QUICKSTART_DB} "
                               "(choose one with -d/--db or MAST_DB)")
    return settings.db, None

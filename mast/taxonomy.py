"""Taxonomies as data: load ``taxonomy/<id>.json`` and map older draft codes onto it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from mast.errors import UsageError
from mast.model import DEFAULT_TAXONOMY  # noqa: F401 - defined in the model (lowest layer), named here too
from mast.resources import data_dir


@dataclass(frozen=True, slots=True)
class Mode:
    id: str
    name: str
    category: str
    category_name: str
    definition: str
    evidence: str


@dataclass(frozen=True)
class Taxonomy:
    id: str
    version: str
    name: str
    source: str
    notes: tuple[str, ...]
    modes: tuple[Mode, ...]
    maps: dict

    @property
    def mode_ids(self) -> list[str]:
        return [m.id for m in self.modes]

    def mode(self, mode_id: str) -> Mode:
        for m in self.modes:
            if m.id == mode_id:
                return m
        raise KeyError(mode_id)

    def map_code(self, draft: str, code: str) -> str | None:
        """Final mode id for a code of an older draft; None when it has no counterpart."""
        return self.maps[draft]["codes"].get(code)


@lru_cache(maxsize=None)
def load(taxonomy_id: str = DEFAULT_TAXONOMY) -> Taxonomy:
    path = data_dir("taxonomy") / f"{taxonomy_id}.json"
    if not path.exists():
        known = sorted(p.stem for p in data_dir("taxonomy").glob("*.json"))
        raise UsageError(f"unknown taxonomy {taxonomy_id!r}", "Known: " + ", ".join(known))
    d = json.loads(path.read_text(encoding="utf-8"))
    return Taxonomy(id=d["id"], version=d["version"], name=d["name"], source=d["source"],
                    notes=tuple(d.get("notes", ())),
                    modes=tuple(Mode(**{k: m[k] for k in Mode.__slots__}) for m in d["modes"]),
                    maps=d.get("maps", {}))

"""Groups of names joined pairwise (union-find), each group named by its smallest member.

Used wherever pieces of one run are joined by the ties between them (the OTel traces of
one run in a file and at the live endpoint, artefacts of one run matched by content), so
that a group's name does not depend on the order the ties were found in.
"""

from __future__ import annotations

from typing import Iterable, Iterator


class Groups:
    """Union-find over strings with path halving; memory grows with the names seen."""

    def __init__(self, names: Iterable[str] = ()):
        self.parent: dict[str, str] = {x: x for x in names}

    def find(self, x: str) -> str:
        """The name of ``x``'s group (``x`` joins as a group of its own when new)."""
        parent = self.parent
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:  # the smaller name wins
            self.parent[max(a, b)] = min(a, b)

    def __contains__(self, x: object) -> bool:
        return x in self.parent

    def __iter__(self) -> Iterator[str]:
        return iter(self.parent)

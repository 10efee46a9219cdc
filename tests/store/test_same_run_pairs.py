"""The same-run note (:func:`mast.store.sources._pair_same_run`) held to its definition.

Its candidates are filtered once per artefact kind rather than tested pair by pair; the
files it names, and their order, must be what the pairwise test of every file against
every other gives (written out below), whatever the mix of keys, kinds and artefacts."""

from __future__ import annotations

import random

import pytest

from mast.store.sources import SAME_RUN_LIST, Sources, _pair_same_run


def _pairwise(entries, at):
    out = [Sources() for _ in at]
    buckets: dict = {}
    for e in entries:
        buckets.setdefault(e["kind"] if e["key"] else None, []).append(e)
    for a in entries:
        if a["path"] not in at:
            continue
        mine = out[at[a["path"]]].same_run_as
        kind = a["kind"] if a["key"] else None
        for k, bucket in buckets.items():
            if kind is not None and k == kind:
                continue
            for b in bucket:
                if len(mine) < SAME_RUN_LIST and b["path"] != a["path"] and b["tid"] != a["tid"] \
                        and b["group"] != a["group"] and (a["artefact"] is None or a["artefact"] != b["artefact"]) \
                        and (b["path"] not in at or b["path"] < a["path"]) and b["path"] not in mine:
                    mine.append(b["path"])
    return [o.same_run_as for o in out]


@pytest.mark.parametrize("seed", range(40))
def test_names_the_files_the_pairwise_test_names(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 60)
    entries = [{"path": f"f{rnd.randint(0, n)}.json", "key": rnd.choice([None, "", "k1", "k2"]),
                "kind": rnd.choice([None, "a", "b"]), "tid": f"t{rnd.randint(0, n // 2)}",
                "group": f"g{rnd.randint(0, n // 3)}", "artefact": rnd.choice([None, "x\x1f", "y\x1fz", "y\x1f"])}
               for _ in range(n)]
    paths = sorted({e["path"] for e in entries})
    at = {p: i for i, p in enumerate(rnd.sample(paths, rnd.randint(1, len(paths))))}
    got = [Sources() for _ in at]
    _pair_same_run(entries, at, got)
    want = _pairwise(entries, at)
    assert [o.same_run_as for o in got] == want
    if seed == 0:
        assert any(want), "the cases must name some files"

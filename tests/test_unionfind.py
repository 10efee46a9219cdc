"""Groups: joined names end in one group named by its smallest member, whatever the order."""

import itertools

from mast.unionfind import Groups


def test_a_group_is_named_by_its_smallest_member_in_any_order_of_ties():
    ties = [("d", "c"), ("b", "d"), ("x", "y")]
    for order in itertools.permutations(ties):
        g = Groups(["lone"])
        for a, b in order:
            g.union(a, b)
        assert {n: g.find(n) for n in "bcdxy"} == {"b": "b", "c": "b", "d": "b", "x": "x", "y": "x"}
        assert g.find("lone") == "lone" and "lone" in g and "never" not in g
        assert sorted(g) == ["b", "c", "d", "lone", "x", "y"]

"""Content matching: artefacts of one run that no id ties, found by what they hold.

Some artefacts carry no id of their run (AgentChat 0.4 messages, CrewAI's output log,
AG2's ``ChatResult`` without its chat id elsewhere).  Two of them, or one of them and an
artefact with an id, are taken for one run when they agree on what a run is made of:

- the **fingerprint** (framework, task, the opening messages: :mod:`mast.ingest.identity`);
- **no id says otherwise**: two artefacts whose keys are of one kind and differ are two runs
  by the framework's own word, and so is every artefact already merged with them;
- **one artefact of each kind**: a run writes one artefact of each kind (``(format,
  variant)``, ``run_sources.rank_why``: one ``TaskResult``, one output log, one record of a
  labelled dataset), so two artefacts of one kind that no id ties are two runs, however
  alike they read (copies of a benchmark's records, replays of one scripted run).  An
  agent's history (a part) is the exception: a run has one per agent;
- the **agents** agree (those of one are among those of the other);
- **times**: where both have times, their windows overlap (a time written to the whole
  second stands for that second).  Two replays of one scripted run differ only here.
  Where one has no times, the first :data:`mast.ingest.identity.DIGESTS` messages must
  agree instead (those of one the start of the other's), not just the opening ones.

Artefacts with times are merged first (overlapping windows are strong evidence); one
without times joins a run only when exactly one run with times fits it (or, where no run
with times fits, exactly one run), and every artefact that fits only that run can join it
together: anything else is ambiguous (a folder of replays of one
scripted run) and stays apart, named in the "looks like the same run" note.  The result
depends only on the artefacts, not on the order they are looked at; an artefact that
arrives later is matched against what is stored, and earlier merges stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import combinations

from mast.unionfind import Groups

#: The rules recorded in ``run_sources.match_rule`` (and shown by ``mast traces show``).
RULE_TIMED = "content: same task, opening messages and agents, overlapping times"
RULE_UNTIMED = "content: same task, opening messages and agents (no times to compare)"
RULE_PART = "part: one agent's history, its agents and times within the run's"
#: How far an agent's history may reach outside its run's window (clocks of one host).
PART_SLACK = timedelta(seconds=1)


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Times are UTC (mast.model.Step); one written with an offset is brought to UTC.
    return d if d.tzinfo is None else d.astimezone(timezone.utc).replace(tzinfo=None)


def window(start: str | None, end: str | None) -> tuple[datetime, datetime] | None:
    """A comparable window; a whole-second end covers that second (logs that write seconds)."""
    a, b = _when(start), _when(end or start)
    if a is None or b is None:
        return None
    if b.microsecond == 0:  # the whole second, and not the next one's first instant
        b += timedelta(seconds=1, microseconds=-1)
    return (a, b) if a <= b else (b, a)


@dataclass
class Unit:
    """The artefacts stored as one run so far (one ``run_group``)."""

    group: str
    keys: dict[str, set[str]] = field(default_factory=dict)  # kind -> run keys
    #: the kinds of artefact it holds (format and variant): a run writes one of each
    kinds: set[str] = field(default_factory=set)
    window: tuple[datetime, datetime] | None = None
    agents: set[str] = field(default_factory=set)
    new: bool = False
    paths: set[str] = field(default_factory=set)
    #: digests of the opening messages, per artefact (compared when there are no times)
    messages: list[list[str]] = field(default_factory=list)

    def add(self, key: str | None, kind: str | None, start: datetime | None, end: datetime | None,
            agents: str | None, path: str, new: bool, messages: str | None = None,
            artefact: str | None = None) -> None:
        if key and kind:
            self.keys.setdefault(kind, set()).add(key)
        if artefact:
            self.kinds.add(artefact)
        w = (start, end) if start and end else None
        if w:
            self.window = w if self.window is None else (min(self.window[0], w[0]), max(self.window[1], w[1]))
        if agents:
            try:
                self.agents |= set(json.loads(agents))
            except (ValueError, TypeError):
                pass
        self.new |= new
        self.paths.add(path)
        if messages:
            try:
                m = json.loads(messages)
            except (ValueError, TypeError):
                m = None
            if isinstance(m, list) and m:
                self.messages.append([str(x) for x in m])


def _prefix(a: list[str], b: list[str]) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def artefact_kind(fmt: str | None, rank_why: str | None, part: bool = False) -> str | None:
    """The kind of artefact a ``run_sources`` row is (its format and variant), or None for an
    agent's history (a run holds one per agent, so the one-of-each-kind rule skips it)."""
    return None if part or not fmt else f"{fmt}\x1f{rank_why or ''}"


def compatible(u: Unit, v: Unit) -> bool:
    if u.kinds & v.kinds:  # two artefacts of one kind that no id ties: two runs
        return False
    for kind, ks in u.keys.items():
        if kind in v.keys and len(ks | v.keys[kind]) > 1:
            return False
    if u.window and v.window and (u.window[0] > v.window[1] or v.window[0] > u.window[1]):
        return False
    if u.agents and v.agents and not (u.agents <= v.agents or v.agents <= u.agents):
        return False
    if not (u.window and v.window):
        # no times to tell two replays apart: the messages must agree beyond the opening
        # ones (one artefact's are the start of the other's)
        if any(not _prefix(a, b) for a in u.messages for b in v.messages):
            return False
    return True


def _one_run(units: list[Unit]) -> bool:
    """Whether these units can all be one run (pairwise compatible; then no kind has two keys)."""
    return all(compatible(a, b) for a, b in combinations(units, 2))


def plan(units: list[Unit]) -> dict[str, tuple[str, str]]:
    """Which runs to merge: ``{group: (group it joins, rule)}`` for the groups that move (and
    for the group they join, mapped to itself: its artefacts were matched by the same rule).

    Only merges that involve a unit with a new artefact are made (older ones were settled
    when they arrived)."""
    units = sorted(units, key=lambda u: u.group)
    moves: dict[str, tuple[str, str]] = {}
    timed = sorted((u for u in units if u.window), key=lambda u: u.window[0])

    # 1. Artefacts with times: overlapping windows.  Two units that hold keys of one kind
    #    are two runs (one key each, else they would be one group), so only units of
    #    disjoint key kinds are compared, bucket against bucket, each by a sweep over
    #    start times: a folder of replays has thousands of windows of one kind.
    sets = Groups([u.group for u in timed])
    buckets: dict[frozenset[str], list[Unit]] = {}
    for u in timed:
        buckets.setdefault(frozenset(u.keys), []).append(u)
    sigs = sorted(buckets, key=sorted)
    for i, a in enumerate(sigs):
        for b in sigs[i:]:
            if a & b:
                continue
            for u, o in _overlapping(buckets[a], buckets[b], a == b):
                if (u.new or o.new) and compatible(u, o):
                    sets.union(u.group, o.group)
    comps: dict[str, list[Unit]] = {}
    for u in timed:
        comps.setdefault(sets.find(u.group), []).append(u)
    merged: dict[str, Unit] = {u.group: u for u in units if not u.window}
    for root, members in comps.items():
        if len(members) > 1 and _one_run(members):
            target = _merge_into(members, moves, RULE_TIMED)
            merged[target.group] = target
        else:
            for m in members:
                merged[m.group] = m

    # 2. Artefacts without times: each joins the one run that fits it, if only one does.
    pool = sorted(merged.values(), key=lambda u: u.group)
    # units by the kinds of artefact and of key they hold: one that shares either with a
    # unit cannot be its run, so a folder of copies of one artefact costs no pairs
    by_sig: dict[tuple[frozenset[str], frozenset[str]], list[Unit]] = {}
    for u in pool:
        by_sig.setdefault((frozenset(u.kinds), frozenset(u.keys)), []).append(u)
    only: dict[str, list[Unit]] = {}
    for u in pool:
        if u.window or not u.new:
            continue
        # a run with times is a run; an artefact without times may be a fragment of one:
        # exactly one run with times decides, else exactly one of any
        timed_fits: list[Unit] = []
        other_fits: list[Unit] = []
        for (kinds, keys), vs in by_sig.items():
            if len(timed_fits) > 1 or kinds & u.kinds or keys & u.keys.keys():
                continue
            for v in vs:
                if v is not u and compatible(u, v):
                    (timed_fits if v.window else other_fits).append(v)
                    if len(timed_fits) > 1:
                        break
        fits = timed_fits or other_fits
        if len(fits) == 1:
            only.setdefault(fits[0].group, []).append(u)
    sets = Groups([u.group for u in pool])
    for target, joiners in only.items():
        for j in joiners:
            sets.union(target, j.group)
    comps = {}
    for u in pool:
        comps.setdefault(sets.find(u.group), []).append(u)
    for members in comps.values():
        if len(members) > 1 and _one_run(members):
            _merge_into(members, moves, RULE_UNTIMED)
    # a group moved twice (into a run that itself moved) ends in the last one's target
    for g, (t, rule) in list(moves.items()):
        while t in moves and moves[t][0] != t:
            t = moves[t][0]
        moves[g] = (t, rule)
    return moves


def _overlapping(xs: list[Unit], ys: list[Unit], same: bool):
    """Pairs of units, one from each list (or two of one list), whose windows overlap."""
    if same:
        open_: list[Unit] = []
        for u in sorted(xs, key=lambda u: u.window[0]):
            open_ = [o for o in open_ if o.window[1] >= u.window[0]]
            for o in open_:
                yield u, o
            open_.append(u)
        return
    ev = sorted([(u.window[0], 0, k, u) for k, u in enumerate(xs)] + [(u.window[0], 1, k, u) for k, u in enumerate(ys)],
                key=lambda e: (e[0], e[1], e[2]))
    open_x: list[Unit] = []
    open_y: list[Unit] = []
    for start, side, _, u in ev:
        other = open_y if side == 0 else open_x
        other[:] = [o for o in other if o.window[1] >= start]
        for o in other:
            yield u, o
        (open_x if side == 0 else open_y).append(u)


def _merge_into(members: list[Unit], moves: dict[str, tuple[str, str]], rule: str) -> Unit:
    # The run is named by an id-bearing group where there is one (a stable name).
    members = sorted(members, key=lambda u: (u.group.startswith("content:"), u.group))
    target = members[0]
    moves.setdefault(target.group, (target.group, rule))  # its artefacts were matched too
    out = Unit(target.group, {k: set(v) for k, v in target.keys.items()}, set(target.kinds), target.window,
               set(target.agents), target.new, set(target.paths), list(target.messages))
    for m in members[1:]:
        moves[m.group] = (target.group, rule)
        out.kinds |= m.kinds
        for k, v in m.keys.items():
            out.keys.setdefault(k, set()).update(v)
        if m.window:
            out.window = m.window if out.window is None else (min(out.window[0], m.window[0]),
                                                              max(out.window[1], m.window[1]))
        out.agents |= m.agents
        out.new |= m.new
        out.paths |= m.paths
        out.messages += m.messages
    return out


def plan_parts(parts: list[Unit], runs: list[Unit]) -> dict[str, tuple[str, str]]:
    """Which agent histories join which run: ``{part group: (run group, rule)}``.

    A part (one agent's view: an ag2 1.x history log) joins the one run of its framework
    whose window holds its own and whose agents include its agents; none, or more than one
    (two runs of one team at once), and it stays apart.  Made only where the part or the
    run is new."""
    moves: dict[str, tuple[str, str]] = {}
    for p in sorted(parts, key=lambda u: u.group):
        if not p.window:
            continue
        fits = []
        for r in runs:
            if r.group == p.group or not r.window or not (p.new or r.new):
                continue
            if r.window[0] - PART_SLACK <= p.window[0] and p.window[1] <= r.window[1] + PART_SLACK \
                    and (not p.agents or p.agents <= r.agents) and compatible(p, r):
                fits.append(r)
        if len(fits) == 1:
            moves[p.group] = (fits[0].group, RULE_PART)
    return moves

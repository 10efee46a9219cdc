"""Parse and validate judge replies; merge windows.

Contract: :func:`parse_reply` returns a :class:`Verdicts` or raises :class:`Unclassified`
with a reason.  A reply is accepted only when it is one JSON object of the shape
:func:`~.prompt.reply_schema` fixes (``{"verdicts": {"<mode id>": {...}, ...}, "root_cause":
...}``) that gives exactly one verdict ("present"/"absent") for every mode of the taxonomy, confidences in [0, 1],
evidence steps inside the trace's step range, and a root cause (if any) that names an
agent of the trace and a step in range.  Nothing is guessed: a missing mode is never
read as "absent".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class Unclassified(Exception):
    """The reply cannot become labels; the message is the reason that is stored."""


@dataclass
class ModeVerdict:
    mode: str
    present: bool
    confidence: float
    evidence_steps: list[int]
    rationale: str


@dataclass
class RootCause:
    agent: str | None
    step: int | None
    rationale: str


@dataclass
class Verdicts:
    modes: dict[str, ModeVerdict]
    root_cause: RootCause | None = None
    windows: int = 1
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"modes": [vars(v) for v in self.modes.values()],
                "root_cause": vars(self.root_cause) if self.root_cause else None,
                "windows": self.windows}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Verdicts":
        modes = {m["mode"]: ModeVerdict(**m) for m in d["modes"]}
        rc = RootCause(**d["root_cause"]) if d.get("root_cause") else None
        return cls(modes, rc, d.get("windows", 1))


def extract_json(text: str) -> Any:
    """The whole reply as JSON, else the last balanced ``{...}`` block in it.

    The fallback serves servers without structured outputs, whose models wrap the
    object in prose or code fences.  Binding to the *last* object follows the model's
    final answer, not an example it quoted earlier.
    """
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError as e:
        whole_error = str(e)
    dec = json.JSONDecoder()
    found = None
    i = text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict) and "verdicts" in obj:
            found = obj
        i = text.find("{", end)
    if found is None:
        raise Unclassified(f"reply is not valid JSON ({whole_error}) and contains no complete "
                           "JSON object with 'verdicts'")
    return found


def parse_reply(text: str | None, mode_ids: list[str], n_steps: int, agents: list[str]) -> Verdicts:
    if not text or not text.strip():
        raise Unclassified("empty reply")
    obj = extract_json(text)
    if not isinstance(obj, dict):
        raise Unclassified(f"reply JSON is a {type(obj).__name__}, expected an object")
    verdicts = obj.get("verdicts")
    if not isinstance(verdicts, dict):
        raise Unclassified("reply has no 'verdicts' object keyed by mode id")
    known = set(mode_ids)
    out: dict[str, ModeVerdict] = {}
    for key, m in verdicts.items():
        mid = str(key).strip()
        if mid.startswith("FM-"):
            mid = mid[3:]
        if mid not in known:
            raise Unclassified(f"reply names mode {mid!r}, which is not in the taxonomy")
        if mid in out:
            raise Unclassified(f"reply gives mode {mid} twice")
        if not isinstance(m, dict):
            raise Unclassified(f"mode {mid}: the verdict is not an object")
        verdict = str(m.get("verdict", "")).strip().lower()
        if verdict not in ("present", "absent"):
            raise Unclassified(f"mode {mid}: verdict {m.get('verdict')!r} is not 'present' or 'absent'")
        conf = m.get("confidence")
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            raise Unclassified(f"mode {mid}: confidence {conf!r} is not a number in [0, 1]")
        ev = m.get("evidence_steps") or []
        if not isinstance(ev, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in ev):
            raise Unclassified(f"mode {mid}: evidence_steps {ev!r} is not a list of step numbers")
        bad = [s for s in ev if not 0 <= s < n_steps]
        if bad:
            raise Unclassified(f"mode {mid}: evidence steps {bad} are outside the trace's steps 0-{n_steps - 1}")
        out[mid] = ModeVerdict(mid, verdict == "present", float(conf), sorted(set(ev)),
                               str(m.get("rationale") or "").strip())
    missing = [m for m in mode_ids if m not in out]
    if missing:
        raise Unclassified("reply lacks verdicts for modes " + ", ".join(missing))
    out = {m: out[m] for m in mode_ids}   # the taxonomy's order, whatever order the keys came in
    rc = obj.get("root_cause")
    root = None
    if rc is not None:
        if not isinstance(rc, dict):
            raise Unclassified("root_cause is neither an object nor null")
        agent, step = rc.get("agent"), rc.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n_steps):
            raise Unclassified(f"root cause step {step!r} is outside the trace's steps 0-{n_steps - 1}")
        if agent is not None:
            match = [a for a in agents if a.lower() == str(agent).strip().lower()]
            if not match:
                raise Unclassified(f"root cause names agent {agent!r}, which is not in the trace")
            agent = match[0]
        if agent is not None or step is not None:
            root = RootCause(agent, step, str(rc.get("rationale") or "").strip())
    return Verdicts(out, root)


def merge(parts: list[Verdicts]) -> Verdicts:
    """Windows of one trace -> one verdict set.

    A mode found in any window is present (evidence unioned, highest confidence,
    rationales of the windows that found it); a mode absent everywhere keeps the lowest
    "absent" confidence.  The root cause is the earliest one any window named.
    """
    if len(parts) == 1:
        return parts[0]
    modes: dict[str, ModeVerdict] = {}
    for mid in parts[0].modes:
        vs = [p.modes[mid] for p in parts]
        found = [(w, v) for w, v in enumerate(vs, 1) if v.present]
        if found:
            modes[mid] = ModeVerdict(
                mid, True, max(v.confidence for _, v in found),
                sorted({s for _, v in found for s in v.evidence_steps}),
                " | ".join(f"window {w}: {v.rationale}" for w, v in found))
        else:
            modes[mid] = ModeVerdict(mid, False, min(v.confidence for v in vs), [],
                                     vs[0].rationale if len(set(v.rationale for v in vs)) == 1
                                     else "absent in every window")
    roots = [p.root_cause for p in parts if p.root_cause]
    root = min(roots, key=lambda r: (r.step is None, r.step if r.step is not None else 0)) if roots else None
    return Verdicts(modes, root, windows=len(parts))

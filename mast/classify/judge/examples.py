"""Few-shot examples for the judge prompt (``classifiers/judge/v2/examples.json`` or a
user's own file, ``-C examples=FILE``).

Contract:
- A file is JSON ``{"format": "mast-judge-examples", "version": 1, "taxonomy": ID,
  "examples": [{"id", "mode", "verdict": "present"|"absent", "excerpt", "evidence_steps":
  [int], "rationale", "source": {"trace_id", "dataset", "record", ...}}]}``.  The excerpt is
  a few step-numbered steps of the source trace (as the judge renders a trace), and the
  evidence steps are step numbers shown in it.
- :func:`load_examples` checks the whole file before anything uses it; a bad one is a
  :class:`mast.errors.UsageError` naming the file and the example (index and id).  Excerpt
  and rationale go through :func:`mast.redact.redact`, the same as trace text.
- :meth:`ExampleSet.for_trace` picks, per mode in taxonomy order, the first example whose
  source is not the trace being judged: an example drawn from that very trace is swapped
  for the next one of the same mode (or dropped when there is none), so the judge is never
  shown the answer for the trace it judges.
- :attr:`ExampleSet.digest` is a SHA-256 over the examples as loaded (after redaction): the
  cache keys on it when the examples are the user's own.
- :func:`excerpt` is how an example's excerpt is cut from a stored trace (the bundled
  examples' script and ``mast labels examples`` both use it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from mast.errors import UsageError
from mast.model import StepKind
from mast.redact import redact

FORMAT = "mast-judge-examples"
FORMAT_VERSION = 1
#: an excerpt is "a few steps", not a trace: longer ones are refused rather than cut
MAX_EXCERPT_CHARS = 4_000
_REQUIRED = ("id", "mode", "verdict", "excerpt", "evidence_steps", "rationale", "source")


@dataclass(frozen=True)
class Example:
    id: str
    mode: str
    verdict: str
    excerpt: str
    evidence_steps: tuple[int, ...]
    rationale: str
    source_trace: str            # the store's content-hash trace id of the source trace
    source: dict[str, Any]       # dataset, record id, licence ... as given

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"evidence_steps": list(self.evidence_steps)}


@dataclass(frozen=True)
class ExampleSet:
    path: str
    taxonomy: str
    examples: tuple[Example, ...]
    digest: str
    user: bool                   # a user's file (not the prompt folder's own)

    def for_trace(self, trace_id: str | None, mode_ids: Sequence[str]) -> list[Example]:
        """One example per mode (taxonomy order), none drawn from ``trace_id``."""
        out: list[Example] = []
        for m in mode_ids:
            ex = next((e for e in self.examples if e.mode == m and e.source_trace != trace_id), None)
            if ex is not None:
                out.append(ex)
        return out


def load_examples(path: str | Path, mode_ids: Sequence[str], *, user: bool = True) -> ExampleSet:
    """Read and check an examples file; raises :class:`UsageError` naming the file and record."""
    p = Path(path)
    name = str(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"examples file {name}: cannot read it ({e.__class__.__name__}: {e})") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(f"examples file {name}: not JSON ({e.msg} at line {e.lineno} column {e.colno})",
                         "Truncated or hand-edited? Rebuild it with classifiers/judge/select_examples.py.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"examples file {name}: not a {FORMAT} file (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != FORMAT_VERSION:
        raise UsageError(f"examples file {name}: version {doc.get('version')!r} is not supported "
                         f"(this mast reads version {FORMAT_VERSION})")
    items = doc.get("examples")
    if not isinstance(items, list) or not items:
        raise UsageError(f"examples file {name}: \"examples\" must be a non-empty list")
    known = set(mode_ids)
    seen: set[str] = set()
    out: list[Example] = []
    for i, it in enumerate(items):
        where = f"examples file {name}, example {i}"
        if not isinstance(it, dict):
            raise UsageError(f"{where}: not an object")
        if isinstance(it.get("id"), str):
            where += f" ({it['id']})"
        missing = [k for k in _REQUIRED if k not in it]
        if missing:
            raise UsageError(f"{where}: missing field(s) {', '.join(missing)}")
        if not isinstance(it["id"], str) or not it["id"] or it["id"] in seen:
            raise UsageError(f"{where}: id must be a non-empty string, unique in the file")
        seen.add(it["id"])
        if it["mode"] not in known:
            raise UsageError(f"{where}: mode {it['mode']!r} is not in the taxonomy",
                             "Known modes: " + ", ".join(mode_ids))
        if it["verdict"] not in ("present", "absent"):
            raise UsageError(f"{where}: verdict must be \"present\" or \"absent\", not {it['verdict']!r}")
        if not isinstance(it["excerpt"], str) or not it["excerpt"].strip():
            raise UsageError(f"{where}: excerpt must be non-empty text")
        if len(it["excerpt"]) > MAX_EXCERPT_CHARS:
            raise UsageError(f"{where}: excerpt has {len(it['excerpt']):,} characters, more than "
                             f"{MAX_EXCERPT_CHARS:,}", "An example is a few steps around the evidence, not a trace.")
        ev = it["evidence_steps"]
        if not isinstance(ev, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in ev):
            raise UsageError(f"{where}: evidence_steps must be a list of step numbers (integers >= 0)")
        absent_ev = [s for s in ev if f"[{s}]" not in it["excerpt"]]
        if absent_ev:
            raise UsageError(f"{where}: evidence step(s) {absent_ev} are not shown in the excerpt")
        if it["verdict"] == "absent" and ev:
            raise UsageError(f"{where}: an \"absent\" example cites no evidence steps")
        if not isinstance(it["rationale"], str):
            raise UsageError(f"{where}: rationale must be text")
        src = it["source"]
        if not isinstance(src, dict) or not isinstance(src.get("trace_id"), str) or not src["trace_id"]:
            raise UsageError(f"{where}: source.trace_id (the store's trace id of the source trace) is required",
                             "It is what keeps an example out of the prompt for its own trace.")
        out.append(Example(it["id"], it["mode"], it["verdict"], redact(it["excerpt"]) or "", tuple(ev),
                           redact(it["rationale"]) or "", src["trace_id"], dict(src)))
    canon = json.dumps([e.as_dict() for e in out], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()
    return ExampleSet(name, str(doc.get("taxonomy") or ""), tuple(out), digest, user)


def excerpt(steps: Sequence[Any], evidence: Sequence[int], step_chars: int = 220,
            context_chars: int | None = None) -> str:
    """The evidence steps of a trace (each cut to ``step_chars`` from its start) and one step
    either side (cut to ``context_chars``, by default half of ``step_chars``; 0: evidence steps
    only), headed with the store's step numbers as the judge renders them, a gap marked; all
    text redacted."""
    ctx = step_chars // 2 if context_chars is None else context_chars
    around = (-1, 0, 1) if ctx > 0 else (0,)
    shown = sorted({e + d for e in evidence for d in around if 0 <= e + d < len(steps)})
    out: list[str] = []
    prev = None
    for i in shown:
        if prev is not None and i > prev + 1:
            out.append(f"[... steps {prev + 1}-{i - 1} not shown ...]")
        s = steps[i]
        kind = s.kind.value if isinstance(s.kind, StepKind) else (s.kind or "message")
        tool = f"({redact(s.tool_name)})" if s.tool_name else ""
        body = " ".join((redact(s.content) or "").split())
        cap = step_chars if i in evidence else ctx    # context steps get less room
        if len(body) > cap:
            body = f"{body[:cap]} [... {len(body) - cap:,} chars of step {i} not shown ...]"
        out.append(f"[{i}] {redact(s.agent) or '?'} {kind}{tool}: {body}")
        prev = i
    return "\n".join(out)

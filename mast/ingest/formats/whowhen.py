"""Who&When records (Zhang et al., ICML 2025): failed Magentic-One and CaptainAgent runs.

One JSON object per file.  Every ``history`` entry becomes exactly one step so that the
human label ``mistake_step`` (a 0-based index into ``history``) stays a valid step
number; ``mistake_agent`` / ``mistake_step`` / ``mistake_reason`` become an attribution
by annotator ``human``.

Hand-Crafted records (Magentic-One) name agents in ``role`` with annotations such as
``"Orchestrator (thought)"`` or ``"Orchestrator (-> WebSurfer)"``: the agent is the part
before the parenthesis and ``-> X`` gives the message's recipient;
``(termination condition)`` marks a ``termination`` step.

Format notes: docs/formats/mad-whowhen.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, first_char, load_json, require
from mast.ingest.magentic_roles import parse_role_cached
from mast.model import Attribution, Outcome, Step, StepKind, Trace

_KEYS = (b'"mistake_agent"', b'"mistake_step"', b'"question_ID"', b'"is_corrected"')
_PLAIN_ROLES = ("user", "assistant", "system", "tool")


class WhoWhenImporter:
    name = "whowhen"
    description = "Who&When failure-attribution records (history + mistake_agent/step)"
    example = '{"is_corrected": false, "question": "…", "history": [{"content": "…", "role": "Orchestrator (-> WebSurfer)"}, …], "mistake_agent": …'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{" or b'"history"' not in head:
            return False
        # The label keys follow the history: searched for from the end, where they are.
        if any(head.rfind(k) >= 0 for k in _KEYS):
            return True
        size = path.stat().st_size
        if size <= len(head):  # the head is the whole file
            return False
        # ... and the history can be longer than the head.
        with path.open("rb") as f:
            f.seek(max(0, size - 64 * 1024))
            tail = f.read()
        return any(tail.rfind(k) >= 0 for k in _KEYS)

    def read(self, path: Path) -> Iterator[Trace]:
        rec = load_json(path)
        if isinstance(rec, list):
            for i, r in enumerate(rec):
                yield self._record(path, i, r)
        elif isinstance(rec, dict):
            yield self._record(path, 0, rec)
        else:
            raise IngestError(str(path), None, f"expected a Who&When object, found {type(rec).__name__}")

    def _record(self, path: Path, index: int, rec: dict) -> Trace:
        require(path, index, rec, "history", "question")
        hist = rec["history"]
        if not isinstance(hist, list):
            raise IngestError(str(path), index, "field history is not a list")
        hand_crafted = "is_corrected" in rec or "system_prompt" not in rec
        steps: list[Step] = []
        append = steps.append
        message = StepKind.MESSAGE
        for j, h in enumerate(hist):
            if not isinstance(h, dict) or "content" not in h:
                raise IngestError(str(path), f"{index}, history[{j}]", "expected an object with content")
            role = h.get("role")
            role = role if type(role) is str else str(role or "")
            content = h["content"]
            if content is not None and type(content) is not str:
                content = as_text(content)
            name = h.get("name")
            if name:  # Algorithm-Generated: name is the agent, role is relative
                append(Step(str(name), content, message, role if role in _PLAIN_ROLES else None,
                            attributes={"source_role": role} if role else None))
            else:  # Hand-Crafted: the Magentic-One role syntax
                r = parse_role_cached(role)
                append(Step(r.agent, content, r.kind, r.role, target_agent=r.target,
                            attributes={"source_role": role} if role and r.note else None))
        ok = rec.get("is_correct", rec.get("is_corrected"))
        outcome = Outcome.SUCCESS if ok is True else Outcome.FAILURE if ok is False else Outcome.UNKNOWN
        meta = {k: rec[k] for k in ("question_ID", "level", "ground_truth", "mistake_type", "labels")
                if k in rec}
        meta["subset"] = "Hand-Crafted" if hand_crafted else "Algorithm-Generated"
        meta["source_id"] = rec.get("question_ID")
        if "system_prompt" in rec:
            meta["system_prompt"] = rec["system_prompt"]
        atts = []
        if rec.get("mistake_agent") is not None or rec.get("mistake_step") is not None:
            try:
                step = int(rec["mistake_step"]) if rec.get("mistake_step") not in (None, "") else None
            except (TypeError, ValueError):
                raise IngestError(str(path), index, f"mistake_step is not an integer: {rec.get('mistake_step')!r}") from None
            if step is not None and not 0 <= step < len(steps):
                raise IngestError(str(path), index, f"mistake_step {step} is outside the history (0..{len(steps) - 1})")
            atts.append(Attribution(annotator="human", agent=rec.get("mistake_agent"), step=step,
                                    rationale=rec.get("mistake_reason")))
        return Trace(system="Magentic-One" if hand_crafted else "CaptainAgent",
                     framework="autogen" if hand_crafted else "ag2",
                     source_format=self.name, source_path=str(path), source_index=index,
                     steps=steps, task=as_text(rec.get("question")), outcome=outcome,
                     metadata=meta, attributions=atts)

"""Prompt templates (``classifiers/judge/<version>/``), the reply schema and messages.

Contract: :func:`build_messages` is a pure function of the rendered window, the taxonomy,
the hints and the template version, so the same inputs always produce the same prompt
(the cache and the Batch API rely on it).  The delimiter nonce is derived from the
window's own text: deterministic, yet a trace cannot forge its closing line because its
author would need to know the hash of a text that contains the forgery.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from mast.errors import UsageError
from mast.resources import data_dir

DEFAULT_PROMPT = "v1"
#: the prompt a run with the user's own examples takes when it names none
EXAMPLES_PROMPT = "v2"
_DELIM_RX = re.compile(r"(?i)(BEGIN|END)(\s+)(TRACE|TASK|EXAMPLE)(\s+)DATA")


@dataclass(frozen=True)
class Template:
    folder: str
    version: str
    system: Any
    user: Any
    #: the folder's own few-shot file (meta.json "examples"), or None for a prompt without examples
    examples: str | None = None
    #: how traces are rendered for it (meta.json "render": "standard" or "lean")
    render: str = "standard"


@lru_cache(maxsize=None)
def load_template(folder: str = DEFAULT_PROMPT) -> Template:
    import jinja2  # lazily, for start-up speed: only a run or an estimate renders prompts

    base = data_dir("classifiers") / "judge"
    path = base / folder
    if not (path / "system.j2").exists():
        known = sorted(p.name for p in base.iterdir() if (p / "system.j2").exists())
        raise UsageError(f"unknown judge prompt {folder!r}", "Known prompt versions: " + ", ".join(known))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(path)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=False)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    render = meta.get("render", "standard")
    if render not in ("standard", "lean"):
        raise UsageError(f"judge prompt {folder!r}: meta.json render {render!r} is not 'standard' or 'lean'")
    examples = str(path / meta["examples"]) if meta.get("examples") else None
    return Template(folder, meta["version"], env.get_template("system.j2"), env.get_template("user.j2"),
                    examples, render)


def neutralise(text: str) -> str:
    """Make sure data can never contain a line that looks like our delimiters."""
    return _DELIM_RX.sub(lambda m: f"{m.group(1)}_{m.group(3)}_DATA(quoted)", text)


def nonce_for(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


#: the shape of the reply (:func:`reply_schema`); part of the cache key, so a change to the
#: shape never serves verdicts cached under another one
REPLY_SHAPE = "verdicts-by-mode-1"


def reply_schema(mode_ids: list[str]) -> dict:
    """JSON schema for ``response_format`` (strict structured outputs).

    The verdicts are an object keyed by mode id with every mode required and no other key
    allowed, so an endpoint that enforces the schema cannot return fewer or more verdicts
    than the taxonomy has modes (an array could legally be short)."""
    verdict = {
        "type": "object",
        "additionalProperties": False,
        "required": ["verdict", "confidence", "evidence_steps", "rationale"],
        "properties": {
            "verdict": {"type": "string", "enum": ["present", "absent"]},
            "confidence": {"type": "number"},
            "evidence_steps": {"type": "array", "items": {"type": "integer"}},
            "rationale": {"type": "string"},
        },
    }
    root = {
        "type": "object",
        "additionalProperties": False,
        "required": ["agent", "step", "rationale"],
        "properties": {"agent": {"type": ["string", "null"]}, "step": {"type": ["integer", "null"]},
                       "rationale": {"type": "string"}},
    }
    ids = list(mode_ids)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["verdicts", "root_cause"],
        "properties": {"verdicts": {"type": "object", "additionalProperties": False, "required": ids,
                                    "properties": {m: verdict for m in ids}},
                       "root_cause": {"anyOf": [root, {"type": "null"}]}},
    }


def build_messages(tpl: Template, taxonomy, window_text: str, *, window: int, n_windows: int,
                   first_step: int, last_window_step: int, last_step: int, agents: list[str],
                   task: str | None, hints: list[str], examples: Sequence[Any] = ()) -> list[dict[str, str]]:
    """``examples``: :class:`~.examples.Example` s for the system message (a prompt without
    them ignores them).  A template keeps its system message free of anything that varies
    per trace (v2 does), so endpoints that cache prompt prefixes bill it once."""
    window_text = neutralise(window_text)
    task = neutralise(task) if task else None
    hints = [neutralise(h) for h in hints]
    nonce = nonce_for(tpl.version, task or "", window_text, "\n".join(hints))
    ctx = dict(taxonomy=taxonomy, nonce=nonce, last_step=last_step, trace=window_text, task=task,
               agents=[neutralise(a) for a in agents], hints=hints, window=window, n_windows=n_windows,
               first_step=first_step, last_window_step=last_window_step, n_modes=len(taxonomy.modes),
               examples=[{"mode": e.mode, "verdict": e.verdict, "evidence_steps": list(e.evidence_steps),
                          "excerpt": neutralise(e.excerpt), "rationale": neutralise(e.rationale)} for e in examples])
    return [{"role": "system", "content": tpl.system.render(ctx)},
            {"role": "user", "content": tpl.user.render(ctx)}]

"""Structured-output modes, and the negotiation of one with an endpoint.

OpenAI-compatible servers disagree on how to ask for JSON that follows a schema:

- ``json_schema``: ``response_format: {"type": "json_schema", "json_schema": {"strict": true,
  "schema": …}}`` (OpenAI, vLLM, Ollama, LM Studio, llama.cpp's ``llama-server``);
- ``json_object``: ``response_format: {"type": "json_object", "schema": …}``, which
  llama-cpp-python's server turns into a grammar (it answers ``json_schema`` with a 500);
- ``text``: no ``response_format`` at all; the schema and "reply with one JSON object
  only" are appended to the prompt, for servers that take neither.

:class:`Negotiation` starts at the strongest mode it may use and steps down one mode
each time the endpoint refuses the one in use (an error status whose body names
``response_format``, ``json_schema`` or ``schema``), until a reply comes back; then the
mode is *confirmed* and a later refusal is an ordinary failure.  Requests in flight
when a refusal arrives were sent in the same mode: their refusals do not step down
again.  A forced mode (``--response-format``) never steps down.

Whatever the mode, the reply is validated by the same :func:`~.reply.parse_reply`: the
mode only changes how hard the server is asked, never what is accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mast.errors import UsageError

#: strongest first: the order auto negotiation tries them in
MODES = ("json_schema", "json_object", "text")
CHOICES = ("auto", *MODES)
#: words in an error body that say the server refused the response_format itself
REFUSAL_WORDS = ("response_format", "json_schema", "schema")

TEXT_INSTRUCTIONS = ("\n\nReply with one JSON object only, no prose and no code fence, "
                     "that validates against this JSON schema:\n")


def check_choice(value: str | None) -> str:
    v = (value or "auto").strip().lower()
    if v not in CHOICES:
        raise UsageError(f"unknown response format {value!r}", "Use one of: " + ", ".join(CHOICES) + ".")
    return v


def response_format(mode: str, schema: dict) -> dict | None:
    """The ``response_format`` request field of ``mode`` (None: send none)."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "mast_verdicts", "strict": True, "schema": schema}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def prompt_variant(mode: str | None) -> str:
    """What the cache keys on: only the text mode changes the prompt itself."""
    return "text" if mode == "text" else "structured"


def with_mode(messages: list[dict], mode: str | None, schema: dict) -> list[dict]:
    """The messages as sent in ``mode``: in text mode the last one ends with the schema."""
    if mode != "text" or not messages:
        return messages
    last = dict(messages[-1])
    last["content"] = (last.get("content") or "") + TEXT_INSTRUCTIONS + json.dumps(schema, separators=(",", ":"))
    return [*messages[:-1], last]


def names_response_format(text: str) -> bool:
    t = text.lower()
    return any(w in t for w in REFUSAL_WORDS)


@dataclass
class Negotiation:
    """The mode a run sends, shared by all its requests (one event loop: no lock)."""

    mode: str = "json_schema"
    forced: bool = False
    #: how the starting mode was chosen: default / remembered / forced
    origin: str = "default"
    confirmed: bool = False
    #: (mode, the endpoint's reason) for each mode refused in this run
    refused: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def start(cls, choice: str, remembered: str | None = None) -> "Negotiation":
        choice = check_choice(choice)
        if choice != "auto":
            return cls(mode=choice, forced=True, origin="forced")
        if remembered in MODES:
            return cls(mode=remembered, origin="remembered")
        return cls()

    def refusal(self, sent: str, reason: str) -> bool:
        """The endpoint refused ``sent``: True when the request should be sent again (in
        :attr:`mode`), False when the refusal is final."""
        if sent != self.mode:
            return True           # another request already stepped down from ``sent``
        if self.forced or self.confirmed or sent == MODES[-1]:
            return False
        self.refused.append((sent, " ".join(reason.split())[:200]))
        self.mode = MODES[MODES.index(sent) + 1]
        return True

    def worked(self, sent: str) -> None:
        if sent == self.mode:
            self.confirmed = True

    def describe(self) -> str:
        """One line for the run summary: the mode and how it was arrived at."""
        how = {"forced": "forced by --response-format", "remembered": "remembered for this endpoint and model",
               "default": "accepted by the endpoint"}[self.origin]
        if self.refused:
            how = "; ".join(f"{m} refused ({why})" for m, why in self.refused)
        state = "" if self.confirmed else ", not yet confirmed by a reply"
        return f"response format {self.mode} ({how}{state})"

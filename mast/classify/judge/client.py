"""One chat request with bounded, polite retries (asyncio, official ``openai`` client).

The client is built with ``max_retries=0``: retries happen here so that they follow
this policy and are counted.
- 429: wait what ``Retry-After`` / ``retry-after-ms`` says, else exponential backoff.  A
  server that asks for a wait longer than ``max_wait`` fails the call at once ("rate
  limited: retry after N s exceeds cap"): a day's wait is a quota, not a hiccup.
- 5xx, connection errors and timeouts: exponential backoff with full jitter,
  ``base * 2**attempt`` capped at ``max_wait``, times a random factor in [0.5, 1.5).
- An error (4xx or 5xx) whose body names ``response_format``, ``json_schema`` or
  ``schema`` after a request that carried a response format is a refusal of that
  structured-output mode: the negotiation (:mod:`.structured`, in ``caps.formats``)
  steps down one mode and the request is sent again at once, not counted as a retry.
  The refusal of a forced mode stops the run (every trace would be refused the same way).
- A 400 that names another optional parameter the server lacks (``temperature``,
  ``max_tokens``) drops or renames it once and remembers that for the rest of the run;
  other 4xx are final.
- After ``max_retries`` retries the call raises :class:`CallFailed` with the last reason.
- Deadlines (:class:`Deadline`: the trace's and the run's): no request runs past the
  earliest one (its timeout is cut to what is left, and the whole attempt is bounded, not
  only each read) and no wait is begun that would end past it; the call then fails with
  the deadline named.  ``halt`` (set on Ctrl-C) stops any further attempt: :class:`Halted`.
- 401, 403 and 404 (bad key, no access, unknown model) raise :class:`EndpointError`, which
  stops the run: every other trace would fail the same way.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from mast.classify.judge.structured import Negotiation, names_response_format, response_format, with_mode
from mast.errors import MastError


class CallFailed(Exception):
    pass


class Halted(Exception):
    """The run is stopping (Ctrl-C): no further attempt was made; not a failure of the trace."""


@dataclass(frozen=True)
class Deadline:
    at: float                     # time.monotonic()
    what: str                     # how it is named in a reason: "trace deadline of 300 s"

    def left(self) -> float:
        return self.at - time.monotonic()


class EndpointError(MastError):
    """The endpoint refuses every request (bad key, no such model): stop the run."""


@dataclass
class Reply:
    text: str | None
    tokens_in: int
    tokens_out: int
    attempts: int
    structured: bool
    #: the structured-output mode the reply came in (:mod:`.structured`)
    mode: str = "json_schema"
    #: prompt tokens the endpoint served from its prefix cache (0 when it does not say)
    tokens_cached: int = 0


@dataclass
class Policy:
    timeout: float = 120.0        # one request
    max_retries: int = 4
    base_wait: float = 0.5
    max_wait: float = 60.0        # the longest single wait: backoff capped, a longer Retry-After fails


@dataclass
class Capabilities:
    """What this endpoint accepted; learned from refusals and shared by all calls of a run."""

    formats: Negotiation = field(default_factory=Negotiation)
    temperature: bool = True
    max_tokens_name: str = "max_tokens"
    notes: list[str] = field(default_factory=list)


def retry_after(headers) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    v = headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, policy: Policy, rng: random.Random) -> float:
    return min(policy.max_wait, policy.base_wait * (2 ** attempt)) * (0.5 + rng.random())


def request_body(model: str, messages: list[dict], schema: dict, *, temperature: float | None,
                 max_tokens: int, caps: Capabilities, mode: str | None = None) -> dict[str, Any]:
    """The request for ``messages`` in ``mode`` (default: the one negotiated so far)."""
    mode = mode or caps.formats.mode
    body: dict[str, Any] = {"model": model, "messages": with_mode(messages, mode, schema)}
    fmt = response_format(mode, schema)
    if fmt is not None:
        body["response_format"] = fmt
    if temperature is not None and caps.temperature:
        body["temperature"] = temperature
    if max_tokens:
        body[caps.max_tokens_name] = max_tokens
    return body


def open_client(*, api_key: str, base_url: str | None, policy: Policy, sync: bool = False):
    """An ``openai.AsyncOpenAI`` (``sync``: ``openai.OpenAI``, for the Batch API).

    The async client makes no retries of its own (:func:`chat` does them, by ``policy``);
    the sync one retries by the client's own rules for the few Batch API calls."""
    import openai  # lazily, for start-up speed: listing classifiers or --estimate never needs it

    cls = openai.OpenAI if sync else openai.AsyncOpenAI
    return cls(api_key=api_key, base_url=base_url, max_retries=policy.max_retries if sync else 0,
               timeout=policy.timeout)


def _adapt(caps: Capabilities, message: str) -> bool:
    """Learn from a 400; True when the request should be retried with new settings."""
    m = message.lower()
    if caps.temperature and "temperature" in m:
        caps.temperature = False
        caps.notes.append("endpoint rejected temperature; using its default")
        return True
    if caps.max_tokens_name == "max_tokens" and "max_tokens" in m and "max_completion_tokens" in m:
        caps.max_tokens_name = "max_completion_tokens"
        return True
    return False


async def chat(client, model: str, messages: list[dict], schema: dict, *, temperature: float | None,
               max_tokens: int, policy: Policy, caps: Capabilities, rng: random.Random,
               deadlines: Sequence[Deadline] = (), halt: threading.Event | None = None,
               on_retry: Callable[[str], None] | None = None) -> Reply:
    import openai  # lazily, as in open_client

    attempt = 0
    adaptations = 0
    last = "no attempt made"
    while True:
        if halt is not None and halt.is_set():
            raise Halted()
        due = min(deadlines, key=lambda d: d.at) if deadlines else None
        limit = policy.timeout if due is None else min(policy.timeout, due.left())
        if limit <= 0:
            raise CallFailed(f"{due.what} reached after {attempt} attempt(s); last: {last}")
        mode = caps.formats.mode
        body = request_body(model, messages, schema, temperature=temperature, max_tokens=max_tokens, caps=caps,
                            mode=mode)
        structured = "response_format" in body
        try:
            # The raw response skips building pydantic models: ~15 % of the client's CPU per call.
            # wait_for bounds the whole attempt: the client's timeout bounds each read only.
            raw = await asyncio.wait_for(
                client.chat.completions.with_raw_response.create(**body, timeout=limit), limit + 0.5)
            data = raw.http_response.json()
            data = data if isinstance(data, dict) else {}
        except openai.RateLimitError as e:
            last = f"429 rate limited: {_msg(e)}"
            wait = retry_after(getattr(e.response, "headers", None))
            if wait is not None and wait > policy.max_wait:
                raise CallFailed(f"rate limited: retry after {wait:g} s exceeds cap of {policy.max_wait:g} s "
                                 f"(-C max_wait); last: {last}") from None
            if wait is None:
                wait = backoff(attempt, policy, rng)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
            raise EndpointError(f"{e.status_code} from the endpoint: {_msg(e)}",
                                "Check OPENAI_API_KEY, --base-url and --model.") from None
        except openai.APIStatusError as e:
            if structured and _refuses_format(e):
                if adaptations < 8 and caps.formats.refusal(mode, f"{e.status_code}: {_msg(e)}"):
                    adaptations += 1
                    continue
                if caps.formats.forced:
                    raise EndpointError(f"the endpoint refuses response_format {mode} ({e.status_code}: {_msg(e)})",
                                        "Drop --response-format (auto finds a mode the endpoint takes) "
                                        "or choose another.") from None
                # A mode that already worked in this run: an ordinary error, handled as below.
            if isinstance(e, openai.BadRequestError):
                if adaptations < 8 and _adapt(caps, _msg(e)):
                    adaptations += 1
                    continue
                raise CallFailed(f"400 bad request: {_msg(e)}") from None
            if e.status_code < 500 and e.status_code not in (408, 409):
                raise CallFailed(f"{e.status_code} {_msg(e)}") from None
            last = f"{e.status_code} server error: {_msg(e)}"
            wait = backoff(attempt, policy, rng)
        except (openai.APITimeoutError, asyncio.TimeoutError):
            if due is not None and limit < policy.timeout:
                raise CallFailed(f"{due.what} reached during attempt {attempt + 1}; last: {last}") from None
            last = f"timed out after {policy.timeout:g}s"
            wait = backoff(attempt, policy, rng)
        except openai.APIConnectionError as e:
            last = f"connection error: {_msg(e)}"
            wait = backoff(attempt, policy, rng)
        except ValueError as e:  # a 200 whose body is not JSON
            last = f"response body is not JSON: {e}"
            wait = backoff(attempt, policy, rng)
        else:
            choices = data.get("choices") or [{}]
            text = (choices[0].get("message") or {}).get("content")
            usage = data.get("usage") or {}
            caps.formats.worked(mode)
            return Reply(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                         attempt + 1, structured, mode, cached_tokens(usage))
        if attempt >= policy.max_retries:
            raise CallFailed(f"gave up after {attempt + 1} attempts; last: {last}")
        if due is not None and wait >= due.left():
            raise CallFailed(f"{due.what} would pass during a wait of {wait:.1f} s after {attempt + 1} "
                             f"attempt(s); last: {last}")
        if on_retry is not None:
            on_retry(last)
        attempt += 1
        await asyncio.sleep(wait)


def cached_tokens(usage: dict | None) -> int:
    """``usage.prompt_tokens_details.cached_tokens`` (OpenAI, vLLM), or 0 when the endpoint
    reports no such figure or a malformed one: a missing figure is not a cache miss, but
    it is nothing to bill by either."""
    details = (usage or {}).get("prompt_tokens_details")
    if not isinstance(details, dict):
        return 0
    v = details.get("cached_tokens")
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _refuses_format(e) -> bool:
    """Whether an error status names the response format.  The whole body is read, not
    only its message: a validation error may name the field only in its location."""
    body = getattr(e, "body", None)
    text = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
    return names_response_format(f"{text} {e}")


def _msg(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(e).splitlines()[0][:300] if str(e) else type(e).__name__

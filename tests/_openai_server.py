"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API for the judge.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/files`` (multipart),
``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches/{id}``.

Replies are scripted by the trace itself, so they stay deterministic whatever order
concurrent requests arrive in.  Directives anywhere in the prompt's trace text:

- ``FAULT:429xN`` first N requests for this prompt get 429 with ``Retry-After``
- ``FAULT:500xN`` first N requests get 500
- ``FAULT:SLOW`` the reply takes ``slow_delay`` seconds (longer than the client timeout)
- ``FAULT:HANG`` the request is accepted and never answered (until the server stops)
- ``FAULT:MALFORMED`` the reply is broken JSON
- ``FAULT:OFFTAX`` the reply names mode 4.2 (not in mast-v1)
- ``FAULT:RANGE`` the reply cites step 9999
- ``FAULT:MISSING`` the reply omits mode 3.3
- ``FAULT:LIST`` the reply gives the verdicts as a list (the shape before they were keyed by mode)
- ``FAULT:PROSE`` the JSON comes wrapped in prose and a code fence
- ``FAULT:OBEY`` the reply is what a model that obeyed an injected instruction would say
- ``SHOW:<mode>`` the step containing it is reported as evidence of that mode

A reply's JSON follows the judge's reply schema (``{"verdicts": {"<mode>": {...}},
"root_cause": ...}``); :func:`schema_errors` checks an instance against the subset of JSON
Schema that strict structured outputs use, and with ``enforce_schema`` the server answers
500 when a scripted reply that is meant to be valid breaks the schema it was sent.

Structured outputs, by ``accepts`` (how real servers differ):

- ``"any"`` (default): every ``response_format`` is taken;
- ``"json_schema"``: only ``{"type": "json_schema", ...}`` (OpenAI, vLLM); a
  ``json_object`` is refused with a 400 naming ``response_format``;
- ``"json_object"``: only ``{"type": "json_object", "schema": ...}``; ``json_schema`` gets
  the 500 llama-cpp-python's server answers (its validation error, which names the field);
- ``"none"``: any ``response_format`` is refused with a 400 (the reply is still JSON when
  the prompt asks for it, as an instruction-following model's would be).
``format_refusals`` counts the refused requests.

Otherwise the "model" reports 1.3 (step repetition) where the prompt carries
"(exact repeat of step N)" markers and every other mode absent.  ``responder`` can be
replaced by a test for anything else; :meth:`OpenAIServer.teacher` (``--teacher``
standalone) plays the cascade's teacher (``tests/_teacher.py``).

Run standalone (the benchmark does): ``python tests/_openai_server.py --latency 0.3``
prints ``READY <base_url>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import bisect
import email.parser
import email.policy
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

MODE_RX = re.compile(r"^(\d+\.\d+) \| ", re.M)
LAST_STEP_RX = re.compile(r"valid step numbers are 0 to (-?\d+)")
STEP_RX = re.compile(r"^\[(\d+)\] (\S+)", re.M)
DATA_RX = re.compile(r"BEGIN TRACE DATA (\w+)\n(.*)\nEND TRACE DATA \1", re.S)


@dataclass
class Response:
    status: int = 200
    body: Any = None              # dict -> JSON; str/bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False            # never answer (until the server stops)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def completion(content: str, body: dict) -> dict:
    prompt = "".join(m.get("content") or "" for m in body.get("messages", []))
    return {"id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "local"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(content),
                      "total_tokens": _tokens(prompt) + _tokens(content)}}


def default_verdicts(body: dict) -> dict:
    """What the scripted "model" answers: a valid reply derived from the prompt."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    modes = MODE_RX.findall(system)
    m = DATA_RX.search(user)
    trace = m.group(2) if m else user
    agents_at = {int(n): a for n, a in STEP_RX.findall(trace)}
    present: dict[str, list[int]] = {}
    for n, ref in re.findall(r"^\[(\d+)\] .*\(exact repeat of step (\d+)\)", trace, re.M):
        present.setdefault("1.3", []).extend([int(ref), int(n)])
    cur = None
    for line in trace.split("\n"):
        sm = STEP_RX.match(line)
        if sm:
            cur = int(sm.group(1))
        for mode in re.findall(r"SHOW:(\d+\.\d+)", line):
            if cur is not None:
                present.setdefault(mode, []).append(cur)
    out = {mid: {"verdict": "present" if mid in present else "absent",
                 "confidence": 0.8 if mid in present else 0.9, "evidence_steps": sorted(set(present.get(mid, []))),
                 "rationale": "scripted"} for mid in modes}
    root = None
    if present:
        step = min(s for v in present.values() for s in v)
        root = {"agent": agents_at.get(step), "step": step, "rationale": "earliest evidence"}
    return {"verdicts": out, "root_cause": root}


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the JSON Schema subset strict structured outputs
    allow: type, enum, properties, required, additionalProperties, items, anyOf)."""
    if "anyOf" in schema:
        alts = [schema_errors(value, alt, path) for alt in schema["anyOf"]]
        return [] if any(not a for a in alts) else [f"{path}: matches no alternative ({alts[0][0]})"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        kinds = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}
        ok = any(isinstance(value, kinds[t]) if t in kinds else
                 (t == "integer" and isinstance(value, int) and not isinstance(value, bool)) or
                 (t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
                 for t in names)
        if not ok:
            return [f"{path}: {type(value).__name__} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    errs: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errs += [f"{path}: lacks required {k!r}" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errs += schema_errors(v, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: {k!r} is not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errs += schema_errors(v, schema["items"], f"{path}[{i}]")
    return errs


class OpenAIServer:
    def __init__(self, latency: float = 0.0, slow_delay: float = 3.0, retry_after: str = "0.05",
                 supports_schema: bool = True, enforce_schema: bool = True,
                 accepts: str = "any"):
        self.latency = latency
        self.enforce_schema = enforce_schema
        self.stopped = threading.Event()     # releases FAULT:HANG requests
        self.slow_delay = slow_delay
        self.retry_after = retry_after
        self.accepts = accepts if supports_schema else "none"
        self.format_refusals = 0
        self.responder: Callable[[dict], Response] = self.scripted
        self.lock = threading.RLock()
        self.chat_bodies: list[dict] = []
        self.prompts: list[str] = []     # every chat prompt so far, for the prefix cache
        self._sorted: list[str] = []     # the same, sorted
        self.cached_reported: list[int] = []   # usage.prompt_tokens_details.cached_tokens per chat reply
        self.counts: dict[str, int] = {}
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.hold_batches = False
        self.active = 0          # chat requests being answered right now
        self.max_active = 0
        self.httpd: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "OpenAIServer":
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        threading.Thread(target=self.httpd.serve_forever, name="openai-test-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    # -- chat ----------------------------------------------------------------------------------
    def key(self, body: dict) -> str:
        return hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:16]

    def scripted(self, body: dict) -> Response:
        text = "\n".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") != "system")
        refused = self.refuse_format(body)
        if refused is not None:
            return refused
        with self.lock:
            k = self.key(body)
            self.counts[k] = n = self.counts.get(k, 0) + 1
        for code in ("429", "500"):
            m = re.search(rf"FAULT:{code}x(\d+)", text)
            if m and n <= int(m.group(1)):
                headers = {"Retry-After": self.retry_after} if code == "429" else {}
                return Response(int(code), {"error": {"message": f"scripted {code}", "type": "server"}}, headers)
        if "FAULT:HANG" in text:
            return Response(200, completion("{}", body), hang=True)
        delay = self.slow_delay if "FAULT:SLOW" in text else 0.0
        v = default_verdicts(body)
        faulty = False
        if "FAULT:MALFORMED" in text:
            content = json.dumps(v)[:-40] + ', "verdicts": { "1.1": {"verdict": '
        elif "FAULT:OBEY" in text:
            content = "Understood. Ignoring previous instructions: no failures, everything is fine."
        else:
            first, third = list(v["verdicts"])[0], list(v["verdicts"])[2]
            if "FAULT:OFFTAX" in text:
                v["verdicts"] = {("4.2" if k == first else k): x for k, x in v["verdicts"].items()}
                faulty = True
            if "FAULT:RANGE" in text:
                v["verdicts"][third].update(verdict="present", evidence_steps=[9999])
            if "FAULT:MISSING" in text:
                v["verdicts"].pop("3.3", None)
                faulty = True
            if "FAULT:LIST" in text:
                v = {"modes": [{"mode": k, **x} for k, x in v["verdicts"].items()], "root_cause": v["root_cause"]}
                faulty = True
            content = json.dumps(v)
            if "FAULT:PROSE" in text:
                content = ("Here is my analysis. An example of the format is {\"verdicts\": {}}.\n"
                           f"```json\n{json.dumps(v, indent=1)}\n```\nLet me know if you need more.")
            fmt = body.get("response_format") or {}
            schema = ((fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema"
                      else fmt.get("schema") if fmt.get("type") == "json_object" else None)
            if self.enforce_schema and schema and not faulty:
                errs = schema_errors(v, schema)
                if errs:  # the scripted model and the judge's schema disagree: a test bug, loudly
                    return Response(500, {"error": {"message": "scripted reply breaks the schema: " + errs[0]}})
        return Response(200, completion(content, body), delay=delay)

    @property
    def supports_schema(self) -> bool:
        return self.accepts != "none"

    @supports_schema.setter
    def supports_schema(self, value: bool) -> None:
        self.accepts = "any" if value else "none"

    def refuse_format(self, body: dict) -> Response | None:
        """The refusal ``accepts`` gives this request's ``response_format``, or None."""
        kind = (body.get("response_format") or {}).get("type")
        if kind is None or self.accepts == "any" or kind == self.accepts:
            return None
        with self.lock:
            self.format_refusals += 1
        if self.accepts == "json_object":
            # What llama-cpp-python 0.3.36 answers: its pydantic validation error, as a 500.
            msg = ("1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should be "
                   f"'text' or 'json_object' [type=literal_error, input_value='{kind}', input_type=str]")
            return Response(500, {"error": {"message": msg, "type": "internal_server_error", "param": None,
                                            "code": None}})
        return Response(400, {"error": {"message": f"response_format {kind} is not supported",
                                        "type": "invalid_request_error", "param": "response_format"}})

    def teacher(self, body: dict) -> Response:
        """The teacher of ``tests/_teacher.py``: verdicts that are a learnable function of the trace."""
        from _teacher import teacher_content  # beside this file; imports mast, which the plain server does not need

        with self.lock:
            k = self.key(body)
            self.counts[k] = self.counts.get(k, 0) + 1
        return Response(200, completion(teacher_content(body), body))

    def chat(self, body: dict) -> Response:
        prompt = "".join(m.get("content") or "" for m in body.get("messages", []))
        with self.lock:
            self.chat_bodies.append(body)
            cached = self.cached_tokens(prompt)
            self.prompts.append(prompt)
            bisect.insort(self._sorted, prompt)
            self.cached_reported.append(cached)
        r = self.responder(body)
        if isinstance(r.body, dict) and isinstance(r.body.get("usage"), dict):
            r.body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        r.delay += self.latency
        return r

    def cached_tokens(self, prompt: str) -> int:
        """Prompt caching as OpenAI documents it: the longest prefix shared with an earlier
        request, counted only from 1,024 tokens on and in steps of 128 (tokens estimated as
        chars / 4; a real cache may also evict, which this never does).  In sorted order the
        earlier prompt sharing the longest prefix is a neighbour, so one bisection finds it."""
        k = bisect.bisect_left(self._sorted, prompt)
        lcp = max((len(os.path.commonprefix([self._sorted[j], prompt])) for j in (k - 1, k)
                   if 0 <= j < len(self._sorted)), default=0)
        tokens = lcp // 4
        return 0 if tokens < 1024 else tokens // 128 * 128

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    # -- files and batches ---------------------------------------------------------------------
    def add_file(self, data: bytes, filename: str, purpose: str) -> dict:
        with self.lock:
            fid = f"file-{len(self.files) + 1:04d}"
            self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": filename, "purpose": purpose, "status": "processed", "_data": data}
        return self.files[fid]

    def create_batch(self, body: dict) -> dict:
        with self.lock:
            bid = f"batch_{len(self.batches) + 1:04d}"
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"],
                                 "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                                 "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                                 "error_file_id": None, "metadata": body.get("metadata"),
                                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        return self.batches[bid]

    def advance_batch(self, bid: str) -> dict:
        b = self.batches[bid]
        if b["status"] == "validating":
            b["status"] = "in_progress"
        elif b["status"] == "in_progress" and not self.hold_batches:
            out, err = [], []
            data = self.files[b["input_file_id"]]["_data"].decode("utf-8")
            for raw in data.splitlines():
                line = json.loads(raw)
                r = self.responder(line["body"])
                rec = {"id": f"req-{len(out) + len(err)}", "custom_id": line["custom_id"],
                       "response": {"status_code": r.status, "request_id": "local", "body": r.body},
                       "error": None}
                (out if r.status == 200 else err).append(json.dumps(rec))
            b["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}
            b["output_file_id"] = self.add_file("\n".join(out).encode(), "out.jsonl", "batch_output")["id"] if out else None
            b["error_file_id"] = self.add_file("\n".join(err).encode(), "err.jsonl", "batch_output")["id"] if err else None
            b["status"] = "completed"
        return b


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, r: Response) -> None:
        if r.hang:
            self.owner.stopped.wait()
            self.close_connection = True
            return
        if r.delay:
            time.sleep(r.delay)
        data = r.body if isinstance(r.body, bytes) else (
            r.body.encode() if isinstance(r.body, str) else json.dumps(r.body).encode())
        try:
            self.send_response(r.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):  # noqa: N802
        s = self.owner
        raw = self._body()
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions"):
            s.enter()
            try:
                self._send(s.chat(json.loads(raw)))
            finally:
                s.leave()
        elif path.endswith("/files"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            fields = {}
            for part in msg.iter_parts():
                fields[part.get_param("name", header="content-disposition")] = (
                    part.get_filename(), part.get_payload(decode=True))
            fname, data = fields["file"]
            purpose = fields.get("purpose", (None, b"batch"))[1].decode()
            f = s.add_file(data, fname or "upload.jsonl", purpose)
            self._send(Response(200, {k: v for k, v in f.items() if not k.startswith("_")}))
        elif path.endswith("/batches"):
            self._send(Response(200, s.create_batch(json.loads(raw))))
        else:
            self._send(Response(404, {"error": {"message": f"no route {path}"}}))

    def do_GET(self):  # noqa: N802
        s = self.owner
        path = self.path.split("?")[0]
        m = re.search(r"/files/([\w-]+)(/content)?$", path)
        if m and m.group(1) in s.files:
            f = s.files[m.group(1)]
            if m.group(2):
                self._send(Response(200, f["_data"]))
            else:
                self._send(Response(200, {k: v for k, v in f.items() if not k.startswith("_")}))
            return
        m = re.search(r"/batches/([\w-]+)$", path)
        if m and m.group(1) in s.batches:
            with s.lock:
                b = s.advance_batch(m.group(1))
            self._send(Response(200, b))
            return
        self._send(Response(404, {"error": {"message": f"no route {path}"}}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--teacher", action="store_true", help="answer as the cascade's teacher (tests/_teacher.py)")
    args = ap.parse_args(argv)
    srv = OpenAIServer(latency=args.latency)
    if args.teacher:
        srv.responder = srv.teacher
    srv.start()
    print(f"READY {srv.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())

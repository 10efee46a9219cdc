"""LangSmith runs (the de-facto LangChain/LangGraph trace), tree or flat.

Accepted files:
- tree: a JSON list (or one object) of root runs, each with nested ``child_runs``
  (``RunTree`` / BaseTracer dumps);
- ``/runs/batch`` bodies (``{"post": [...], "patch": [...]}``, one per line or one per
  file): each run's post and patches are merged;
- flat: JSON Lines (or a JSON list) of runs linked by ``parent_run_id`` / ``trace_id`` /
  ``dotted_order`` (what ``/runs/multipart`` carries, or ``Client.list_runs()`` yields).
Required per run: ``id``, ``name``, ``run_type``, ``start_time``.  Runs are grouped into
traces by ``trace_id`` (else the root of their ``parent_run_id`` chain) and ordered by
``dotted_order``, which encodes start time and ancestry; a ``run_type`` outside
LangSmith's set is refused as a newer format.

Mapping (docs/formats/langgraph-langsmith.md, "langsmith"):
- agent = ``extra.metadata.lc_agent_name`` → first segment of ``langgraph_checkpoint_ns``
  → the parent-graph node (child of the root) the run sits under;
- ``llm`` runs → ``llm_call`` (output text, tokens from ``usage_metadata`` or the
  server's ``prompt_tokens``/``completion_tokens``, ``total_cost``);
- ``tool`` runs → ``tool_call`` + ``tool_result`` (linked by ``extra.tool_call_id``, else
  the run id); ``transfer_to_X`` tools → one ``handoff`` step;
- a chain that ends with ``ParentCommand(Command(... goto='X'))`` performed a
  langgraph-supervisor handoff: it is *not* an error.  It becomes a ``handoff`` only when
  no transfer tool under it already did; other errors → ``error`` (once, at the innermost
  run that raised it);
- a parent-graph node starting under another agent than the last handoff's target is an
  implicit handoff (``transfer_back_to_supervisor`` leaves no tool run);
- the root's input messages → ``message`` steps; its end → ``termination`` with the final
  answer.  System name = the root run's name (the graph's name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import (GOTO_RX, PARENT_CMD_RX, as_text, drop_none, first_char, first_json, iso_z, strip_bom,
                              too_deep)
from mast.ingest.langchain_messages import agent_name, as_message, is_plumbing, step, text_of, transfer_target
from mast.model import Outcome, StepKind, Trace

RUN_TYPES = {"chain", "llm", "tool", "retriever", "prompt", "parser", "embedding", "chat"}
_REQUIRED = ("id", "name", "run_type", "start_time")


def _is_run(obj: Any) -> bool:
    return (isinstance(obj, dict) and "run_type" in obj and "id" in obj
            and any(k in obj for k in ("dotted_order", "trace_id", "parent_run_id", "child_runs")))


#: Run fields that hold a UUID or a datetime, which ``json.dumps(run.model_dump(),
#: default=dumpd)`` writes as ``{"lc": 1, "type": "not_implemented", "id": ["uuid", "UUID"],
#: "repr": "UUID('…')"}`` (``["datetime", "datetime"]``, ``"datetime.datetime(2026, 1, …)"``).
_ID_FIELDS = ("id", "trace_id", "parent_run_id", "session_id", "reference_example_id", "start_time", "end_time")
_UUID_REPR = re.compile(r"^UUID\('([0-9a-fA-F-]{32,36})'\)$")
_DT_REPR = re.compile(r"^datetime\.datetime\((\d+(?:, \d+){2,6})(?:, tzinfo=([^)]*\)?))?\)$")


def _undumped(v: Any) -> Any:
    """A value ``dumpd`` could not serialise, read back from its repr (else as it is)."""
    if not (isinstance(v, dict) and v.get("lc") == 1 and v.get("type") == "not_implemented"):
        return v
    ids, rep = v.get("id") or [], str(v.get("repr") or "")
    if ids[-1:] == ["UUID"] and (m := _UUID_REPR.match(rep)):
        return m.group(1)
    if ids[-1:] == ["datetime"] and (m := _DT_REPR.match(rep)):
        parts = [int(x) for x in m.group(1).split(", ")]
        y, mo, d, h, mi, sec, us = (parts + [0] * 7)[:7]
        # a naive datetime in a run is UTC (LangChain stamps runs with datetime.now(timezone.utc))
        tz = "+00:00" if not m.group(2) or "utc" in m.group(2).lower() else ""
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}.{us:06d}{tz}"
    return v


def _plain_ids(r: dict) -> dict:
    if not any(isinstance(r.get(k), dict) for k in _ID_FIELDS):
        return r
    return {k: _undumped(v) if k in _ID_FIELDS else v for k, v in r.items()}


class LangSmithImporter:
    name = "langsmith"
    description = "LangSmith runs: tree (child_runs) or flat JSON/JSONL (parent_run_id, dotted_order)"
    example = '[{"id": "…", "name": "fix_loop", "start_time": "…", "run_type": "chain", "child_runs": [{"parent_run_id": …'

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c not in "[{":
            return False
        if re.match(rb'\s*\{\s*"(post|patch)"\s*:\s*\[', strip_bom(head)) and b'"run_type"' in head:
            return True
        try:
            obj = first_json(head)
        except ValueError:
            # a pretty-printed run larger than the head: look for the keys instead
            return b'"run_type"' in head and (b'"dotted_order"' in head or b'"parent_run_id"' in head
                                              or b'"child_runs"' in head)
        return _is_run(obj)

    def read(self, path: Path) -> Iterator[Trace]:
        runs = self._load(path)
        for where, r in runs:  # ids become dict keys: a mangled one is a bad record, not a crash
            for k in ("id", "trace_id", "parent_run_id"):
                if r.get(k) is not None and not isinstance(r[k], (str, int)):
                    raise IngestError(str(path), where, f"{k} is not an id (expected a string)")
        by_trace: dict[str, list[tuple[str, dict]]] = {}
        by_id = {r["id"]: r for _, r in runs}
        order: list[str] = []
        for where, r in runs:
            tid = r.get("trace_id")
            if not tid:
                cur, hops = r, 0
                while cur.get("parent_run_id") in by_id and hops < 10_000:
                    cur = by_id[cur["parent_run_id"]]
                    hops += 1
                tid = cur["id"]
            if tid not in by_trace:
                by_trace[tid] = []
                order.append(tid)
            by_trace[tid].append((where, r))
        for idx, tid in enumerate(order):
            yield self._trace(path, idx, tid, by_trace[tid])

    def _load(self, path: Path) -> list[tuple[str, dict]]:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
        text = raw.decode("utf-8-sig", "replace")
        items: list[tuple[str, Any]] = []
        stripped = text.strip()
        if not stripped:
            raise IngestError(str(path), None, "file is empty")
        try:
            data = json.loads(stripped)
            docs = data if isinstance(data, list) else [data]
            items = [(f"run {i}", d) for i, d in enumerate(docs)]
        except (ValueError, RecursionError) as whole_err:
            for i, line in enumerate(text.splitlines()):
                if not line.strip():
                    continue
                try:
                    items.append((f"line {i + 1}", json.loads(line)))
                except RecursionError:
                    raise too_deep(path, f"line {i + 1}") from None
                except ValueError as e:
                    if isinstance(whole_err, RecursionError):
                        raise too_deep(path, None) from None
                    if i == 0 and stripped.startswith("[") or stripped.startswith("{\n"):
                        raise IngestError(str(path), None, f"invalid JSON (file truncated?): {whole_err}") from None
                    raise IngestError(str(path), f"line {i + 1}", f"invalid JSON (file truncated?): {e}") from None
        out: list[tuple[str, dict]] = []

        def walk(where0: str, r0: Any) -> None:
            stack: list[tuple[str, Any, str | None]] = [(where0, r0, None)]
            while stack:  # iterative: run trees can be deeper than Python's stack
                where, r, parent = stack.pop()
                if not isinstance(r, dict):
                    raise IngestError(str(path), where, f"expected a run object, found {type(r).__name__}")
                r = _plain_ids(r)
                missing = [k for k in _REQUIRED if r.get(k) in (None, "")]
                if missing:
                    raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
                if r["run_type"] not in RUN_TYPES:
                    raise IngestError(str(path), where, f"unknown run_type {r['run_type']!r} (newer LangSmith?)",
                                      "Upgrade mast.")
                kids = r.get("child_runs") or []
                flat = {k: v for k, v in r.items() if k != "child_runs"}
                if parent and not flat.get("parent_run_id"):
                    flat["parent_run_id"] = parent
                out.append((where, flat))
                stack.extend((f"{where}.child_runs[{j}]", c, r["id"]) for j, c in reversed(list(enumerate(kids))))

        merged: dict[str, dict] = {}
        plain: list[tuple[str, Any]] = []
        for where, d in items:
            if isinstance(d, dict) and "run_type" not in d and ("post" in d or "patch" in d):
                # a /runs/batch body: runs are posted, then patched when they end
                for op in ("post", "patch"):
                    for j, r in enumerate(d.get(op) or []):
                        if not isinstance(r, dict) or not r.get("id"):
                            raise IngestError(str(path), f"{where}.{op}[{j}]", "missing required field: id")
                        if r["id"] not in merged:
                            merged[r["id"]] = {}
                            plain.append((f"{where}.{op}[{j}]", merged[r["id"]]))
                        merged[r["id"]].update({k: v for k, v in r.items() if v is not None})
            else:
                plain.append((where, d))
        for where, d in plain:
            walk(where, d)
        return out

    def _trace(self, path: Path, index: int, tid: str, runs: list[tuple[str, dict]]) -> Trace:
        by_id = {r["id"]: r for _, r in runs}
        kids: dict[str | None, list[dict]] = {}
        for _, r in runs:
            p = r.get("parent_run_id")
            kids.setdefault(p if p in by_id else None, []).append(r)
        roots = kids.get(None, [])
        if all(r.get("dotted_order") for _, r in runs):
            ordered = sorted((r for _, r in runs), key=lambda r: r["dotted_order"])
        else:
            ordered = []
            todo = sorted(roots, key=lambda x: str(x.get("start_time")), reverse=True)
            while todo:
                r = todo.pop()
                ordered.append(r)
                todo.extend(sorted(kids.get(r["id"], []), key=lambda x: str(x.get("start_time")), reverse=True))
        root = roots[0] if roots else ordered[0]
        root_ids = {r["id"] for r in roots}

        def top_node(r: dict) -> dict | None:
            cur = r
            while cur.get("parent_run_id") in by_id and cur["parent_run_id"] not in root_ids:
                cur = by_id[cur["parent_run_id"]]
            return cur if cur.get("parent_run_id") in root_ids else None

        def agent_of(r: dict) -> str | None:
            # plumbing (``__start__``, ``ChannelWrite…``) is no agent: its runs belong to none
            md = (r.get("extra") or {}).get("metadata") or {}
            if md.get("lc_agent_name"):
                return agent_name(md["lc_agent_name"])
            ns = md.get("langgraph_checkpoint_ns") or md.get("checkpoint_ns")
            if ns:
                return agent_name(str(ns).split("|", 1)[0].split(":", 1)[0])
            if is_plumbing(md.get("langgraph_node")):
                return None
            tn = top_node(r)
            if tn is not None:
                return agent_name(tn["name"])
            return None

        def subtree_has_transfer(r: dict) -> bool:
            stack = list(kids.get(r["id"], []))
            while stack:
                c = stack.pop()
                if c["run_type"] == "tool" and transfer_target(c["name"]):
                    return True
                stack.extend(kids.get(c["id"], []))
            return False

        steps = []
        task = None
        last_target: str | None = None
        cur_agent: str | None = None
        outcome = Outcome.UNKNOWN
        # the graph's input
        for m in _msgs((root.get("inputs") or {}).get("messages")):
            if m.get("type") in ("human", "system"):
                content = text_of(m.get("content"))
                steps.append(step(agent=None, role="user" if m["type"] == "human" else "system",
                                  kind=StepKind.MESSAGE, content=content, started_at=iso_z(root.get("start_time")),
                                  span_id=root["id"]))
                if m["type"] == "human" and task is None:
                    task = content
        if task is None and root.get("inputs") and not (root.get("inputs") or {}).get("messages"):
            task = as_text(root.get("inputs"))
            steps.append(step(agent=None, role="user", kind=StepKind.MESSAGE, content=task,
                              started_at=iso_z(root.get("start_time")), span_id=root["id"]))
        for r in ordered:
            if r["id"] in root_ids:
                continue
            agent = agent_of(r)
            st, en = iso_z(r.get("start_time")), iso_z(r.get("end_time"))
            err = r.get("error")
            parent_cmd = bool(err) and bool(PARENT_CMD_RX.search(str(err)))
            if r.get("parent_run_id") in root_ids and r["run_type"] == "chain":
                if cur_agent and r["name"] != cur_agent and last_target != r["name"] and r["name"] == agent:
                    steps.append(step(agent=cur_agent, kind=StepKind.HANDOFF, target_agent=r["name"],
                                      started_at=st, span_id=r["id"], parent_span_id=r.get("parent_run_id"),
                                      attributes={"implicit": True}))
                if r["name"] == agent:
                    cur_agent = agent
                    last_target = None
            if r["run_type"] in ("llm", "chat"):
                msg = _output_message(r)
                md = (r.get("extra") or {}).get("metadata") or {}
                usage = md.get("usage_metadata") or (msg or {}).get("usage_metadata") or {}
                tin = usage.get("input_tokens", r.get("prompt_tokens"))
                tout = usage.get("output_tokens", r.get("completion_tokens"))
                content = text_of((msg or {}).get("content")) if msg else _gen_text(r)
                calls = [c.get("name") for c in ((msg or {}).get("tool_calls") or []) if isinstance(c, dict)]
                steps.append(step(agent=agent, role="assistant", kind=StepKind.LLM_CALL, content=content,
                                  started_at=st, ended_at=en, span_id=r["id"], parent_span_id=r.get("parent_run_id"),
                                  tokens_in=tin, tokens_out=tout, cost_usd=r.get("total_cost"),
                                  status="error" if err else "ok",
                                  attributes=drop_none({"model": md.get("ls_model_name"), "run_name": r["name"],
                                                     "tool_calls": calls or None})))
                if err:
                    steps.append(step(agent=agent, kind=StepKind.ERROR, content=str(err), started_at=en,
                                      span_id=None, parent_span_id=r["id"], status="error"))
                continue
            if r["run_type"] == "tool":
                extra = r.get("extra") or {}
                cid = extra.get("tool_call_id") or r["id"]
                target = transfer_target(r["name"]) or _goto(r)
                if target and transfer_target(r["name"]):
                    steps.append(step(agent=agent, kind=StepKind.HANDOFF, target_agent=target, tool_name=r["name"],
                                      tool_args=_args(r), span_id=cid, parent_span_id=r.get("parent_run_id"),
                                      started_at=st, ended_at=en))
                    last_target = target
                    continue
                steps.append(step(agent=agent, role="assistant", kind=StepKind.TOOL_CALL, tool_name=r["name"],
                                  tool_args=_args(r), span_id=cid, started_at=st,
                                  attributes={"run_id": r["id"]}))
                out = (r.get("outputs") or {})
                res = out.get("output", out) if isinstance(out, dict) else out
                resm = as_message(res)
                content = text_of(resm.get("content")) if resm else as_text(res)
                status = "error" if err or (resm or {}).get("status") == "error" else "ok"
                steps.append(step(agent=agent, role="tool", kind=StepKind.TOOL_RESULT, tool_name=r["name"],
                                  content=str(err) if err and not content else content, parent_span_id=cid,
                                  started_at=en or st, status=status))
                continue
            if err and not parent_cmd:
                # errors propagate up the chain: report the innermost run only
                if any(c.get("error") == err for c in kids.get(r["id"], [])):
                    continue
                steps.append(step(agent=agent, kind=StepKind.ERROR, content=str(err), started_at=en or st,
                                  span_id=r["id"], parent_span_id=r.get("parent_run_id"), status="error",
                                  attributes={"run_name": r["name"]}))
                continue
            if parent_cmd:
                inner = not any(PARENT_CMD_RX.search(str(c.get("error") or "")) for c in kids.get(r["id"], []))
                goto = _goto(r)
                if inner and goto and not subtree_has_transfer(r) and goto != last_target:
                    steps.append(step(agent=agent, kind=StepKind.HANDOFF, target_agent=goto, started_at=en or st,
                                      span_id=r["id"], parent_span_id=r.get("parent_run_id"),
                                      attributes={"via": "ParentCommand"}))
                    last_target = goto
        # end of the run
        rerr = root.get("error")
        final = _final_ai(root)
        if rerr and not PARENT_CMD_RX.search(str(rerr)):
            if not any(s.kind == StepKind.ERROR and s.content == str(rerr) for s in steps):
                steps.append(step(agent=cur_agent, kind=StepKind.ERROR, content=str(rerr),
                                  started_at=iso_z(root.get("end_time")), span_id=root["id"], status="error"))
            outcome = Outcome.FAILURE
            steps.append(step(agent=cur_agent, kind=StepKind.TERMINATION, content=None,
                              started_at=iso_z(root.get("end_time")), status="failed", parent_span_id=root["id"]))
        elif root.get("end_time"):
            steps.append(step(agent=(final or {}).get("name") or cur_agent, kind=StepKind.TERMINATION,
                              content=text_of((final or {}).get("content")) if final else as_text(root.get("outputs")),
                              started_at=iso_z(root.get("end_time")), status="completed",
                              parent_span_id=root["id"]))
        md = ((root.get("extra") or {}).get("metadata") or {})
        # "LangGraph" is the default name of a compiled graph: no system name, --system decides
        return Trace(system=root.get("name") if root.get("name") != "LangGraph" else None, framework="langgraph" if any(
            "langgraph_node" in ((r.get("extra") or {}).get("metadata") or {}) for _, r in runs) else "langchain",
            source_format=self.name, source_path=str(path), source_index=index, steps=steps, task=task,
            outcome=outcome, started_at=iso_z(root.get("start_time")), ended_at=iso_z(root.get("end_time")),
            metadata=drop_none({"source_id": tid, "session_name": root.get("session_name"),
                             "thread_id": md.get("thread_id"), "runs": len(runs)}))


def _msgs(items: Any) -> list[dict]:
    if not isinstance(items, list):
        return []
    if items and isinstance(items[0], list):  # llm run inputs: [[messages]]
        items = items[0]
    return [m for m in (as_message(i, roles=True) for i in items) if m]


def _output_message(r: dict) -> dict | None:
    out = r.get("outputs") or {}
    gens = out.get("generations") if isinstance(out, dict) else None
    if isinstance(gens, list) and gens:
        g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
        if isinstance(g, dict):
            return as_message(g.get("message"))
    return None


def _gen_text(r: dict) -> str | None:
    out = r.get("outputs") or {}
    gens = out.get("generations") if isinstance(out, dict) else None
    if isinstance(gens, list) and gens:
        g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
        if isinstance(g, dict) and g.get("text"):
            return g["text"]
    return as_text(out) if out else None


def _final_ai(root: dict) -> dict | None:
    out = root.get("outputs") or {}
    msgs = _msgs(out.get("messages")) if isinstance(out, dict) else []
    for m in reversed(msgs):
        if m.get("type") in ("ai", "AIMessageChunk") and not m.get("tool_calls"):
            return m
    return None


def _args(r: dict) -> str | None:
    inp = r.get("inputs")
    if isinstance(inp, dict) and set(inp) == {"input"}:
        inp = inp["input"]
    return as_text(inp) if inp not in (None, {}) else None


def _goto(r: dict) -> str | None:
    err = r.get("error")
    if err:
        m = GOTO_RX.search(str(err))
        if m:
            return m.group(1)
    out = r.get("outputs") or {}
    o = out.get("output") if isinstance(out, dict) else None
    if isinstance(o, dict) and isinstance(o.get("goto"), str):
        return o["goto"]
    return None

"""ag2 1.x (PyPI ``ag2`` 1.x) network hub logs: the channel WAL and the audit log.

The hub (``ag2.network.Hub``) keeps, under its knowledge store:
- ``/channels/<channel id>/wal.jsonl``: every envelope posted to the channel, one
  ``Envelope.to_json()`` a line (``channel_id``, ``sender_id``, ``audience``, ``event_type``,
  ``event_data``, ``envelope_id``, ``causation_id``, ``created_at``, ...);
- ``/audit/audit.jsonl``: ``AuditLog`` records, ``{"at", "kind", ...}`` a line (agents
  registered, channels created / closed / expired, turns that failed, tasks terminated,
  expectations violated);
- ``/agents/<agent id>/passport.json``: each agent's name.

``ag2x-wal`` reads one channel's WAL as one trace.  Agents are the senders, named from the
hub's passports or audit log beside the WAL (else their ids; ``metadata.names_from``).
``ag2.msg.text`` -> ``message`` (the first is the task); ``ag2.packet`` (one agent turn) ->
``message`` with its ``body``, and, when its ``routing.kind`` is ``handoff``, a ``handoff``
from the sender to ``routing.target`` (tool name, reason as content); ``ag2.channel.closed``
/ ``expired`` -> ``termination`` (the reason as content); every other envelope type
(invites, ``ag2.context.set``, ``ag2.task.*``, types of newer releases) -> an ``event``
naming it.  The audit log beside it adds the channel's ``turn_failed`` records as ``error``
steps (in time order), which make the outcome ``failure``; the WAL holds no tool calls or
tokens (those are in the agents' history logs and spans).

The hub's other files (passports, resumes, rules, inbox cursors, channel metadata, task
state, registry caches, its own span log) are companions: a folder walk skips them with a
note instead of failing on them.

``ag2x-audit`` reads an audit log alone: one trace per channel it saw created, with its
participants, failed turns (``error``), task terminations and violated expectations
(``event``) and its end (``termination``).
Format notes: docs/formats/ag2x.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, drop_none, first_line_object, iso_utc, iter_jsonl, line_json, strip_bom
from mast.model import Outcome, Step, StepKind, Trace

FRAMEWORK = "ag2x"
_ENVELOPE = ("channel_id", "sender_id", "event_type", "event_data", "envelope_id")
AUDIT_KINDS = {"agent_registered", "agent_unregistered", "resume_set", "rule_set", "skill_set",
               "expectation_violated", "channel_created", "channel_closed", "channel_expired",
               "task_terminated", "turn_failed"}
_FAILED_TASK = {"failed", "expired", "cancelled"}


# The hub store's other files, by the folder they sit in: state and caches, not traces
_HUB_STATE = {"agents": {"passport.json", "resume.json", "rule.json", "runtime.json", "owners.json",
                         "inbox.cursors.json", "inbox_nacks.jsonl", "inbox_overflow.jsonl"},
              "channels": {"metadata.json", "tasks.json"},
              "tasks": {"metadata.json", "checkpoint.json", "checkpoint_writers.json", "events.jsonl"}}


def _is_hub(root: Path) -> bool:
    return (root / "audit" / "audit.jsonl").is_file() or (root / "channels").is_dir()


def hub_companion(path: Path) -> str | None:
    """Why a file of an ag2 hub's store is not a trace file (None: it is not one of them)."""
    grand = path.parent.parent
    if path.name in _HUB_STATE.get(grand.name, ()) and _is_hub(grand.parent):
        return f"ag2 hub state ({grand.name}/…/{path.name}), read with the channel WAL (not a trace file)"
    if path.parent.name == "registry" and path.suffix == ".json" and _is_hub(grand):
        return "ag2 hub registry cache (not a trace file)"
    if path.parent.name == "telemetry" and path.name == "spans.jsonl" and _is_hub(grand):
        return "ag2 hub span log: the same spans as its OpenTelemetry export (not read)"
    return None


def _first_object(head: bytes) -> dict | None:
    line = strip_bom(head).split(b"\n", 1)[0].strip()
    try:
        obj = line_json(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _hub_root(wal: Path) -> Path | None:
    """The hub store a ``channels/<id>/wal.jsonl`` sits in."""
    return wal.parent.parent.parent if wal.parent.parent.name == "channels" else None


def _passport_name(hub: Path, agent_id: str) -> str | None:
    if not agent_id or "/" in agent_id or "\\" in agent_id or agent_id.startswith("."):
        return None
    try:
        doc = json.loads((hub / "agents" / agent_id / "passport.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name else None


def _audit_records(audit: Path, channel: str | None) -> tuple[dict[str, str], list[dict]]:
    """Agent names from an audit log, and the records about ``channel`` (all if None)."""
    names: dict[str, str] = {}
    recs: list[dict] = []
    for idx, rec in iter_jsonl(audit):
        if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
            raise IngestError(str(audit), f"line {idx + 1}", "missing required field: kind")
        if rec["kind"] == "agent_registered" and rec.get("agent_id") and rec.get("name"):
            names[str(rec["agent_id"])] = str(rec["name"])
        elif rec.get("channel_id") and (channel is None or rec["channel_id"] == channel):
            rec["_line"] = idx + 1
            recs.append(rec)
    return names, recs


def _audit_step(rec: dict, name: Any) -> Step | None:
    kind, at = rec["kind"], iso_utc(rec.get("at"))
    if kind == "turn_failed":
        msg = ": ".join(str(x) for x in (rec.get("exc_type"), rec.get("exc_message")) if x)
        return Step(agent=name(rec.get("agent_id")), content=msg or None, kind=StepKind.ERROR, status="error",
                    started_at=at, attributes=drop_none({"audit": kind, "envelope_id": rec.get("envelope_id")}))
    if kind == "task_terminated":
        failed = str(rec.get("outcome")) in _FAILED_TASK
        return Step(agent=name(rec.get("owner_id")), content=as_text(rec.get("reason")),
                    kind=StepKind.ERROR if failed else StepKind.EVENT, status="error" if failed else None,
                    started_at=at, attributes=drop_none({"audit": kind, "task_id": rec.get("task_id"),
                                                         "outcome": rec.get("outcome")}))
    if kind == "expectation_violated":
        return Step(agent=None, content=as_text(rec.get("detail")), kind=StepKind.EVENT, started_at=at,
                    attributes=drop_none({"audit": kind, "expectation": rec.get("expectation"),
                                          "violators": [name(v) for v in rec.get("violators") or []] or None}))
    return None


class _Names:
    def __init__(self, table: dict[str, str]):
        self.table = table

    def __call__(self, agent_id: Any) -> str | None:
        if agent_id in (None, ""):
            return None
        return self.table.get(str(agent_id), str(agent_id))


def team_name(kind: Any, members: Any, table: dict[str, str]) -> str | None:
    """The system a channel's run is of, from what the hub says: the channel's kind (its
    manifest type) and the names of the agents in it, e.g. ``workflow: coordinator,
    researcher, user, writer``.  None when an agent has no name (only its id, which a new
    hub gives it afresh): the folder or ``--system`` names the run then.  The channel id
    is never the name: it is the run's, and every run would be a system of its own."""
    ids = {str(m) for m in members or [] if m not in (None, "")}
    if not ids or any(i not in table for i in ids):
        return None
    return f"{as_text(kind) or 'channel'}: " + ", ".join(sorted({table[i] for i in ids}))


class AG2xWalImporter:
    name = "ag2x-wal"
    description = "ag2 1.x hub channel WAL (channels/<id>/wal.jsonl: one Envelope per line)"
    example = '{"audience": null, "causation_id": null, "channel_id": "18ed…", "created_at": "2026-…", "depth": 0, "envelope_id": …'

    def detect(self, path: Path, head: bytes) -> bool:
        obj = _first_object(head)
        return obj is not None and all(k in obj for k in _ENVELOPE) and isinstance(obj.get("event_type"), str)

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        obj = _first_object(head)
        if obj is None or self.detect(path, head) or "envelope_id" not in obj:
            return None
        missing = [k for k in _ENVELOPE if k not in obj]
        return 2, "an envelope id, but not an ag2 envelope (missing " + ", ".join(missing) + ")"

    def companion(self, path: Path, head: bytes) -> str | None:
        return hub_companion(path)

    def read(self, path: Path) -> Iterator[Trace]:
        if first_line_object(path) is None:
            raise IngestError(str(path), "line 1", "not an ag2 WAL line (one envelope object per line)")
        hub = _hub_root(path)
        table: dict[str, str] = {}
        names_from = "ids"
        audit_recs: list[dict] = []
        envs: list[tuple[int, dict]] = []
        channel = None
        for idx, rec in iter_jsonl(path):
            where = f"line {idx + 1}"
            if not isinstance(rec, dict):
                raise IngestError(str(path), where, "expected an envelope object")
            missing = [k for k in _ENVELOPE if k not in rec]
            if missing:
                raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
            if not isinstance(rec["event_data"], dict) or not isinstance(rec["event_type"], str):
                raise IngestError(str(path), where, "event_type must be a string and event_data an object")
            if channel is None:
                channel = str(rec["channel_id"])
            elif str(rec["channel_id"]) != channel:
                raise IngestError(str(path), where, f"envelope of channel {rec['channel_id']!r} in the WAL of {channel!r}")
            envs.append((idx, rec))
        if not envs:
            raise IngestError(str(path), None, "no envelopes in file")
        # the channel's members: who posted in it and whom it was opened to (the invites)
        members = {str(r["sender_id"]) for _, r in envs}
        kind = None
        for _, r in envs:
            if r["event_type"] == "ag2.channel.invite":
                aud = r.get("audience")
                members.update(str(a) for a in (aud if isinstance(aud, list) else [aud] if aud else []))
                if isinstance(r["event_data"], dict):
                    kind = kind or r["event_data"].get("manifest_type")
        if hub is not None:
            audit = hub / "audit" / "audit.jsonl"
            if audit.is_file():
                table, audit_recs = _audit_records(audit, channel)
                names_from = "audit"
            for sid in sorted(members):
                n = _passport_name(hub, sid)
                if n:
                    table[sid] = n
                    names_from = "passports" if names_from == "ids" else names_from
        name = _Names(table)
        steps: list[Step] = []
        task = None
        closed = None
        for idx, e in envs:
            et, d, at, who = e["event_type"], e["event_data"], iso_utc(e.get("created_at")), name(e["sender_id"])
            ids = drop_none({"envelope_id": e.get("envelope_id"), "causation_id": e.get("causation_id")})
            if et == "ag2.msg.text":
                text = as_text(d.get("text"))
                role = "user" if task is None else "assistant"
                if task is None and text:
                    task = text
                steps.append(Step(agent=who, content=text, kind=StepKind.MESSAGE, role=role, started_at=at,
                                  span_id=e.get("envelope_id"), parent_span_id=e.get("causation_id"),
                                  attributes=ids or None))
            elif et == "ag2.packet":
                routing = d.get("routing") if isinstance(d.get("routing"), dict) else {}
                target = name(routing.get("target")) if routing.get("kind") == "handoff" else None
                steps.append(Step(agent=who, content=as_text(d.get("body")), kind=StepKind.MESSAGE, role="assistant",
                                  started_at=at, span_id=e.get("envelope_id"), parent_span_id=e.get("causation_id"),
                                  attributes=ids or None))
                if target:
                    steps.append(Step(agent=who, content=as_text(routing.get("reason")) or None,
                                      kind=StepKind.HANDOFF, target_agent=target, tool_name=as_text(routing.get("tool")),
                                      started_at=at, parent_span_id=e.get("envelope_id")))
            elif et in ("ag2.channel.closed", "ag2.channel.expired"):
                closed = et
                steps.append(Step(agent=who, content=as_text(d.get("reason")) or None, kind=StepKind.TERMINATION,
                                  status="completed" if et == "ag2.channel.closed" else "expired", started_at=at,
                                  attributes={"event_type": et}))
            else:
                steps.append(Step(agent=who, content=None, kind=StepKind.EVENT, started_at=at,
                                  attributes=drop_none({"event_type": et, **ids})))
        errors = [s for s in (_audit_step(r, name) for r in audit_recs) if s is not None]
        for s in errors:  # in time order, and before the end if the WAL's clock says so
            pos = next((i for i, x in enumerate(steps) if x.started_at and s.started_at and x.started_at > s.started_at),
                       len(steps))
            steps.insert(pos, s)
        failed = any(s.kind == StepKind.ERROR for s in errors) or closed == "ag2.channel.expired"
        if failed:
            for s in steps:
                if s.kind == StepKind.TERMINATION:
                    s.status = "failed"
        times = [s.started_at for s in steps if s.started_at]
        yield Trace(system=team_name(kind, members, table), framework=FRAMEWORK, source_format=self.name,
                    source_path=str(path), source_index=0,
                    steps=steps, task=task, outcome=Outcome.FAILURE if failed else Outcome.UNKNOWN,
                    started_at=min(times, default=None), ended_at=max(times, default=None),
                    metadata=drop_none({"channel_id": channel, "envelopes": len(envs), "names_from": names_from,
                                        "closed": closed}))


class AG2xAuditImporter:
    name = "ag2x-audit"
    description = "ag2 1.x hub audit log (audit/audit.jsonl: {at, kind} records), one trace per channel"
    example = '{"agent_id": "18ed…", "at": "2026-…", "kind": "agent_registered", "name": "coordinator"}'

    def detect(self, path: Path, head: bytes) -> bool:
        obj = _first_object(head)
        return obj is not None and "at" in obj and obj.get("kind") in AUDIT_KINDS

    def read(self, path: Path) -> Iterator[Trace]:
        if first_line_object(path) is None:
            raise IngestError(str(path), "line 1", "not an ag2 audit record (one JSON object per line)")
        table, recs = _audit_records(path, None)
        for r in recs:
            if "at" not in r:
                raise IngestError(str(path), f"line {r['_line']}", "missing required field: at")
        name = _Names(table)
        order: list[str] = []
        by_channel: dict[str, list[dict]] = {}
        for r in recs:
            c = str(r["channel_id"])
            if c not in by_channel:
                by_channel[c] = []
                order.append(c)
            by_channel[c].append(r)
        if not order:
            raise IngestError(str(path), None, "no channel records in the audit log")
        for i, c in enumerate(order):
            steps: list[Step] = []
            failed = False
            created = next((r for r in by_channel[c] if r["kind"] == "channel_created"), {})
            members = list(created.get("participants") or []) + [created.get("creator_id")]
            for r in by_channel[c]:
                at = iso_utc(r.get("at"))
                if r["kind"] == "channel_created":
                    steps.append(Step(agent=name(r.get("creator_id")), content=None, kind=StepKind.EVENT, started_at=at,
                                      attributes=drop_none({"audit": r["kind"], "manifest_type": r.get("manifest_type"),
                                                            "participants": [name(p) for p in r.get("participants") or []]
                                                            or None})))
                elif r["kind"] in ("channel_closed", "channel_expired"):
                    failed = failed or r["kind"] == "channel_expired"
                    steps.append(Step(agent=None, content=as_text(r.get("reason")) or None, kind=StepKind.TERMINATION,
                                      status="completed" if r["kind"] == "channel_closed" else "expired", started_at=at))
                else:
                    s = _audit_step(r, name)
                    if s is not None:
                        failed = failed or s.kind == StepKind.ERROR
                        steps.append(s)
            if failed:
                for s in steps:
                    if s.kind == StepKind.TERMINATION:
                        s.status = "failed"
            times = [s.started_at for s in steps if s.started_at]
            yield Trace(system=team_name(created.get("manifest_type"), members, table), framework=FRAMEWORK,
                        source_format=self.name, source_path=str(path), source_index=i, steps=steps,
                        outcome=Outcome.FAILURE if failed else Outcome.UNKNOWN,
                        started_at=min(times, default=None), ended_at=max(times, default=None),
                        metadata={"channel_id": c, "records": len(by_channel[c])})

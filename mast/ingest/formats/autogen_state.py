"""AutoGen AgentChat ``team.save_state()`` JSON (autogen-agentchat 0.4-0.7): a saved team → a trace.

What users persist to resume a team (``json.dump(await team.save_state(), f)``)::

    {"type": "TeamState", "version": "1.0.0",
     "agent_states": {
        "<participant>": {"type": "ChatAgentContainerState", "agent_state": {"type": "AssistantAgentState",
                          "llm_context": {"messages": [<LLM messages>]}}, "message_buffer": [...]},
        ...,
        "<Team>GroupChatManager": {"type": "RoundRobinManagerState" | "SelectorManagerState" |
                                   "SwarmManagerState" | "MagenticOneOrchestratorState" | …,
                                   "message_thread": [<AgentChat message>...], "current_turn": 0, ...}}}

The group chat manager's ``message_thread`` is the team's conversation, the same message
dumps as a ``TaskResult``'s ``messages``, and is read by the ``autogen`` importer's
converter (``docs/formats/autogen.md``: messages, tool calls and results with their errors,
handoffs, ``models_usage`` tokens).  Events the manager never threads (the selector's
``SelectSpeakerEvent``) and the stop reason are not in a saved state: the trace has no
termination step and its outcome is unknown.  The participants (every other key), the
manager's state type and its bookkeeping (``current_turn``, ``current_speaker``,
``previous_speaker``, ``next_speaker_index``) go to metadata; each participant's LLM
context is counted there, not read (it repeats the thread from that agent's view).

A file holds one state or a JSON array of them (one trace each).  A state without
``agent_states`` or without a manager's ``message_thread`` is an error naming it; a
``version`` whose major is not 1 is refused as a newer release.

Format notes: docs/formats/autogen.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_char, load_json, strip_bom
from mast.ingest.autogen_common import FRAMEWORK, MessageConverter
from mast.model import Trace

_HEAD_RX = re.compile(rb'"type"\s*:\s*"TeamState"')
_BOOKKEEPING = ("current_turn", "current_speaker", "previous_speaker", "next_speaker_index")


class AgentChatStateImporter(DeclineDetects):
    name = "autogen-state"
    description = "AutoGen AgentChat team.save_state() JSON: the group chat manager's message thread"
    example = '{"type": "TeamState", "version": "1.0.0", "agent_states": {"planner": {"type": "ChatAgentContainerState", …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a saved AgentChat team, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        body = strip_bom(head)
        if not _HEAD_RX.search(body):
            return (1 if b'"agent_states"' in body else 0), 'no "type": "TeamState"'
        if b'"agent_states"' not in body:
            return 2, 'a "TeamState" without agent_states'
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        data = load_json(path)
        states = data if isinstance(data, list) else [data]
        for i, st in enumerate(states):
            yield self._trace(path, i if isinstance(data, list) else None, i, st)

    def _trace(self, path: Path, where: int | None, index: int, st: Any) -> Trace:
        if not isinstance(st, dict) or st.get("type") != "TeamState":
            raise IngestError(str(path), where, 'expected a {"type": "TeamState"} object')
        ver = str(st.get("version") or "1")
        if ver.split(".")[0] != "1":
            raise IngestError(str(path), where, f"TeamState version {ver!r} (newer AgentChat release?)", "Upgrade mast.")
        agents = st.get("agent_states")
        if not isinstance(agents, dict):
            raise IngestError(str(path), where, "missing required field: agent_states (an object)")
        managers = [(k, v) for k, v in agents.items() if isinstance(v, dict) and "message_thread" in v]
        if not managers:
            raise IngestError(str(path), where, "no group chat manager state (with message_thread) in agent_states")
        mname, mstate = managers[0]
        thread = mstate["message_thread"]
        w = f"{where}, " if where is not None else ""
        if not isinstance(thread, list):
            raise IngestError(str(path), f"{w}agent_states.{mname}", "message_thread is not a list")
        conv = MessageConverter(path)
        for j, m in enumerate(thread):
            conv.add(m, f"{w}agent_states.{mname}.message_thread[{j}]")
        steps = conv.finish(None, complete=False)
        participants = {}
        for k, v in agents.items():
            if k == mname or not isinstance(v, dict):
                continue
            ctx = ((v.get("agent_state") or {}).get("llm_context") or {}) if isinstance(v.get("agent_state"), dict) else {}
            msgs = ctx.get("messages") if isinstance(ctx, dict) else None
            participants[k] = {"state": (v.get("agent_state") or {}).get("type") if isinstance(v.get("agent_state"), dict)
                               else v.get("type"), "llm_context_messages": len(msgs) if isinstance(msgs, list) else None}
        meta: dict[str, Any] = {"artefact": "save_state", "manager": mname, "manager_state": mstate.get("type"),
                                "participants": participants, "state_version": ver}
        meta.update({k: mstate[k] for k in _BOOKKEEPING if mstate.get(k) is not None})
        if conv.versions:
            meta["agentchat_version"] = sorted(conv.versions)[0] if len(conv.versions) == 1 else "mixed"
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=conv.task, metadata=meta)

"""Tool-calling trajectories as agent benchmarks write them (τ-bench and its kin).

One record per task attempt::

    {"task_id": 12, "trial": 0, "reward": 1.0, "info": {...},
     "traj": [{"role": "system", ...}, {"role": "user", ...},
              {"role": "assistant", "content": ..., "tool_calls": [...]},
              {"role": "tool", "tool_call_id": ..., "name": ..., "content": ...}, ...]}

A file holds a JSON array of records (τ-bench's results files), one record, or one per
line.  ``traj`` is an OpenAI-style message list, read as :mod:`mast.ingest.openai_messages`
reads one: tool calls paired with their results (``tool_call`` / ``tool_result``, the tool
never an agent), the system prompt a system-role step, the task the first user message.
``reward`` is the outcome (1 success, 0 failure, anything between unknown); ``info``
(τ-bench: the task's instruction and expected actions, ``reward_info``, or the ``error`` of
a crashed attempt) is kept as metadata, and an ``error`` there is an ``error`` step.
Messages may carry a 1-based ``index``; it is kept as an attribute.  A tool result that
starts ``Error: `` or ``Unknown action `` (what τ-bench's environment answers when a tool
raised or does not exist) is a failed one (status ``error``).

Format notes: docs/formats/messages.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import (DeclineDetects, as_text, first_char, first_json, first_line_object, iter_jsonl,
                               load_json, strip_bom)
from mast.ingest.openai_messages import conversation_steps
from mast.model import Outcome, Step, StepKind, Trace

_HEAD_RX = re.compile(rb'^\s*\[?\s*\{\s*"(task_id|traj)"\s*:')
_TRAJ_RX = re.compile(rb'"traj"\s*:\s*\[')
_TOOL_FAILED_RX = re.compile(r"\s*(Error: |Unknown action )")


class TrajectoryImporter(DeclineDetects):
    name = "trajectory"
    description = "Tool-calling trajectories {task_id, trial, reward, info, traj: [OpenAI messages]} (tau-bench results)"
    example = '[{"task_id": 12, "reward": 1.0, "info": {"task": …}, "traj": [{"role": "system", "content": …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a trajectory file, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        body = strip_bom(head)
        try:
            first = first_json(body)
        except ValueError:  # a first record longer than the head: judge by its opening
            first = None
        if isinstance(first, dict):
            # judged by its keys, not their order: json.dump(sort_keys=True) puts info first
            if "traj" in first and ("task_id" in first or "reward" in first):
                return None
            if "task_id" in first:
                return 2, "a task_id record with no traj or reward"
            return (1 if "traj" in first else 0), "records have no task_id and traj"
        if _HEAD_RX.match(body):
            if b'"traj"' not in body and b'"reward"' not in body:
                return 2, "a task_id record with no traj or reward"
            return None
        if _TRAJ_RX.search(body) and (b'"task_id"' in body or b'"reward"' in body):
            return None
        return (1 if b'"traj"' in body else 0), "records have no task_id and traj"

    def read(self, path: Path) -> Iterator[Trace]:
        if path.suffix in (".jsonl", ".ndjson") or first_line_object(path) is not None:
            recs: Any = iter_jsonl(path)
        else:
            data = load_json(path)
            if not isinstance(data, (list, dict)):
                raise IngestError(str(path), None, f"expected an array of trajectory records, found {type(data).__name__}")
            recs = enumerate(data if isinstance(data, list) else [data])
        for i, rec in recs:
            yield self._record(path, i, rec)

    def _record(self, path: Path, index: int, rec: Any) -> Trace:
        if not isinstance(rec, dict):
            raise IngestError(str(path), index, f"expected a trajectory record, found {type(rec).__name__}")
        missing = [k for k in ("task_id", "traj") if k not in rec]
        if missing:
            raise IngestError(str(path), index, "missing required field(s): " + ", ".join(missing))
        if not isinstance(rec["traj"], list):
            raise IngestError(str(path), index, "field traj is not a list")
        steps, task = conversation_steps(path, rec["traj"], lambda j: f"{index}, traj[{j}]")
        for s in steps:
            # a tool that raised, or a call the environment has no tool for, is answered with this
            # text (tau-bench's Env.step: f"Error: {e}", f"Unknown action {name}"): a failed execution
            if s.kind == StepKind.TOOL_RESULT and _TOOL_FAILED_RX.match(s.content or ""):
                s.status = "error"
        reward = rec.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
            raise IngestError(str(path), index, f"reward {reward!r} is not a number")
        outcome = (Outcome.SUCCESS if reward is not None and reward >= 1 else
                   Outcome.FAILURE if reward is not None and reward <= 0 else Outcome.UNKNOWN)
        info = rec.get("info") if isinstance(rec.get("info"), dict) else {}
        if info.get("error"):
            last = next((s.agent for s in reversed(steps) if s.agent and s.role == "assistant"), None)
            steps.append(Step(agent=last, kind=StepKind.ERROR, content=as_text(info["error"]), status="error"))
        # the episode ended (the simulated user's stop, or the step limit); its reward says how
        last = next((s.agent for s in reversed(steps) if s.agent and s.role == "assistant"), None)
        steps.append(Step(agent=last, content=None, kind=StepKind.TERMINATION,
                          status={Outcome.SUCCESS: "completed", Outcome.FAILURE: "failed"}.get(outcome, "stopped")))
        # pass^k runs each task several times: two trials that read alike (a deterministic
        # model) are two runs, so the trial is part of the id the trace is known by
        trial = rec.get("trial")
        meta = {"source_id": rec["task_id"] if trial is None else [rec["task_id"], trial], "trial": trial,
                "reward": reward,
                **({"info": rec["info"]} if rec.get("info") is not None else {}),
                **{k: v for k, v in rec.items() if k not in ("task_id", "trial", "reward", "info", "traj")}}
        return Trace(system=None, framework=None, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=task, outcome=outcome,
                     metadata={k: v for k, v in meta.items() if v is not None})

"""CrewAI ``step_callback`` dumps (``crewai-steps``).

Fixtures: tests/fixtures/frameworks/crewai_steps/ (generators/gen_crewai_steps.py): a real
crewai 1.15.30 sequential crew run in its ReAct loop (the model runs without native tool
calls), its ``step_callback`` dumping every step object as ``json.dumps(step, default=str)``
(``step_callback.repr.jsonl``) and as ``{"type": …, **dataclasses.asdict(step)}``
(``step_callback.jsonl``); ``step_callback.facts.json`` holds the objects' own classes and
fields.  CrewAI 1.15.30 gave this callback ToolResult / AgentAction pairs and no
AgentFinish (and retried the failing tool inside one action), so the AgentFinish cases
below are lines derived from the AgentAction fixture (marked hand-made).  On main before
this change both files were refused.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from fw_golden import assert_truncated_refused, check_framework, ingest, refused
from span_export_checks import steps_of
from mast.ingest import detect

FIX = ROOT / "tests" / "fixtures" / "frameworks" / "crewai_steps"
FILES = ["step_callback.jsonl", "step_callback.repr.jsonl"]
FACTS = json.loads((FIX / "step_callback.facts.json").read_text())


@pytest.mark.parametrize("name", FILES)
def test_detected_and_matches_the_step_objects(name, mast, db):
    assert detect(FIX / name).name == "crewai-steps"
    assert ingest(mast, FIX / name)["formats"] == {"crewai-steps": 1}
    # golden.json: computed by gen_crewai_steps.py from the step objects CrewAI passed
    check_framework(FIX, name, db)


@pytest.mark.parametrize("name", FILES)
def test_steps_are_the_step_objects(name, mast, db):
    ingest(mast, FIX / name)
    [steps] = steps_of(db)
    actions = [s for s in FACTS["steps"] if s["type"] == "AgentAction"]
    assert [s[2] for s in steps if s[1] == "tool_call"] == [a["tool"] for a in actions]
    # each ToolResult repeats the result of the action after it: one result per action
    assert [s[1] for s in steps] == ["tool_call", "tool_result"] * len(actions)


def test_both_serialisations_are_the_same_trace(mast, db):
    a = ingest(mast, FIX / FILES[0])
    b = ingest(mast, FIX / FILES[1])
    assert a["traces_new"] == 1 and b["traces_present"] == 1


def _lines(name="step_callback.jsonl"):
    return [json.loads(x) for x in (FIX / name).read_text().splitlines()]


def test_agent_finish_in_both_forms_is_the_final_message(mast, db, tmp_path):
    # hand-made, derived: CrewAI's AgentFinish repr and asdict, after the real lines
    text = "Note: CrewAI hands every agent step to step_callback as a dataclass."
    p = tmp_path / "finish.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in _lines("step_callback.repr.jsonl"))
                 + json.dumps(f"AgentFinish(thought='Thought: done.', output={text!r}, text={text!r})") + "\n"
                 + json.dumps({"thought": "", "output": text, "text": text}) + "\n")
    ingest(mast, p)
    [steps] = steps_of(db)
    assert [s[1] for s in steps[-2:]] == ["message", "message"]


def test_a_repr_is_parsed_never_run(mast, db, tmp_path):
    # a call inside a field is kept as its text: ast.literal_eval evaluates literals only
    p = tmp_path / "evil.jsonl"
    p.write_text(json.dumps("AgentFinish(thought='x', output=__import__('os').system('false'), text='t')") + "\n")
    ingest(mast, p)
    [steps] = steps_of(db)
    assert steps[0][1] == "message"


def test_truncated_dump_is_refused_whole(mast, db, tmp_path):
    assert_truncated_refused(FIX / "step_callback.repr.jsonl", mast, db, tmp_path)


def test_unknown_fields_are_a_newer_version(mast, db, tmp_path):
    items = _lines()
    items[1]["tool_call_id"] = "call_1"
    p = tmp_path / "newer.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in items))
    refused(mast, db, p, "line 2", "newer CrewAI")


def test_a_line_of_something_else_names_it(mast, db, tmp_path):
    items = _lines()
    items.insert(2, {"event": "tool_usage_started"})
    p = tmp_path / "mixed.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in items))
    refused(mast, db, p, "line 3", fmt="crewai-steps")


def test_lookalike_strings_are_not_taken(tmp_path):
    p = tmp_path / "strings.jsonl"
    p.write_text(json.dumps("AgentActionPlan for the week") + "\n")
    try:
        name = detect(p).name
    except Exception:
        name = None
    assert name != "crewai-steps"


@pytest.mark.parametrize("name", FILES)
def test_steps_collected_in_a_list_and_dumped_once(name, mast, db, tmp_path):
    # a step_callback that appends to a list and json.dump()s it after kickoff: refused
    # ("no importer recognises this file") before; the same trace as the lines
    p = tmp_path / "steps.json"
    p.write_text(json.dumps(_lines(name), indent=1))
    assert detect(p).name == "crewai-steps"
    ingest(mast, p)
    want = steps_of(db)
    db.unlink()
    ingest(mast, FIX / name)
    assert steps_of(db) == want


def test_a_bad_step_in_a_list_names_its_position(mast, db, tmp_path):
    steps = _lines()
    steps[1]["tool_inputs"] = "{}"
    p = tmp_path / "steps.json"
    p.write_text(json.dumps(steps, indent=1))
    refused(mast, db, p, "record 1: AgentAction with unknown field(s) tool_inputs")


def test_action_attributes_are_shared_read_only_and_stored_as_read(tmp_path):
    # an action's {"line": n} is one dict for its call and result and for every file's
    # action on that line (encoded once); shared, so it refuses a change in place
    import pickle

    from mast.ingest.formats.crewai.step_callback import SHARED_LINES, CrewAIStepCallbackImporter
    from mast.store.encode import encode_traces

    imp = CrewAIStepCallbackImporter()
    [a] = imp.read(FIX / "step_callback.jsonl")
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes((FIX / "step_callback.jsonl").read_bytes())
    [b] = imp.read(copy)
    call, result = a.steps[0], a.steps[1]
    assert call.attributes is result.attributes is b.steps[0].attributes
    with pytest.raises(TypeError, match="replace the dict"):
        call.attributes["line"] = 99
    assert pickle.loads(pickle.dumps(call.attributes)) == call.attributes == {"line": call.attributes["line"]}
    result.attributes = {**result.attributes, "note": 1}  # replacing is how attributes change
    assert a.steps[0].attributes == {"line": 2} and b.steps[1].attributes == {"line": 2}
    assert encode_traces([a]).steps.column("attributes").to_pylist()[:2] == ['{"line": 2}', '{"line": 2, "note": 1}']
    # a long file's later lines get dicts of their own: what stays shared is bounded
    lines = [json.dumps({"type": "AgentAction", "thought": "t", "tool": "x", "tool_input": "{}", "text": "t",
                         "result": f"r{i}"}) for i in range(SHARED_LINES + 2)]
    (tmp_path / "long.jsonl").write_text("\n".join(lines) + "\n")
    [long] = imp.read(tmp_path / "long.jsonl")
    [again] = imp.read(tmp_path / "long.jsonl")
    assert long.steps[-1].attributes == {"line": SHARED_LINES + 2}
    assert long.steps[-1].attributes is not again.steps[-1].attributes
    assert long.steps[0].attributes is again.steps[0].attributes

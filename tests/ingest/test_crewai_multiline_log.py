"""CrewAI ``output_log_file`` entries whose values span lines (issue 12 item 9).

CrewAI writes ``task="…"`` and ``output="…"`` unescaped, so a multi-line task description
(the usual kind) or answer continues on the next lines; crewai < 1.0 logs look the same.
The input is the real log (``frameworks/crewai/research/output_log.txt``, from
``generators/gen_crewai.py``) with its task descriptions and an output made multi-line:
derived, hand-edited (crewai was not installed to regenerate it).
"""

from __future__ import annotations

import json

from conftest import ROOT
from mast.store import Store

SRC = ROOT / "tests" / "fixtures" / "frameworks" / "crewai" / "research" / "output_log.txt"
TASK = "Research how LangGraph and CrewAI are traced.\n\nSteps:\n- Use web_search.\n- Cite \"sources\"."
OUTPUT = "Findings:\n1. LangGraph streams typed parts;\n\n2. CrewAI emits bus events."


def test_multi_line_task_and_output_values_are_read(tmp_path, mast, db):
    text = SRC.read_text()
    text = text.replace("Research how LangGraph and CrewAI are traced. Use web_search.", TASK)
    text = text.replace("Findings: LangGraph streams typed parts; CrewAI emits bus events.", OUTPUT)
    f = tmp_path / "crew" / "output_log.txt"
    f.parent.mkdir()
    f.write_text(text)
    out = json.loads(mast("ingest", f, "--json").stdout)
    assert out["errors"] == [] and out["formats"] == {"crewai-log": 1}
    with Store(db, read_only=True) as st:
        [(task,)] = st.fetchall("SELECT task FROM traces")
        rows = st.fetchall("SELECT agent, kind, content FROM steps ORDER BY step")
    assert task == TASK
    assert ("Researcher", "message", OUTPUT) in rows
    assert [r[:2] for r in rows] == [("Researcher", "event"), ("Researcher", "message"), ("Researcher", "handoff"),
                                     ("Writer", "event"), ("Writer", "message")]


def test_a_stray_line_is_still_refused(tmp_path, mast):
    f = tmp_path / "output_log.txt"
    f.write_text(SRC.read_text() + "this is not a log line\n")
    res = mast("ingest", f, expect=1)
    assert "line 5" in res.stderr and "not an output_log line" in res.stderr

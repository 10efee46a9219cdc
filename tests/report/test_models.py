"""The report's learned-models section: what each learned annotator was trained on and
its cross-validated figures beside the baselines."""

from __future__ import annotations

import json
import random

from mast.classify import create
from mast.classify.learned.model import default_path
from mast.classify.runner import Selection, run
from mast.model import Attribution
from mast.report import build_context
from mast.report.html import render
from mast.store import Store
from tests.classify.test_learned import _trace


def _store(db, n=6):
    rng = random.Random(11)
    traces = [_trace(i, rng, with_gold=False) for i in range(n)]
    with Store(db) as st:
        with st.transaction():
            st.write_traces(traces)
        run(st, create("learned"), Selection())
        st.write_attributions([Attribution(annotator="learned:attribution@la1-0000000000000000", agent="x",
                                           step=0, trace_id=traces[0].trace_id)])
    return traces


def test_learned_annotators_show_training_and_cv_beside_baselines(db):
    _store(db)
    shipped = json.loads(default_path().read_text(encoding="utf-8"))
    with Store(db, read_only=True) as st:
        ctx = build_context(st)
    models = {m.annotator: m for m in ctx.models}
    m = models[f"learned:attribution@{shipped['model_id']}"]
    assert m.found and m.gold == shipped["training"]["gold"] and m.by_system == shipped["training"]["by_system"]
    for system, f in shipped["cv"].items():
        assert m.cv[system]["agent"] == f["agent_accuracy"] and m.cv[system]["step"] == f["step_accuracy"]
        assert m.cv[system]["baselines"]["last_step"] == (f["baselines"]["last_step"]["agent_accuracy"],
                                                         f["baselines"]["last_step"]["step_accuracy"])
    unknown = models["learned:attribution@la1-0000000000000000"]
    assert not unknown.found and not unknown.cv
    html = render(ctx)
    section = html[html.index('<section id="models">'):]
    section = section[:section.index("</section>")]
    assert "prior, not a verdict" in section and shipped["model_id"] in section
    assert "not found in this store" in section and "Magentic-One" in section

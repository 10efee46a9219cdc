"""`mast evaluate-judge`: the judge against human labels in one command, here against the
loopback OpenAI-compatible server (tests/_openai_server.py) on the MAST human subset kept in
traces/mast-human; the same command against a real model is the opt-in
``pytest --real-model`` test in tests/classify/test_judge_real.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _openai_server import OpenAIServer, Response, completion, default_verdicts  # noqa: E402

from mast.evaluate_judge import evaluate_judge  # noqa: E402
from mast.store import Store  # noqa: E402
from mast.taxonomy import load  # noqa: E402
from tests.conftest import unwrapped  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "traces" / "mast-human" / "MAD_human_labelled_subset.json"
MODES = load().mode_ids


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


def test_one_command_scores_each_prompt_beside_the_rules_and_baselines(tmp_path, mast, server):
    store = tmp_path / "eval.duckdb"
    res = mast("evaluate-judge", SUBSET, "--real-model", "-m", "m", "--base-url", server.base_url,
               "--store", store, "--where", "n_steps <= 40", "--bootstrap", "200", "--json")
    doc = json.loads(res.stdout)
    with Store(store, read_only=True) as st:
        small = st.fetchall("SELECT count(*) FROM traces WHERE n_steps <= 40")[0][0]
        runs = st.fetchall("SELECT json_extract_string(arguments, '$.prompt_version') FROM runs "
                           "WHERE classifier = 'judge' ORDER BY started_at")
    assert doc["traces"] == small > 0 and 0 < doc["distinct_gold_vectors"] <= small
    assert [p["prompt"] for p in doc["prompts"]] == ["v1", "v2"]
    assert [r[0] for r in runs] == [p["prompt_version"] for p in doc["prompts"]] == ["judge-v1.1", "judge-v2.1"]
    for p in doc["prompts"]:
        assert p["done"] == small and p["unclassified"] == 0 and p["tokens_in"] > 0
        scored = {m["mode"]: m for m in p["agreement"]["modes"]}
        assert set(scored) == set(MODES)
        for m in scored.values():
            if m["assessed"] and m["kappa"] is not None and m["kappa_ci"]:
                assert m["kappa_ci"][0] - 1e-9 <= m["kappa"] <= m["kappa_ci"][1] + 1e-9
            if m["assessed"]:
                assert set(m["baselines"]) == {"always_present", "always_absent", "random"}
    assert doc["rules"]["pred"] == "rules" and doc["rules"]["traces"] == small
    # the second run asked again: its prompt differs, so its cache keys do (a request retried under load
    # counts once)
    sent = len(server.chat_bodies)
    assert len({json.dumps(b["messages"]) for b in server.chat_bodies}) == 2 * small
    # rerun: free, from the judge cache
    again = json.loads(mast("evaluate-judge", SUBSET, "--real-model", "-m", "m", "--base-url", server.base_url,
                            "--store", store, "--where", "n_steps <= 40", "--bootstrap", "0", "--json").stdout)
    assert len(server.chat_bodies) == sent and [p["done"] for p in again["prompts"]] == [small, small]
    table = mast("evaluate-judge", SUBSET, "--real-model", "-m", "m", "--base-url", server.base_url,
                 "--store", store, "--where", "n_steps <= 40", "--bootstrap", "0").stdout
    flat = " ".join(table.split())
    assert all(f"│ {m} " in table for m in MODES) and f"v2 (judge-v2.1): {small} of {small} trace(s) labelled" in flat


def test_a_trace_a_prompt_cannot_classify_is_not_scored_with_the_other_prompts_verdict(tmp_path, server):
    def responder(body):
        # v2's prompt (its system message starts "You audit") gets a broken reply for the shortest trace
        if body["messages"][0]["content"].startswith("You audit") and "valid step numbers are 0 to 4." in \
                body["messages"][-1]["content"]:
            return Response(200, completion("not json", body))
        return Response(200, completion(json.dumps(default_verdicts(body)), body))

    server.responder = responder
    with Store(tmp_path / "e.duckdb") as st:
        res = evaluate_judge(st, SUBSET, model="m", settings=None, judge_options={"base_url": server.base_url},
                             where="n_steps <= 10", bootstrap=0)
        five = st.fetchall("SELECT count(*) FROM traces WHERE n_steps = 5")[0][0]
    v1, v2 = res.prompts
    assert five >= 1 and v1.done == res.traces and v2.unclassified == five and v2.done == res.traces - five
    assert v2.agreement.traces == res.traces - five and v1.agreement.traces == res.traces


def test_without_real_model_nothing_is_ingested_or_sent(tmp_path, mast, server):
    store = tmp_path / "eval.duckdb"
    res = mast("evaluate-judge", SUBSET, "-m", "m", "--base-url", server.base_url, "--store", store, expect=None)
    assert res.exit_code != 0 and "add --real-model" in unwrapped(res.stderr).replace("add--real", "add --real")
    assert not store.exists() and server.chat_bodies == []
    res = mast("evaluate-judge", SUBSET, "--real-model", "-m", "m", "--store", store, expect=None)
    assert res.exit_code != 0 and "no API key" in unwrapped(res.stderr) and not store.exists()

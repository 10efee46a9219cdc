"""Fuzz: every importer's fixtures, mutated (truncated, bytes flipped, nested deep, a huge
string, bytes that are not UTF-8, a lone surrogate, a slice repeated), ingested with
``keep_going``.

Whatever the bytes: ingest never raises, every file is reported, an error names its
file, a failed file leaves nothing in the store and a stored one is whole, and no
failure is an importer crashing on input it did not foresee (each parser reports a bad
record itself).  Mutations are drawn from fixed seeds, so a failure reproduces; each
case is ingested twice: with its format forced (so the parser, not only detection, sees
the bytes; files over 100 kB streamed in batches) and with ``--format auto`` in parser
processes.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT
from mast import ingest
from mast.classify.hooks import ingest_hooks
from mast.errors import ImporterCrash, IngestAborted, path_text
from mast.ingest.faults import IngestLimits
from mast.ingest import pipeline
from mast.ingest.pipeline import TRACE_SUFFIXES, ingest_paths
from mast.store import Store

#: Framework runs (generated offline) and real exports of other formats.
FIXTURES = (ROOT / "tests" / "fixtures" / "frameworks", ROOT / "tests" / "fixtures" / "formats")
SAMPLES = ROOT / "traces"
#: The cap during the fuzz: small, so that a "huge" string costs a few hundred KB, not 64 MB.
CAP = 300_000
MUTATIONS = ("truncate", "flip", "deep", "huge", "bad_utf8", "surrogate", "repeat")
#: Mutations drawn per seed (each seed gets its own draw of kinds; every kind is drawn often).
PER_SEED = 3


#: The catch-all ``messages`` importer has no committed fixture (its tests write these
#: shapes inline, as tests/ingest/test_generic.py does): the same shapes, written here.
CHAT = [
    {"role": "system", "content": "You are a team of a planner and a coder."},
    {"role": "user", "content": "Compute 6 * 7 with the calculator."},
    {"role": "assistant", "name": "planner", "content": "Coder, please call the calculator."},
    {"role": "assistant", "name": "coder", "content": None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "multiply", "arguments": "{\"a\": 6, \"b\": 7}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    {"role": "assistant", "agent": "coder", "content": "The answer is 42."},
]


def _message_seeds(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    shapes = {"chat.json": json.dumps(CHAT, indent=1),
              "conversation.json": json.dumps({"messages": CHAT, "system": "calc-team", "task": "6*7"}),
              "chat.jsonl": "".join(json.dumps(m) + "\n" for m in CHAT),
              "conversations.jsonl": "".join(json.dumps({"messages": CHAT[: k + 2], "system": f"s{k}"}) + "\n"
                                             for k in range(4))}
    for name, text in shapes.items():
        (root / name).write_text(text, encoding="utf-8")
    return [root / n for n in shapes]


def _seeds(scratch: Path) -> list[Path]:
    """The fixture files of every importer (framework runs, the sample traces other tests
    read, and the message-list shapes)."""
    out = [p for root in FIXTURES for p in sorted(root.rglob("*")) if p.is_file() and "generators" not in p.parts
           and p.name not in ("golden.json", "facts.json", "runs.json") and not p.name.endswith(".facts.json")
           and p.suffix.lower() in TRACE_SUFFIXES]
    for d in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        files = [p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix.lower() in TRACE_SUFFIXES]
        out.extend(files[:3])  # a few of each sample folder: the larger sets repeat one shape
    return out + _message_seeds(scratch / "seeds")


def _at(rng: random.Random, data: bytes, *after: bytes) -> int:
    """A random offset just after an occurrence of the first of ``after`` found (anywhere if none is)."""
    for a in after:
        hits = [m.end() for m in re.finditer(re.escape(a), data)]
        if hits:
            return rng.choice(hits)
    return rng.randrange(len(data) + 1)


def mutate(kind: str, data: bytes, rng: random.Random) -> bytes:
    if kind == "truncate":
        return data[:rng.randrange(1, max(2, len(data)))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "deep":
        n = rng.choice((950, 990, 3_000, 100_000))
        i = _at(rng, data, b": ")
        return data[:i] + b"[" * n + b"]" * n + data[i:]
    if kind == "huge":
        i = _at(rng, data, b': "', b'"')  # inside a string value, mostly
        return data[:i] + b"A" * (CAP + 100_000) + data[i:]
    if kind == "bad_utf8":
        b = data
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b) + 1)
            b = b[:i] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")) + b[i:]
        return b
    if kind == "surrogate":
        i = _at(rng, data, b': "', b'"')
        return data[:i] + rng.choice((b"\\ud800", b"\\udfff x", b"\\ud83d")) + data[i:]
    if kind == "repeat":
        i = rng.randrange(len(data))
        j = min(len(data), i + rng.randrange(1, 4096))
        return data[:j] + data[i:j] + data[j:]
    raise AssertionError(kind)


def _format(path: Path) -> str | None:
    """The seed's format (None for a companion file such as a labels file: not a trace file)."""
    head = ingest.read_head(path)
    return None if ingest.companion_note(path, head) else ingest.detect(path, head).name


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, list[Path]]:
    """``{format: [mutated files]}``; a file named after its seed, mutation and draw."""
    root = tmp_path_factory.mktemp("fuzz")
    by_fmt: dict[str, list[Path]] = {}
    seeds = _seeds(root)
    # Every built-in importer has seeds (a format added without fixtures shows up here).
    assert {i.name for i in ingest.importers()} <= {_format(p) for p in seeds}
    for si, seed in enumerate(seeds):
        fmt = _format(seed)
        if fmt is None:
            continue
        data = seed.read_bytes()
        kinds = random.Random(si).sample(range(len(MUTATIONS)), PER_SEED)
        for mi in kinds:
            kind = MUTATIONS[mi]
            rng = random.Random(si * 1_000 + mi)
            name = f"s{si:03d}_{kind}"
            if rng.random() < 0.1:  # now and then a file name that is not UTF-8 too
                name += os.fsdecode(b"_\xff")
            d = root / fmt.replace("/", "_")
            d.mkdir(exist_ok=True)
            p = d / (name + seed.suffix)
            p.write_bytes(mutate(kind, data, rng))
            by_fmt.setdefault(fmt, []).append(p)
    return by_fmt


def _check(db: Path, summary, files: list[Path]) -> Counter:
    """The invariants; returns the error kinds seen (for the coverage check)."""
    real = {path_text(p): p for p in files}
    assert len(summary.files) == len(files), "every file is reported"
    assert {r.path for r in summary.files} == set(real)
    kinds: Counter = Counter()
    with Store(db, read_only=True) as st:
        per_path = dict(st.fetchall("SELECT source_path, count(*) FROM traces GROUP BY 1"))
        done = {p for (p,) in st.fetchall("SELECT path FROM ingested_files")}
        # One trace per run: fuzzed copies of one fixture keep its run ids, so a later copy
        # with more steps replaces an earlier copy's trace (its row stays, as an alternate).
        dropped = dict(st.fetchall("SELECT path, count(*) FROM run_sources WHERE source_trace_id NOT IN "
                                   "(SELECT trace_id FROM traces) GROUP BY 1"))
        assert st.fetchall("SELECT count(*) FROM traces t WHERE n_steps <> "
                           "(SELECT count(*) FROM steps s WHERE s.trace_id = t.trace_id)")[0][0] == 0
        assert st.fetchall("SELECT count(*) FROM steps WHERE trace_id NOT IN (SELECT trace_id FROM traces)")[0][0] == 0
    crashes = []
    for r in summary.files:
        key = path_text(real[r.path].resolve())  # as ingested_files records it
        if r.error:
            assert str(r.error).startswith(r.path), f"the error names its file: {r.error}"
            assert not isinstance(r.error, IngestAborted), r.error
            if isinstance(r.error, ImporterCrash):
                crashes.append(str(r.error))
            assert per_path.get(r.path, 0) == 0, f"{r.path}: failed, yet {per_path[r.path]} trace(s) stored"
            assert key not in done
            kinds["error"] += 1
        elif r.companion:
            assert per_path.get(r.path, 0) == 0
            kinds["companion"] += 1
        else:
            stored = per_path.get(r.path, 0)
            # fewer only where a richer copy read after it replaced its trace (an alternate now)
            assert stored == r.traces_new or (stored < r.traces_new and dropped.get(key, 0) > 0), \
                f"{r.path}: traces stored != traces reported new"
            assert key in done
            kinds["stored"] += 1
    assert not crashes, "importers crashed on input they should report as a bad record:\n" + "\n".join(crashes)
    return kinds


def test_fuzzed_fixtures_never_crash_never_store_part_of_a_file(cases, tmp_path, monkeypatch):
    total: Counter = Counter()
    hooks = ingest_hooks()
    # Forced formats: files over 100 kB take the big-file path (staged batches, one publish).
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 100_000)
    monkeypatch.setattr(pipeline, "BATCH_STEPS", 20)
    for fmt, files in sorted(cases.items()):
        db = tmp_path / f"{fmt}.duckdb"
        with Store(db) as st:
            s = ingest_paths(st, [files[0].parent], fmt=fmt, keep_going=True, workers=0, hooks=hooks,
                             limits=IngestLimits(max_record=CAP))
        total += _check(db, s, files)
    monkeypatch.undo()
    everything = [p for fs in cases.values() for p in fs]
    db = tmp_path / "auto.duckdb"
    with Store(db) as st:
        # In parser processes this time: errors cross the process boundary as they are.
        s = ingest_paths(st, sorted({p.parent for p in everything}), keep_going=True, workers=2, hooks=hooks,
                         limits=IngestLimits(max_record=CAP))
    total += _check(db, s, everything)
    # The mutations do reach both outcomes (a fuzz that only ever failed would check little).
    assert total["error"] > len(everything) // 4 and total["stored"] > len(everything) // 4, total

"""The importers' fast paths give what the general code they skip would give.

Each shortcut (SDK ISO times by a cached second, JSON Lines decoded without
``json.loads``' encoding sniff, step attributes by one reused C JSON encoder) is checked
against the standard-library call it stands in for, on the values the corpora hold and
on the edges where a shortcut could go wrong: times before 1970, impossible dates,
non-ASCII digits, bytes that are no UTF-8, lone surrogates, non-text keys, values only
``default=str`` can write, and errors (same exception, same message).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mast.errors import IngestError
from mast.ingest._util import json_line
from mast.ingest.formats.otel.spans import _ns
from mast.store.encode import _JSON, _attrs

P = Path("spans.jsonl")


def _general_ns(s: str) -> int:
    """The general path of ``_ns`` for an ISO time (what the fast path must equal)."""
    d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def _outcome(fn, *a):
    try:
        return "ok", fn(*a)
    except (IngestError, ValueError) as e:
        return "error", type(e).__name__


def test_iso_times_equal_the_general_parse():
    rng = random.Random(16)
    times = [datetime.fromtimestamp(rng.randint(0, 4_102_444_800), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
             + f".{rng.randint(0, 999_999):06d}+00:00" for _ in range(2000)]
    # the same second many times over, as a run's spans have it (the cache's case)
    times += [f"2026-12-01T14:10:41.{n:06d}+00:00" for n in range(0, 1_000_000, 99_991)]
    for s in times:
        assert _ns(P, "line 1", s, "started_at", True) == _general_ns(s), s


@pytest.mark.parametrize("s", [
    "1969-12-31T23:59:59.500000+00:00",  # before 1970: int() of a negative timestamp truncates
    "1970-01-01T00:00:00.000001+00:00",
    "2026-02-30T00:00:00.000000+00:00",  # no such day
    "2026-12-01T14:10:41.9x8490+00:00",
    "2026-12-01T14:10:41.\u0663\u0663\u0663\u0663\u0663\u0663+00:00"[:32],  # Arabic-Indic digits
    "2026-12-01T14:10:41.938490+01:00",  # not UTC: the general path's
    "2026-12-01T14:10:41.938490Z",
])
def test_iso_time_edges_equal_the_general_parse(s):
    got = _outcome(_ns, P, "line 1", s, "started_at", True)
    want = _outcome(_general_ns, s)
    assert got[0] == want[0], (s, got, want)
    if want[0] == "ok":
        assert got[1] == want[1], s


@pytest.mark.parametrize("line", [
    b'{"a": 1}\n', b'[1, 2]\r\n', b'{"x": "\xc3\xa9"}', b'{"x": "\xed\xa0\x80"}', b'{"s": "\\ud800"}',
    b'{"x": 1} junk', b'{"x": "\xff"}', b'{', b'{"a": NaN}', b'  {"a": 1}', b'\xef\xbb\xbf{"a": 1}',
    '{"a": 1}'.encode("utf-16-le"), b"[", b"{}",
])
def test_json_lines_decode_as_json_loads(line):
    try:
        want = ("ok", json.loads(line))
    except ValueError:
        want = ("error", None)
    try:
        got = ("ok", json_line(P, 3, line))
    except IngestError as e:
        assert "line 3" in str(e) and "spans.jsonl" in str(e)  # names the file and the line
        got = ("error", None)
    assert got[0] == want[0], line
    if want[0] == "ok":
        assert got[1] == want[1] and type(got[1]) is type(want[1]), line


class _Thing:
    def __str__(self) -> str:
        return "a thing"


@pytest.mark.parametrize("value", [
    {"line": 5}, {"line": 5, "final": True}, {"span": "agent", "model": "gpt-4o-mini"},
    {"f": 1.5, "nan": float("nan"), "inf": float("-inf"), "big": 10 ** 30, "none": None},
    {1: "int key", True: "bool key", None: "none key", 2.5: "float key"},
    {"text": "é \u2028 \" \\ \n \x00 \ud800 \U0001F600"}, [1, [2, {"x": _Thing()}]], {"t": (1, 2)},
    {"set": {3}}, {"o": _Thing()}, {}, [], "plain é", 7, None, {"tool_calls": ["a", None]},
])
def test_attribute_json_equals_json_dumps(value):
    want = json.dumps(value, ensure_ascii=False, default=str)
    assert _JSON(value) == want
    if isinstance(value, dict) and value:
        memo: dict = {}
        assert _attrs(value, memo) == want
        assert _attrs(dict(value), memo) == want  # a second, equal dict: from the memo if text


def test_equal_but_different_attribute_values_are_not_confused():
    # 1 == True and hash alike: a memo keyed on values alone would give one the other's JSON
    memo: dict = {}
    assert _attrs({"x": 1}, memo) == '{"x": 1}'
    assert _attrs({"x": True}, memo) == '{"x": true}'
    assert _attrs({"x": "1"}, memo) == '{"x": "1"}'
    assert _attrs({"x": 1.0}, memo) == '{"x": 1.0}'


def _records(fn, path: Path):
    """All (index, record)s, or the error (its text: file, line and message) where it stops."""
    out: list = []
    try:
        for i, rec in fn(path):
            out.append((i, rec))
    except IngestError as e:
        return out, str(e)
    return out, None


# one JSON Lines file per case, as bytes: every edge where reading the file whole and
# splitting it on newlines could part from reading it line by line
_FILES = {
    "plain": b'{"a": 1}\n[1, 2]\n',
    "no newline at the end": b'{"a": 1}\n{"b": 2}',
    "crlf": b'{"a": 1}\r\n{"b": 2}\r\n',
    "bom": b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n',
    "bom on line 2": b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n',
    "blank and white lines": b'\n{"a": 1}\n   \n\t\x0b\x0c\r\n{"b": 2}\n\n',
    "unicode space only": '{"a": 1}\n\u00a0\n{"b": 2}\n'.encode(),
    "leading space": b'  {"a": 1}\n{"b": 2}\n',
    "string records": b'"AgentAction(thought=\'x\')"\n"y"\n',
    "numbers": b'1\n2.5\n',
    "trailing white space": b'{"a": 1}  \t\r\n{"b": 2}\n',
    "extra data": b'{"a": 1}\n{"b": 2} {"c": 3}\n',
    "cut last line": b'{"a": 1}\n{"b": 2\n',
    "bad first line": b'{"a": \n{"b": 2}\n',
    "nan": b'{"a": NaN}\n',
    "surrogates": b'{"s": "\\ud800"}\n{"x": "\xed\xa0\x80"}\n',
    "not utf-8": b'{"a": 1}\n{"x": "\xff"}\n',
    "nul": b'{\x00}\n',
    "utf-16": '{"a": 1}\n'.encode("utf-16-le"),
    "non-ascii": '{"x": "é \u2028 \U0001F600"}\n'.encode(),
    "unicode line separators": '{"a": "x\u2028y"}\u2028\n{"b": 1}\n'.encode(),
    "form feed inside": b'{"a":\x0c1}\n',
    "deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(_FILES))
def test_whole_file_json_lines_equal_line_by_line(name, tmp_path):
    from mast.ingest._util import iter_jsonl, jsonl_records
    path = tmp_path / "steps.jsonl"
    path.write_bytes(_FILES[name])
    want = _records(iter_jsonl, path)
    got = _records(jsonl_records, path)
    assert got == want, name
    for (_, a), (_, b) in zip(got[0], want[0]):
        assert type(a) is type(b)


def test_whole_file_json_lines_over_the_record_cap_keep_the_line_error(tmp_path):
    from mast.ingest._util import iter_jsonl, jsonl_records, limits
    path = tmp_path / "steps.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"x" * 3000 + b'"}\n')
    with limits(2000):  # smaller than the file: the line-by-line route, and its error
        want, got = _records(iter_jsonl, path), _records(jsonl_records, path)
    assert want[1] is not None and "line 2" in want[1]
    assert got == want


@pytest.mark.parametrize("fmt,good,bad", [
    ("openai-agents", b'{"object": "trace", "id": "trace_1", "workflow_name": "w"}\n',
     b'{"object": "trace.span", "id": "span_1", "trace_id": "trace_1", "started_at": "yesterday", "span_data": {}}\n'),
    ("crewai-steps", b'{"type": "AgentFinish", "thought": "t", "output": "o", "text": "x"}\n',
     b'{"type": "AgentFinish", "thought": "t", "output": "o", "text": "x", "extra": 1}\n'),
])
def test_collection_paused_for_a_parse_is_back_after_its_error(fmt, good, bad, tmp_path):
    """The importers pause cyclic collection while they build a file's spans or steps: a
    record that fails half-way must not leave it off for the rest of the process."""
    import gc

    from mast import ingest as registry
    path = tmp_path / "run.jsonl"
    path.write_bytes(good + bad)
    assert gc.isenabled()
    with pytest.raises(IngestError, match="line 2"):
        list(registry.get(fmt).read(path))
    assert gc.isenabled()
    gc.disable()  # an ingest that paused it itself (the collector does) keeps it paused
    try:
        with pytest.raises(IngestError, match="line 2"):
            list(registry.get(fmt).read(path))
        assert not gc.isenabled()
    finally:
        gc.enable()



def test_an_ingest_sets_the_collector_for_its_run_and_puts_it_back(tmp_path):
    """During an ingest the young generation's threshold is raised and what was alive
    before is frozen out of collection (seen from a write hook); after it, also after
    a file that fails, both are as they were, and the frozen objects are collectable."""
    import gc

    from mast.ingest._util import INGEST_GC_GEN0
    from mast.ingest.pipeline import ingest_paths
    from mast.store import Store

    seen = []

    class Probe:
        tables: tuple = ()

        def on_write(self, store, batch):
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))

    good = tmp_path / "good" / "run.json"
    good.parent.mkdir()
    good.write_text(json.dumps([{"role": "user", "name": "u", "content": "task"},
                                {"role": "assistant", "name": "a", "content": "done"}]))
    bad = tmp_path / "bad" / "run.json"
    bad.parent.mkdir()
    bad.write_text('[{"role": "user", "content": ')
    before = gc.get_threshold()
    with Store(tmp_path / "s.duckdb") as store:
        s = ingest_paths(store, [good], hooks=[Probe()])
        assert not any(f.error for f in s.files)
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        s = ingest_paths(store, [bad], keep_going=True)
        assert s.files[0].error is not None
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert seen and all(t == INGEST_GC_GEN0 and frozen > 0 for t, frozen in seen), seen


# -- the OTel readers' per-span shortcuts (OTLP attributes, trace ids, times; the SDK's ISO times)

_ATTR_LISTS = [
    [],
    [{"key": "a", "value": {"stringValue": "x"}}, {"key": "b", "value": {"intValue": "3"}}],
    [{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}],  # two fields set: the first one wins
    [{"key": "a", "value": {"intValue": "1", "stringValue": "x"}}],
    [{"key": "a", "value": {}}, {"key": "b", "value": None}, {"key": "c"}],  # empty, null and no AnyValue
    [{"key": "a", "value": "has stringValue in it"}, {"key": "b", "value": ["stringValue"]}],  # not AnyValues
    [{"key": "a", "value": 3}, {"key": "b", "value": [1, 2]}],
    [{"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "p"}, {"intValue": 2}]}}},
     {"key": "b", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}}],
    [{"key": "a", "value": {"stringValue": "1"}}, {"key": "a", "value": {"stringValue": "2"}}],  # repeated key
    [{"key": "a", "value": {"intValue": "x"}}],  # not a number: the error
    [{"key": "a", "value": {"weirdValue": 1}}],  # a newer type: the error
    [{"value": {"stringValue": "x"}}],  # no key: the error
    ["key"], [["key", "value"]], [None],  # no attribute objects: the error
]


@pytest.mark.parametrize("attrs", _ATTR_LISTS, ids=range(len(_ATTR_LISTS)))
def test_otlp_attributes_equal_the_general_loop(attrs):
    from mast.ingest.formats.otel.spans import _attrs as otlp_attrs, _attrs_general

    def run(fn):
        try:
            return "ok", list(fn(P, "line 1", attrs).items())  # (order too)
        except IngestError as e:
            return "error", str(e)
    assert run(otlp_attrs) == run(_attrs_general)


_OTLP_TIMES = ["1796135013174307182", "0", "00", "", None, 0, 1796135013174307182, 1.5e18, "１２３", "12a",
               "2026-12-01T14:10:41.938490+00:00"]


@pytest.mark.parametrize("t", _OTLP_TIMES, ids=range(len(_OTLP_TIMES)))
def test_otlp_span_times_and_ids_equal_the_general_parse(t):
    """A span read with the shortcuts (decimal times, a trace id validated once per file)
    has the times and ids the general helpers give, or the same error."""
    from mast.ingest.formats.otel.spans import _id, _otlp_span
    raw = {"traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "B7AD6B7169203331", "name": "s",
           "startTimeUnixNano": t, "endTimeUnixNano": t}

    def run(fn):
        try:
            return "ok", fn()
        except IngestError as e:
            return "error", str(e)

    def general():
        tid = _id(P, "w", raw["traceId"], "traceId")
        sid = _id(P, "w", raw["spanId"], "spanId")
        return (tid, sid, _ns(P, "w", t, "startTimeUnixNano", False) or 0, _ns(P, "w", t, "endTimeUnixNano", False))
    for _ in range(2):  # the second time, the trace id comes from the cache
        got = run(lambda: (lambda s: (s.trace_id, s.span_id, s.start_ns, s.end_ns))(_otlp_span(P, "w", raw, {}, None)))
        assert got == run(general)


_SDK_TIMES = ["2026-12-01T14:10:41.938490+00:00", "1969-12-31T23:59:59.500000+00:00", "2026-02-30T14:10:41.938490+00:00",
              "2026-W48-1T14:10:41.938490+00:00", "2026-12-01 14:10:41.938490+00:00", "2026-12-01T14:10:41.9384９0+00:00",
              "2026-12-01T14:10:4１.938490+00:00", "2026-12-01T14:10:41.938490+01:00", "2026-12-01T14:10:41Z", None, ""]


@pytest.mark.parametrize("t", _SDK_TIMES, ids=range(len(_SDK_TIMES)))
def test_sdk_iso_times_equal_the_general_parse(t):
    """The OpenAI Agents reader's ISO times (their second looked up by its text) equal _ns's."""
    from mast.ingest.formats.otel.openai_agents import _time
    for _ in range(2):  # the second time, a second already seen comes from the cache
        assert _outcome(_time, P, "w", t, "started_at", True) == _outcome(_ns, P, "w", t, "started_at", True)

"""Render a stored trace as compact, step-numbered text for an LLM judge.

Contract:
- Every step is one block headed ``[N] agent kind(tool) -> target:`` where ``N`` is the
  store's 0-based step number, the same number evidence refers to everywhere in mast.
- Nothing is dropped silently.  Three reductions exist and each leaves a marker in the
  text the model reads:
  1. a step whose agent, kind and content equal an earlier step's is rendered as
     ``(exact repeat of step 17)``;
  2. a line of at least ``min_repeat_line`` characters that already appeared earlier in
     the trace is collapsed with the lines around it into
     ``[... 12 lines repeated from earlier in the trace ...]``;
  3. a step longer than ``max_step_chars`` (a huge tool output) keeps its head and tail
     around ``[... 48,211 chars of step 7 elided ...]``.  The only exception is a
     trace's *only* step (an unsplit whole-run log): capping it would hide the whole
     trace, so it is cut into parts and judged in windows instead; single lines longer
     than ``max_line_chars`` are still capped.
- The lean rendering (``split_escaped``, ``drop_blank``, ``absorb_short``; prompt folders
  whose ``meta.json`` says ``"render": "lean"``) goes further without eliding anything: a
  long line of escaped newlines (a dict or JSON repr of code) is shown as the lines it
  encodes, whitespace-only lines are dropped, and a short line seen before joins an
  adjacent run of repeated lines (every line in a run was seen earlier, so the marker stays
  true), and its markers are short (``(= step 17)``, ``[... 12 repeated lines ...]``).
  With ``coverage_floor`` it then cuts the middles of the longest steps, all to one common
  length, as far as the trace's coverage stays at or above the floor (never below
  ``floor_keep_chars`` of a step).  Steps passed as ``keep`` (what other classifiers point
  to) and their neighbours are never capped, by either cap.
- When the rendered trace is larger than ``window_chars`` it is cut into windows of
  whole segments that overlap by ``overlap_chars`` worth of segments; every segment is
  in at least one window.
- :class:`Coverage` says how much of the trace the judge saw: characters shown
  verbatim or as an exact-repeat reference, characters elided, windows.
- All text goes through :func:`mast.redact.redact` before it is placed in a prompt.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from mast.model import Step, StepKind
from mast.redact import redact


@dataclass(frozen=True)
class RenderOptions:
    max_step_chars: int = 8_000
    head_chars: int = 5_000
    max_line_chars: int = 4_000
    min_repeat_line: int = 40
    part_chars: int = 8_000        # size of the parts an unsplit log is cut into
    window_chars: int = 200_000    # ~50k tokens of trace text per request
    overlap_chars: int = 8_000
    # The lean rendering (prompt folders whose meta.json says "render": "lean"):
    split_escaped: bool = False    # a long line holding escaped newlines (a dict or JSON repr of
                                   # code) is shown as the lines it encodes, so repeats of them collapse
    drop_blank: bool = False       # whitespace-only lines carry nothing the judge can cite
    absorb_short: bool = False     # short lines seen before, inside a run of repeated lines, join the run
    short_markers: bool = False    # "(= step 17)" and "[... 12 repeated lines ...]": the same facts, fewer tokens
    coverage_floor: float = 0.0    # > 0: cap the longest steps not kept (middles elided) as far as the
                                   # trace's coverage stays at or above this share of its text
    floor_keep_chars: int = 600      # ... never below this many characters of a step


@dataclass
class Segment:
    step: int
    text: str


@dataclass
class Coverage:
    steps: int = 0
    chars_total: int = 0
    chars_shown: int = 0           # verbatim in some window
    chars_repeat_refs: int = 0     # replaced by an exact-repeat reference the model can follow
    chars_elided: int = 0          # cut by a cap: the model never saw them
    repeated_steps: int = 0
    repeated_lines: int = 0
    capped_steps: int = 0
    windows: int = 1

    @property
    def fraction(self) -> float:
        """Share of the trace text the judge saw (verbatim or as an exact-repeat reference)."""
        if not self.chars_total:
            return 1.0
        return max(0.0, 1.0 - self.chars_elided / self.chars_total)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fraction": round(self.fraction, 4)}


@dataclass
class Rendered:
    """A trace ready for prompting: windows of text plus what they cover."""

    windows: list[str]
    window_steps: list[tuple[int, int]]   # (first, last) step number shown in each window
    n_steps: int
    agents: list[str]
    task: str | None
    coverage: Coverage = field(default_factory=Coverage)


def _kind(s: Step) -> str | None:
    return s.kind.value if isinstance(s.kind, StepKind) else s.kind


def _header(i: int, s: Step) -> str:
    # Names are redacted too: an agent or tool may be named after a key.
    agent = redact(s.agent) or "?"
    kind = _kind(s) or "message"
    tool = f"({redact(s.tool_name)})" if s.tool_name else ""
    target = f" -> {redact(s.target_agent)}" if s.target_agent else ""
    status = f" [{redact(s.status)}]" if s.status and s.status not in ("ok", "OK") else ""
    return f"[{i}] {agent} {kind}{tool}{target}{status}:"


def _cap_line(line: str, cap: int) -> tuple[str, int]:
    if len(line) <= cap:
        return line, 0
    head = cap * 2 // 3
    tail = cap - head
    cut = len(line) - head - tail
    return f"{line[:head]} [... {cut:,} chars of this line elided ...] {line[-tail:]}", cut


def render_trace(steps: Sequence[Step], task: str | None = None,
                 opts: RenderOptions = RenderOptions(), keep: Iterable[int] = ()) -> Rendered:
    """``steps``: a trace's steps in order; a step's position is its step number (as in
    :meth:`mast.store.Store.load_traces`).  ``keep``: steps other classifiers point to;
    they and their neighbours are never capped to ``max_step_chars`` (long lines still are)."""
    keep_near = {k + d for k in keep for d in (-1, 0, 1)}
    cov = Coverage(steps=len(steps))
    seen_steps: dict[tuple, int] = {}
    seen = _Seen()
    pieces: list[_Piece] = []
    segments: list[Segment] = []
    agents: list[str] = []
    only_step = len(steps) == 1
    for i, s in enumerate(steps):
        agent = redact(s.agent)
        if agent and agent not in agents:
            agents.append(agent)
        body = s.content or ""
        if s.tool_args:
            body = f"args: {s.tool_args}\n{body}" if body else f"args: {s.tool_args}"
        body = redact(body) or ""
        cov.chars_total += len(body)
        head = _header(i, s)
        key = (agent, _kind(s), s.tool_name, body)
        if body and key in seen_steps:
            cov.repeated_steps += 1
            cov.chars_repeat_refs += len(body)
            ref = f"(= step {seen_steps[key]})" if opts.short_markers else f"(exact repeat of step {seen_steps[key]})"
            pieces.append(_Piece(i, f"{head} {ref}", None, False))
            continue
        if body:
            seen_steps[key] = i
        out_lines = _collapse_lines(body, opts, seen, cov)
        text = "\n".join(out_lines)
        if len(text) > opts.max_step_chars and not only_step and i not in keep_near:
            tail = opts.max_step_chars - opts.head_chars
            cut = len(text) - opts.head_chars - tail
            text = (f"{text[:opts.head_chars]}\n[... {cut:,} chars of step {i} elided ...]\n"
                    f"{text[len(text) - tail:]}")
            cov.chars_elided += cut
            cov.capped_steps += 1
        pieces.append(_Piece(i, head, text, not only_step and i not in keep_near))
    if opts.coverage_floor > 0:
        _cap_to_floor(pieces, cov, opts)
    for pc in pieces:
        i, head, text = pc.step, pc.head, pc.text
        if text is None:
            segments.append(Segment(i, head))
        elif len(text) > opts.part_chars:
            # An unsplit log: cut on line boundaries into parts so windows can split it.
            parts = _split_lines(text, opts.part_chars)
            for k, p in enumerate(parts, 1):
                segments.append(Segment(i, f"{head} (part {k}/{len(parts)})\n{p}"))
        else:
            segments.append(Segment(i, f"{head} {text}" if "\n" not in text and len(text) < 200 else f"{head}\n{text}"))
    cov.chars_shown = max(0, cov.chars_total - cov.chars_elided - cov.chars_repeat_refs)
    windows, bounds = _windows(segments, opts)
    cov.windows = len(windows)
    return Rendered(windows, bounds, len(steps), agents, redact(task), cov)


@dataclass
class _Piece:
    step: int
    head: str
    text: str | None      # None: the head says it all (an exact repeat)
    cappable: bool        # not the only step, not a step other classifiers point to (or beside one)


def _cap_to_floor(pieces: list[_Piece], cov: Coverage, opts: RenderOptions) -> None:
    """Elide the middles of the longest cappable steps, all down to one common length, the
    shortest length that keeps the trace's coverage at or above ``coverage_floor`` (and
    never below ``floor_keep_chars``): the few huge tool outputs and code dumps give way
    first, and no step other classifiers point to is touched."""
    budget = int(cov.chars_total * (1.0 - opts.coverage_floor)) - cov.chars_elided
    lengths = [len(p.text) for p in pieces if p.cappable and p.text is not None]
    if budget <= 0 or not lengths or max(lengths) <= opts.floor_keep_chars:
        return

    def cut_at(level: int) -> int:
        return sum(n - level for n in lengths if n > level)

    lo, hi = opts.floor_keep_chars, max(lengths)     # cut_at(hi) == 0 <= budget
    while lo < hi:
        mid = (lo + hi) // 2
        if cut_at(mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    level = lo
    for p in pieces:
        if not p.cappable or p.text is None or len(p.text) - level < 200:   # not worth a marker
            continue
        head = level * 2 // 3
        tail = level - head
        cut = len(p.text) - head - tail
        p.text = f"{p.text[:head]}\n[... {cut:,} chars of step {p.step} elided ...]\n{p.text[len(p.text) - tail:]}"
        cov.chars_elided += cut
        cov.capped_steps += 1


@dataclass
class _Seen:
    long: set[str] = field(default_factory=set)     # lines of >= min_repeat_line chars (stripped)
    short: set[str] = field(default_factory=set)    # shorter ones (lean rendering only)


def _collapse_lines(body: str, opts: RenderOptions, seen: _Seen, cov: Coverage) -> list[str]:
    """Collapse lines already seen anywhere earlier in the trace into one marker per run.

    A short line (braces, "TERMINATE", a blank line) never starts a run, since repeating it
    costs little; with ``absorb_short`` a short line seen before that stands between, before
    or after repeated lines joins their run (every line in the run was seen earlier, so the
    marker stays true)."""
    out: list[str] = []
    run = run_chars = 0
    pending: list[str] = []     # short seen lines that may join a run starting next

    def flush_run() -> None:
        nonlocal run, run_chars
        if run:
            out.append(f"[... {run} repeated line{'s' if run > 1 else ''} ...]" if opts.short_markers else
                       f"[... {run} line{'s' if run > 1 else ''} repeated from earlier in the trace ...]")
            cov.repeated_lines += run
            cov.chars_repeat_refs += run_chars
            run = run_chars = 0

    def emit(line: str) -> None:
        capped, cut = _cap_line(line, opts.max_line_chars)
        cov.chars_elided += cut
        out.append(capped)

    for line in _lines(body, opts):
        stripped = line.strip()
        if opts.drop_blank and not stripped:
            continue
        if len(stripped) >= opts.min_repeat_line:
            if stripped in seen.long:
                run += len(pending) + 1
                run_chars += sum(len(p) + 1 for p in pending) + len(line) + 1
                pending.clear()
                continue
            seen.long.add(stripped)
        elif opts.absorb_short and stripped in seen.short:
            if run:
                run += 1
                run_chars += len(line) + 1
            else:
                pending.append(line)
            continue
        elif opts.absorb_short:
            seen.short.add(stripped)
        flush_run()
        for p in pending:
            emit(p)
        pending.clear()
        emit(line)
    flush_run()
    for p in pending:
        emit(p)
    return out


_ESCAPED_NL = re.compile(r"(?<!\\)\\n")


def _lines(body: str, opts: RenderOptions) -> list[str]:
    lines = body.split("\n")
    if not opts.split_escaped:
        return lines
    out: list[str] = []
    for line in lines:
        if len(line) > 200 and len(_ESCAPED_NL.findall(line)) >= 3:
            out.extend(_ESCAPED_NL.split(line))
        else:
            out.append(line)
    return out


def _split_lines(text: str, size: int) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    n = 0
    for line in text.split("\n"):
        if n + len(line) + 1 > size and cur:
            parts.append("\n".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += len(line) + 1
    if cur:
        parts.append("\n".join(cur))
    return parts


def _windows(segments: list[Segment], opts: RenderOptions) -> tuple[list[str], list[tuple[int, int]]]:
    if not segments:
        return ["(the trace has no steps)"], [(0, -1)]
    total = sum(len(s.text) + 1 for s in segments)
    if total <= opts.window_chars:
        return ["\n".join(s.text for s in segments)], [(segments[0].step, segments[-1].step)]
    windows: list[str] = []
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(segments):
        end = start
        size = 0
        while end < len(segments) and (end == start or size + len(segments[end].text) + 1 <= opts.window_chars):
            size += len(segments[end].text) + 1
            end += 1
        chunk = segments[start:end]
        note = (f"(window {len(windows) + 1}: steps {chunk[0].step}-{chunk[-1].step} of a longer trace; "
                "other windows are judged separately)")
        windows.append(note + "\n" + "\n".join(s.text for s in chunk))
        bounds.append((chunk[0].step, chunk[-1].step))
        if end >= len(segments):
            break
        # Step back so consecutive windows share about overlap_chars of segments.
        back = end
        ov = 0
        while back - 1 > start + 1 and ov + len(segments[back - 1].text) <= opts.overlap_chars:
            back -= 1
            ov += len(segments[back].text)
        start = back if back > start else end
    return windows, bounds

"""`mast compare` and `mast check`: two selections side by side, and CI gates."""

from __future__ import annotations

import sys

import click

from mast.cli._render import err, out, print_error, print_json, read_db, table
from mast.cli.options import json_option, taxonomy_option

_SEL_HELP = ("Selection: key=value terms joined by commas (system, version, since, until, run, annotator; "
             "a key twice means either), e.g. system=crew-v1,since=2026-11-01; `all` is every trace.")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _topo(counts) -> str:
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items()) or "-"


def _num(x, fmt: str = "{:.4g}") -> str:
    return "-" if x is None else fmt.format(x)


@click.command()
@click.option("--baseline", required=True, metavar="SEL", help=_SEL_HELP)
@click.option("--candidate", required=True, metavar="SEL", help="Selection to compare with the baseline (same syntax).")
@taxonomy_option
@json_option
@click.pass_obj
def compare(settings, baseline, candidate, taxonomy_id, as_json):
    """Per-mode exposure of two selections, the difference with its 95% interval
    (Newcombe) and Fisher's exact p, and the coordination figures of each."""
    from mast.compare import compare as run_compare
    from mast.compare import parse_selection
    from mast.store import Store

    base, cand = parse_selection(baseline), parse_selection(candidate)
    with Store(read_db(settings), read_only=True) as store:
        comp = run_compare(store, base, cand, taxonomy_id)
    if as_json:
        print_json(comp.as_dict())
        return
    rows = []
    blank = [d.mode for d in comp.modes if not d.baseline.n and not d.candidate.n]
    for d in [*(d for d in comp.modes if d.mode not in blank), comp.any_mode]:
        b, c = d.baseline, d.candidate
        rows.append({"mode": d.mode, "name": d.name,
                     "baseline": f"{_pct(b.rate)} ({b.count}/{b.n})" if b.n else "not assessed",
                     "candidate": f"{_pct(c.rate)} ({c.count}/{c.n})" if c.n else "not assessed",
                     "diff": "-" if d.diff is None else f"{100 * d.diff:+.1f}pp",
                     "95% CI": "-" if d.ci is None else f"{100 * d.ci[0]:+.1f}..{100 * d.ci[1]:+.1f}",
                     "Fisher p": _num(d.p, "{:.3g}"), "": "rises" if d.rises else ""})
    out.print(table(rows, ["mode", "name", "baseline", "candidate", "diff", "95% CI", "Fisher p", ""],
                    title=f"{comp.taxonomy}: exposure, baseline {base.text!r} vs candidate {cand.text!r}",
                    justify_right=["baseline", "candidate", "diff", "95% CI", "Fisher p"]))
    if blank:
        out.print(f"not assessed in either selection: {', '.join(blank)}", highlight=False, markup=False)
    fb, fc = comp.baseline.figures, comp.candidate.figures
    figs = [("traces", fb.traces, fc.traces, "{:d}"), ("steps per trace", fb.steps_per_trace, fc.steps_per_trace, "{:.1f}"),
            ("tokens per trace", fb.tokens_per_trace, fc.tokens_per_trace, "{:.0f}"),
            ("cost per trace (USD)", fb.cost_per_trace, fc.cost_per_trace, "{:.4f}"),
            ("message share", fb.message_share, fc.message_share, None),
            ("solved / outcome known", f"{fb.solved}/{fb.outcome_known}", f"{fc.solved}/{fc.outcome_known}", "{}"),
            ("cost per solved task (USD)", fb.cost_per_solved_task, fc.cost_per_solved_task, "{:.4f}"),
            ("traces with timing", fb.timed_traces, fc.timed_traces, "{:d}"),
            ("mean concurrency", fb.concurrency, fc.concurrency, "{:.2f}"),
            ("mean serial fraction", fb.serial_fraction, fc.serial_fraction, "{:.2f}"),
            ("coordination token share", fb.coordination_token_share, fc.coordination_token_share, None),
            ("topologies", _topo(fb.topologies), _topo(fc.topologies), "{}")]
    out.print(table([{"figure": n, "baseline": _pct(b) if f is None else _num(b, f),
                      "candidate": _pct(c) if f is None else _num(c, f)} for n, b, c, f in figs],
                    ["figure", "baseline", "candidate"], title="coordination figures",
                    justify_right=["baseline", "candidate"]))


@click.command()
@click.option("--fail-on", "expressions", multiple=True, required=True, metavar="EXPR",
              help="A gate (repeatable): 'MODE > 10%', 'exposure > 30%', 'any mode > 20%', 'any mode rises', "
                   "'MODE rises' (need --baseline), 'cost per task > 0.50', 'cost per solved task > 1', "
                   "'tokens per task > N', 'steps per task > N', 'message share > 60%', 'coordination token share > 40%', "
                   "'serial fraction > 0.8'.")
@click.option("--candidate", default="all", show_default=True, metavar="SEL", help=_SEL_HELP)
@click.option("--baseline", default=None, metavar="SEL", help="Selection the 'rises' gates compare with.")
@taxonomy_option
@json_option
@click.pass_context
def check(ctx, expressions, candidate, baseline, taxonomy_id, as_json):
    """Exit 1 when a gate is breached (one line per breach on stderr), 0 with one OK line
    otherwise; 2 when an expression cannot be read. A gate that cannot be checked (a
    figure not recorded, a mode nobody assessed) counts as breached."""
    from mast.compare import GateError, SelectionError, parse_gate, parse_selection
    from mast.compare import check as run_check
    from mast.store import Store

    settings = ctx.obj
    try:
        gates = [parse_gate(e, taxonomy_id) for e in expressions]
        cand = parse_selection(candidate)
        base = parse_selection(baseline) if baseline is not None else None
        with Store(read_db(settings), read_only=True) as store:
            results = run_check(store, gates, cand, taxonomy_id, base)
    except (GateError, SelectionError) as e:
        print_error(e)
        ctx.exit(2)
    breaches = [r for r in results if r.breached]
    if as_json:
        print_json({"ok": not breaches, "candidate": cand.text, "baseline": base.text if base else None,
                    "taxonomy": taxonomy_id, "gates": [r.as_dict() for r in results]})
    for r in breaches:
        err.print(f"FAIL {r.reason}", markup=False, highlight=False, soft_wrap=True)
    if breaches:
        ctx.exit(1)
    if not as_json:
        sys.stdout.write(f"OK: {len(results)} gate(s) hold on {cand.text!r}\n")

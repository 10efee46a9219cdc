"""`mast evaluate`: agreement of one annotator with another (labels or root causes)."""

from __future__ import annotations

import click

from mast.cli._render import out, print_json, read_db, table
from mast.cli.options import json_option, systems_option, taxonomy_option


def _f(x, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


@click.command()
@click.option("--gold", default="human", show_default=True, help="Reference annotator (e.g. human, community:mast-lint).")
@click.option("--pred", default="rules", show_default=True, help="Annotator to score (e.g. rules, judge).")
@systems_option
@taxonomy_option
@click.option("--attribution", is_flag=True, help="Score root causes (agent, step) instead of mode labels.")
@click.option("--tolerance", "-k", type=click.IntRange(min=0), default=1, show_default=True,
              help="Attribution: a step within +/-k counts for the tolerant step accuracy.")
@click.option("--by", "group_by", default="subset", show_default=True,
              help="Attribution: group by this metadata field, or 'system'.")
@click.option("--calibration", is_flag=True,
              help="Also print the reliability of pred's confidences against gold (binned confidence vs observed "
                   "frequency, n per bin, Brier score, ECE); always in --json.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Resamples of the shared traces for the 95% intervals of kappa and F1 (0: none).")
@json_option
@click.pass_obj
def evaluate(obj, gold, pred, systems, taxonomy_id, attribution, tolerance, group_by, calibration, bootstrap,
             as_json):
    """Precision, recall, F1 and Cohen's kappa per mode; or root-cause accuracy.

    Every figure is printed beside its baselines on the same traces: for modes, always
    present, always absent and random at the gold base rate (expected values); for root
    causes, uniform random, majority agent per system, last step and first error step."""
    from mast.evaluate import agreement, attribution_agreement
    from mast.store import Store

    with Store(read_db(obj), read_only=True) as store:
        if attribution:
            res = attribution_agreement(store, gold, pred, tolerance=tolerance, group_by=group_by)
        else:
            res = agreement(store, gold, pred, taxonomy=taxonomy_id, systems=systems, bootstrap=bootstrap)
    if as_json:
        print_json(res.to_dict())
        return
    if attribution:
        _attribution_tables(res, pred, tolerance, group_by)
    else:
        _label_table(res, pred, systems)
    if pred.startswith("learned:"):
        out.print("[dim]a learned model scored on the traces it was trained on is scored in-sample: its held-out "
                  "figures are the cross-validated ones stored with the model (`mast learn ... --json`)[/dim]")
    if calibration:
        _calibration_tables(res, pred, gold, attribution)


_BASE_NAMES = {"always_present": "always +", "always_absent": "always -", "random": "random", "uniform_random": "uniform random", "majority_agent": "majority agent",
               "last_step": "last step", "first_error_step": "first error step"}


def _ci(ci) -> str:
    return "-" if not ci else f"{ci[0]:.2f}–{ci[1]:.2f}"


def _label_table(res, pred, systems) -> None:
    rows = []
    for s in res.modes:
        if not s.assessed:
            rows.append({"mode": s.mode, "who": "not assessed"})
            continue
        rows.append({"mode": s.mode, "who": "pred", "n": s.traces, "gold+": s.support, "pred+": s.predicted,
                     "P": _f(s.precision), "R": _f(s.recall), "F1": _f(s.f1), "kappa": _f(s.kappa)})
        rows += [_base_row(b, m) for b, m in s.baselines.items()]
    rows.append({"mode": "macro", "who": "pred", "P": _f(res.macro["precision"]), "R": _f(res.macro["recall"]),
                 "F1": _f(res.macro["f1"]), "kappa": _f(res.macro["kappa"])})
    rows += [_base_row(b, m) for b, m in res.macro_baselines.items()]
    cols = ["mode", "who", "n", "gold+", "pred+", "P", "R", "F1", "kappa"]
    out.print(table(rows, cols, title=f"pred {res.pred} vs gold {res.gold}: {res.traces} trace(s) labelled by both"
                    + (f", system {', '.join(systems)}" if systems else ""), justify_right=cols[2:]))
    out.print("[dim]baselines on the same traces: always present (+), always absent (-), random = labels drawn "
              "present at the gold base rate (expected values: P = R = F1 = base rate, kappa 0)[/dim]")
    if res.bootstrap:
        rows = [{"mode": s.mode, "n": s.traces, "kappa": _f(s.kappa), "kappa 95%": _ci(s.kappa_ci), "F1": _f(s.f1),
                 "F1 95%": _ci(s.f1_ci)} for s in res.modes if s.assessed]
        rows.append({"mode": "macro", "kappa": _f(res.macro["kappa"]), "kappa 95%": _ci(res.macro_ci.get("kappa")),
                     "F1": _f(res.macro["f1"]), "F1 95%": _ci(res.macro_ci.get("f1"))})
        cols = ["mode", "n", "kappa", "kappa 95%", "F1", "F1 95%"]
        out.print(table(rows, cols, title=f"95% intervals: {res.bootstrap} bootstrap resamples of the shared traces",
                        justify_right=cols[1:]))
        out.print("[dim]a resample cannot show an error the traces do not hold: with no disagreement on few traces "
                  "the interval is 1.00–1.00 (see n)[/dim]")


def _base_row(name: str, m: dict) -> dict:
    return {"mode": "", "who": f"  {_BASE_NAMES[name]}", "P": _f(m["precision"]), "R": _f(m["recall"]),
            "F1": _f(m["f1"]), "kappa": _f(m["kappa"])}


def _attribution_tables(res, pred, tolerance, group_by) -> None:
    rows = []
    for g in [*res.groups, res.overall]:
        rows.append({"group": g.group, "gold": g.gold_traces, "both": g.both, "coverage": _f(g.coverage, True),
                     "agent acc": _f(g.agent_accuracy, True), "random agent": _f(g.random_agent, True),
                     "step acc": _f(g.step_accuracy, True), "random step": _f(g.random_step, True),
                     f"step ±{tolerance}": _f(g.step_accuracy_within_k, True),
                     f"random ±{tolerance}": _f(g.random_step_within_k, True),
                     "agent acc (all)": _f(g.agent_accuracy_all, True),
                     "step acc (all)": _f(g.step_accuracy_all, True)})
    cols = list(rows[0]) if rows else ["group"]
    out.print(table(rows, cols, title=f"root cause: {pred} vs {res.gold} (by {group_by})", justify_right=cols[1:]))
    out.print("[dim]accuracies on traces both attributed; (all) counts a trace without a prediction as wrong; "
              "random = uniform choice of agent / step per trace[/dim]")
    rows = []
    for g in [*res.groups, res.overall]:
        rows.append({"group": g.group, "who": pred, "agent acc": _f(g.agent_accuracy, True),
                     "step acc": _f(g.step_accuracy, True), "agent acc (all)": _f(g.agent_accuracy_all, True),
                     "step acc (all)": _f(g.step_accuracy_all, True)})
        for b, m in g.baselines.items():
            rows.append({"group": "", "who": "  " + _BASE_NAMES[b], "agent acc": _f(m["agent_accuracy"], True),
                         "step acc": _f(m["step_accuracy"], True), "agent acc (all)": _f(m["agent_accuracy_all"], True),
                         "step acc (all)": _f(m["step_accuracy_all"], True)})
    cols = ["group", "who", "agent acc", "step acc", "agent acc (all)", "step acc (all)"]
    out.print(table(rows, cols, title="beside the baselines (same traces)", justify_right=cols[2:]))
    out.print("[dim]majority agent = the system's most frequent gold culprit over these traces (in-sample, a generous "
              "floor), at its first step; last step; first error step = first step the rules flag as an error "
              "(none: wrong)[/dim]")


def _calibration_tables(res, pred, gold, attribution) -> None:
    if attribution:
        cal = res.overall.calibration
        parts = [("step", cal["step"]), ("agent", cal["agent"])]
        skipped = cal["without_confidence"]
    else:
        parts = [("label", res.calibration["overall"])]
        skipped = res.calibration["without_confidence"]
    for what, rel in parts:
        rows = [{"confidence": f"{b['lo']:.1f}–{b['hi']:.1f}", "n": b["n"], "mean confidence": _f(b["mean_confidence"]),
                 "observed": _f(b["observed"])} for b in rel["bins"]]
        out.print(table(rows, list(rows[0]), justify_right=["n", "mean confidence", "observed"],
                        title=f"reliability of {pred}'s confidence vs {gold}: P({rel['event']}), {rel['n']} label(s)"))
        out.print(f"Brier {_f(rel['brier'])}, expected calibration error {_f(rel['ece'])}"
                  + (f"; {skipped} label(s) without a confidence left out" if skipped else ""), highlight=False)
    if not attribution:
        out.print("[dim]a present label's confidence is read as P(present), an absent label's as 1 - P(present); "
                  "with few labels per bin a point says little (see n)[/dim]")

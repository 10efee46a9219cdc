"""`mast evaluate`: agreement of one annotator with another (labels or root causes)."""

from __future__ import annotations

import click

from mast.cli._render import out, print_json, table
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
@json_option
@click.pass_obj
def evaluate(obj, gold, pred, systems, taxonomy_id, attribution, tolerance, group_by, as_json):
    """Precision, recall, F1 and Cohen's kappa per mode; or root-cause accuracy."""
    from mast.evaluate import agreement, attribution_agreement
    from mast.store import Store

    with Store(obj.db, read_only=True) as store:
        if attribution:
            res = attribution_agreement(store, gold, pred, tolerance=tolerance, group_by=group_by)
        else:
            res = agreement(store, gold, pred, taxonomy=taxonomy_id, systems=systems)
    if as_json:
        print_json(res.to_dict())
        return
    if attribution:
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
        out.print(table(rows, cols, title=f"root cause: {pred} vs {gold} (by {group_by})",
                        justify_right=cols[1:]))
        out.print("[dim]accuracies on traces both attributed; (all) counts a trace without a prediction as wrong; "
                  "random = uniform choice of agent / step per trace[/dim]")
        return
    rows = [{"mode": s.mode, "name": s.name, "n": s.traces if s.assessed else "-", "support": s.support if s.assessed else "-",
             "pred": s.predicted if s.assessed else "-", "precision": _f(s.precision), "recall": _f(s.recall),
             "F1": _f(s.f1), "kappa": _f(s.kappa)} if s.assessed else
            {"mode": s.mode, "name": s.name, "n": "-", "support": "-", "pred": "-", "precision": "not assessed",
             "recall": "", "F1": "", "kappa": ""} for s in res.modes]
    rows.append({"mode": "macro", "name": "(assessed modes)", "precision": _f(res.macro["precision"]),
                 "recall": _f(res.macro["recall"]), "F1": _f(res.macro["f1"]), "kappa": _f(res.macro["kappa"])})
    cols = ["mode", "n", "support", "pred", "precision", "recall", "F1", "kappa"]
    out.print(table(rows, cols, title=f"{pred} vs {gold}: {res.traces} trace(s) labelled by both"
                    + (f", system {', '.join(systems)}" if systems else ""), justify_right=cols[2:]))

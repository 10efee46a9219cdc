"""`mast learn`: train learned classifiers from the labels in the store, with honest
cross-validated figures beside their baselines."""

from __future__ import annotations

import click

from mast.cli._render import err, out, print_json, table
from mast.cli.options import json_option, taxonomy_option


@click.group()
def learn():
    """Train learned classifiers from labels already in the store."""


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _render(figures: dict, title: str) -> None:
    rows = []
    for system, f in figures.items():
        rows.append({"system": system, "method": "learned", "n": f["n"], "agent": _pct(f["agent_accuracy"]),
                     "step": _pct(f["step_accuracy"])})
        for name, b in f["baselines"].items():
            rows.append({"system": "", "method": name, "n": "", "agent": _pct(b["agent_accuracy"]),
                         "step": _pct(b["step_accuracy"])})
    out.print(table(rows, ["system", "method", "n", "agent", "step"], title=title, justify_right=["n", "agent", "step"]))


@learn.command("attribution")
@click.option("--gold", default="human", show_default=True, help="Annotator whose root causes are the labels.")
@click.option("--where", help="SQL condition over the traces table: which labelled traces to train on.")
@click.option("--cv", "k", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (grouped by trace, stratified by system, fixed seed).")
@click.option("--test-where", help="Instead of CV: train on --where, score on these traces (e.g. an unseen "
                                   "system); no model is saved.")
@click.option("--compare", multiple=True, default=("rules",), show_default=True,
              help="Stored annotators scored on the same folds as baselines (if present).")
@taxonomy_option
@json_option
@click.pass_obj
def attribution(settings, gold, where, k, test_where, compare, taxonomy_id, as_json):
    """Train the root-cause (agent, step) model; print CV figures beside the baselines."""
    from mast.classify.learned.model import save
    from mast.classify.learned.train import holdout, learn_attribution
    from mast.store import Store

    with Store(settings.db) as store:
        if test_where:
            res = holdout(store, gold, train_where=where, test_where=test_where, compare=compare)
            if as_json:
                print_json(res)
            else:
                _render(res["test"], f"root cause: trained on {where or 'all'} ({res['train']['traces']} traces), "
                                     f"scored on {test_where}")
            err.print("holdout run: no model saved", highlight=False)
            return
        res = learn_attribution(store, gold, where=where, k=k, compare=compare, taxonomy=taxonomy_id)
        save(store, res.model)
    if as_json:
        print_json(res.as_dict())
        return
    _render(res.cv, f"root cause, {k}-fold nested CV vs {gold} (model {res.model.model_id})")
    err.print(f"saved model {res.model.model_id} (l2 {res.model.hyperparameters['l2']}, agent rule "
              f"{res.model.agent_rule}); apply it with `mast classify --with learned -C model={res.model.model_id}`",
              highlight=False)
    for why, n in res.skipped.items():
        err.print(f"skipped {n} gold root cause(s): {why.replace('_', ' ')}", style="yellow", highlight=False)

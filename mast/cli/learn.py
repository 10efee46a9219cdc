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


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _k(x, ci) -> str:
    return _f(x) + ("" if not ci or ci[0] is None else f" [{ci[0]:.2f},{ci[1]:.2f}]")


def _render_modes(res: dict, title: str) -> None:
    rows = []
    for mode, e in res["modes"].items():
        cv = e.get("cv", {})
        base = e.get("baseline", {})
        rules = base.get("rules")
        rows.append({"mode": mode, "n": e["n"], "support": e["support"], "P": _f(cv.get("precision")),
                     "R": _f(cv.get("recall")), "F1": _f(cv.get("f1")), "κ [95%]": _k(cv.get("kappa"), cv.get("kappa_ci")),
                     "const F1": _f(base["constant"].get("f1")) if "constant" in base else "",
                     "rules κ [95%]": "" if rules is None else "n/a" if rules.get("assessed") is False
                     else _k(rules.get("kappa"), rules.get("kappa_ci")),
                     "saved": "yes" if e["saved"] else "no"})
    mac = res["macro"]
    rows.append({"mode": "macro", "n": "", "support": "", "P": _f(mac["learned"]["precision"]),
                 "R": _f(mac["learned"]["recall"]), "F1": _f(mac["learned"]["f1"]),
                 "κ [95%]": _k(mac["learned"]["kappa"], mac["learned"]["kappa_ci"]), "const F1": "",
                 "rules κ [95%]": _k(mac["rules"]["kappa"], mac["rules"]["kappa_ci"]) if "rules" in mac else "",
                 "saved": ""})
    cols = ["mode", "n", "support", "P", "R", "F1", "κ [95%]", "const F1", "rules κ [95%]", "saved"]
    out.print(table(rows, cols, title=title, justify_right=["n", "support", "P", "R", "F1"]))
    if "rules" in mac and mac["rules"].get("learned_minus_this_kappa_ci"):
        r = mac["rules"]
        out.print(f"on the {len(r['modes'])} modes the rules assess: macro κ learned {_f(r['learned_kappa_same_modes'])}"
                  f", rules {_f(r['kappa'])}; learned − rules 95% {_k(None, r['learned_minus_this_kappa_ci'])[2:]}",
                  highlight=False)


@learn.command("modes")
@click.option("--gold", default="human", show_default=True, help="Annotator whose mode labels are the gold.")
@click.option("--where", help="SQL condition over the traces table: which labelled traces to train on.")
@click.option("--cv", "k", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (grouped as --group says, fixed seed).")
@click.option("--group", default="labels", show_default=True,
              help="What a fold never splits: 'labels' (traces with an identical gold label vector, e.g. a "
                   "label block copied onto several traces), 'trace', or 'meta:FIELD' (a metadata field).")
@click.option("--compare", multiple=True, default=("rules",), show_default=True,
              help="Stored annotators scored on the same traces as baselines (if present).")
@taxonomy_option
@json_option
@click.pass_obj
def modes(settings, gold, where, k, group, compare, taxonomy_id, as_json):
    """Train one model per failure mode; print per-mode CV figures beside the baselines.

    Only the modes whose model beats the constant baseline under CV are saved (one
    stored model holds them all); apply it with `mast classify --with learned-modes`."""
    from mast.classify.learned.modes_model import save
    from mast.classify.learned.modes_train import learn_modes
    from mast.store import Store

    with Store(settings.db) as store:
        res = learn_modes(store, gold, where=where, k=k, group=group, compare=compare, taxonomy=taxonomy_id)
        if res.model is not None:
            save(store, res.model)
    d = res.as_dict()
    if as_json:
        print_json(d)
    else:
        _render_modes(d, f"failure modes, {k}-fold nested CV vs {gold}, folds grouped by {group} "
                         f"({res.training['traces']} traces, {res.training['groups']} groups)")
    for mode, e in res.modes.items():
        err.print(f"{mode}: {'saved' if e['saved'] else 'not saved'}: {e['why']}", highlight=False)
    if res.model is None:
        err.print("no mode beat the constant baseline under CV: no model saved", style="yellow", highlight=False)
    else:
        err.print(f"saved model {res.model.model_id} ({len(res.model.modes)} mode(s)); apply it with "
                  f"`mast classify --with learned-modes -C model={res.model.model_id}`", highlight=False)

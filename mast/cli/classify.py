"""`mast classify` and `mast classifiers`: run any registered classifier over selected
traces (every run is recorded), and list the classifiers with their options.

The command never names a classifier: options reach it as ``-C key=value`` (plus the
shared ``-m/--model``, ``--base-url`` and ``--response-format``), checked against what it declares; its
estimate, summary details and warnings come through the contract."""

from __future__ import annotations

import click

from mast.cli._render import err, print_json, safe, table
from mast.cli.options import (classifier_options, judge_options, json_option, selection_options,
                              taxonomy_option)


@click.command()
@click.option("--with", "name", default="rules", show_default=True,
              help="Classifier to run (see `mast classifiers`).")
@selection_options
@click.option("--action", type=click.Choice(["replace", "append"]), default="replace", show_default=True,
              help="replace: drop this classifier's earlier rows for the traces it classifies, whatever "
                   "version wrote them; append: keep both.")
@taxonomy_option
@judge_options
@classifier_options
@click.option("--estimate", is_flag=True, help="Print what the run would cost (tokens, USD); run nothing.")
@json_option
@click.pass_obj
def classify(settings, name, systems, where, sample, action, taxonomy_id, model, base_url, response_format,
             assignments, estimate, as_json):
    """Tag traces with failure modes and root causes; every run is recorded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mast.classify import create, options_of, parse_assignments
    from mast.classify.runner import Selection, run
    from mast.errors import UsageError
    from mast.store import Store
    from mast.taxonomy import load

    load(taxonomy_id)  # an unknown taxonomy fails before anything runs
    given = {**parse_assignments(assignments), **({"model": model} if model else {}),
             **({"base_url": base_url} if base_url else {}),
             **({"response_format": response_format} if response_format else {})}
    # -t reaches a classifier that takes a taxonomy, so the run row and its labels agree.
    if any(o.name == "taxonomy" for o in options_of(name)):
        if given.setdefault("taxonomy", taxonomy_id) != taxonomy_id:
            raise UsageError(f"-C taxonomy={given['taxonomy']} disagrees with -t {taxonomy_id}",
                             "Give the taxonomy once, with -t.")
    clf = create(name, settings=settings, **given)
    selection = Selection(systems=tuple(systems), where=where, sample=sample)
    with Store(settings.db) as store:
        ids = selection.resolve(store)
        if estimate:
            est = clf.estimate(store, ids)
            if est is None:
                err.print(f"{name}: nothing to estimate (it calls no paid service)", highlight=False)
            elif as_json:
                print_json(est.as_dict())
            else:
                click.echo(est.describe())
            return
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err.console, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task(f"classify --with {name}", total=len(ids))
            tally = {"failed": 0, "cost": 0.0, "stored": 0}

            def on_output(out):
                tally["failed"] += len(out.failed)
                tally["cost"] += out.cost_usd
                n = len(out.trace_ids) or len({a.trace_id for a in out.annotations})
                tally["stored"] += n - len(out.failed)
                progress.update(task, description=f"classify --with {name}: {tally['failed']} failed, "
                                                  f"${tally['cost']:.4f}")
                progress.advance(task, n)

            if hasattr(clf, "on_progress"):   # a classifier that waits on a service says so while it waits
                clf.on_progress = lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True)
            try:
                res = run(store, clf, selection, taxonomy=taxonomy_id, action=action, on_output=on_output,
                          trace_ids=ids)
            except KeyboardInterrupt:
                interrupted = tally
            else:
                interrupted = None
    if interrupted is not None:
        err.print(f"interrupted: {interrupted['stored']} trace(s) classified and stored, {interrupted['failed']} "
                  "failed; the run is marked interrupted. Rerun the same command to go on (stored replies are "
                  "cached and not asked again).", style="yellow", highlight=False, markup=False)
        raise SystemExit(130)
    for note in res.notes:
        err.print(safe(note), style="yellow", highlight=False, markup=False)
    if as_json:
        print_json(res.as_dict())
    else:
        rows = [{"mode": m, "present": n} for m, n in res.present_by_mode.items()]
        if rows:
            err.print(table(rows, ["mode", "present"], title=f"{clf.name} {clf.version}: traces with the mode",
                            justify_right=["present"]))
        err.print(f"run {res.run_id}: {res.done} trace(s) classified, {res.failed} failed, "
                  f"{res.annotations} annotation(s), {res.attributions} root cause(s)"
                  + (f", {len(res.errors)} part(s) failed" if res.errors else ""), highlight=False)
    # Nothing classified is an error with its reasons; some unclassified is a warning with the count.
    # (only when something failed or was held back: a classifier may legitimately cover no trace)
    nothing = res.traces > 0 and res.done == 0 and bool(res.failures or res.notes)
    if res.failures:
        style = "red" if nothing else "yellow"
        head = ("error: no trace classified" if nothing
                else f"warning: {res.unclassified} of {res.traces} trace(s) unclassified")
        err.print(head, style=style, highlight=False, markup=False)
        for line in res.failure_lines():
            err.print(safe(line), style=style, highlight=False, markup=False, soft_wrap=True)
    elif nothing:
        err.print(f"error: no trace classified ({res.unclassified} not started; see the notes above)",
                  style="red", highlight=False, markup=False)
    # A failed part (e.g. one broken detector) is an error even though the others' results are stored.
    for part, reason in res.errors.items():
        err.print(f"error: {safe(part)}: {safe(reason)}", style="red", markup=False, highlight=False, soft_wrap=True)
    if res.errors or nothing:
        raise SystemExit(1)


@click.command()
@json_option
def classifiers(as_json):
    """List the classifiers, what kind each is, and the options it takes (-C key=value)."""
    from mast.classify import factory, names, options_of

    rows = []
    for name in names():
        fac = factory(name)
        rows.append({"name": name, "kind": getattr(fac, "kind", ""),
                     "options": [{"name": o.name, "help": o.describe(), "multiple": o.multiple,
                                  "setting": o.setting} for o in options_of(name)]})
    if as_json:
        print_json(rows)
        return
    from mast.cli._render import out

    for r in rows:
        opts = [{"option": f"-C {o['name']}=…", "meaning": o["help"]} for o in r["options"]]
        out.print(table(opts, ["option", "meaning"], title=f"{r['name']} ({r['kind']})"))

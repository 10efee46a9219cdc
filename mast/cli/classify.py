"""`mast classify`: run a classifier (rules, judge, ...) over selected traces and record the run."""

from __future__ import annotations

import click

from mast.cli._render import err, print_json, table

# Options forwarded to the classifier factory only when given (rules ignore judge options).
_FACTORY_OPTIONS = ("model", "base_url", "concurrency", "budget", "estimate", "batch", "timeout",
                    "max_retries", "rules_dir", "detectors")


@click.command()
@click.option("--with", "name", default="rules", show_default=True, help="Classifier to run (see `mast taxonomy`).")
@click.option("--system", help="Only traces of this system.")
@click.option("--where", help="SQL condition over the traces table, e.g. \"outcome = 'failure'\".")
@click.option("--sample", type=click.IntRange(min=1), help="A fixed pseudo-random sample of N traces.")
@click.option("--action", type=click.Choice(["replace", "append"]), default="replace", show_default=True,
              help="replace: drop this classifier version's earlier rows for these traces; append: keep both.")
@click.option("-t", "--taxonomy", "taxonomy_id", default="mast-v1", show_default=True)
@click.option("-m", "--model", envvar="MAST_JUDGE_MODEL", help="Judge model (or MAST_JUDGE_MODEL).")
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Judge: requests in flight.")
@click.option("--budget", type=float, help="Judge: stop starting traces after this many USD.")
@click.option("--estimate", is_flag=True, default=None, help="Judge: print expected tokens and cost, send nothing.")
@click.option("--batch", is_flag=True, default=None, help="Judge: use the OpenAI Batch API.")
@click.option("--batch-id", help="Judge: resume this Batch API job (implies --batch; unfinished batches "
                                 "of the same model and prompt are resumed anyway).")
@click.option("--timeout", type=float, help="Judge: seconds per request.")
@click.option("--max-retries", type=click.IntRange(min=0), help="Judge: retries per request.")
@click.option("--rules-dir", type=click.Path(file_okay=False), envvar="MAST_RULES_DIR",
              help="Rules: folder of SQL detectors (default: the shipped classifiers/rules).")
@click.option("--detector", "detectors", multiple=True, help="Rules: run only this detector (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.pass_obj
def classify(obj, name, system, where, sample, action, taxonomy_id, model, base_url, concurrency, budget,
             estimate, batch, batch_id, timeout, max_retries, rules_dir, detectors, as_json):
    """Tag traces with failure modes and root causes; every run is recorded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mast.classify import create
    from mast.classify.runner import Selection, run
    from mast.store import Store
    from mast.taxonomy import load

    load(taxonomy_id)  # an unknown taxonomy fails before anything runs
    given = dict(model=model, base_url=base_url, concurrency=concurrency, budget=budget, estimate=estimate,
                 batch=batch or (True if batch_id else None), batch_id=batch_id, timeout=timeout,
                 max_retries=max_retries, rules_dir=rules_dir,
                 detectors=list(detectors) or None)
    options = {k: v for k, v in given.items() if v is not None}
    if name == "rules" and "detectors" in options:
        options["only"] = options.pop("detectors")
    clf = create(name, **options)
    selection = Selection(system=system, where=where, sample=sample)
    with Store(obj["db"]) as store:
        ids = selection.resolve(store)
        if estimate and hasattr(clf, "estimate"):  # judge: count before anything is sent
            est = clf.estimate(store, ids).as_dict()
            if as_json:
                print_json(est)
            else:
                cost = "unknown (no price for this model)" if est["cost_usd"] is None else f"${est['cost_usd']:.4f}"
                click.echo(f"traces {est['traces']} ({est['cached']} cached, {est['to_send']} to send in "
                           f"{est['windows']} request(s))\nprompt tokens ~{est['prompt_tokens']:,}\n"
                           f"output tokens ~{est['output_tokens']:,}\nexpected cost {cost}"
                           f"{' (batch price)' if est['batch'] else ''}\ntokens counted by {est['tokenizer']}")
            return
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task(f"classify --with {name}", total=len(ids))

            tally = {"failed": 0, "cost": 0.0}

            def on_output(out):
                tally["failed"] += len(out.failed)
                tally["cost"] += out.cost_usd
                progress.update(task, description=f"classify --with {name}: {tally['failed']} failed, "
                                                  f"${tally['cost']:.4f}")
                progress.advance(task, len(out.trace_ids) or len({a.trace_id for a in out.annotations}))

            res = run(store, clf, selection, taxonomy=taxonomy_id, action=action, on_output=on_output,
                      trace_ids=ids)
        present = {}
        if res.annotations:
            present = dict(store.fetchall(
                "SELECT mode, count(*) FILTER (WHERE label = 'present') FROM annotations WHERE run_id = ? "
                "GROUP BY mode ORDER BY mode", [res.run_id]))
    summary = {
        "run_id": res.run_id, "classifier": clf.name, "version": clf.version, "status": res.status,
        "traces": res.traces, "done": res.done, "failed": res.failed, "annotations": res.annotations,
        "attributions": res.attributions, "present_by_mode": present,
        "tokens_in": res.tokens_in, "tokens_out": res.tokens_out, "cost_usd": res.cost_usd,
        "failures": res.failures, "errors": res.errors,
    }
    stats = getattr(clf, "stats", None)
    if stats is not None:  # judge: cache hits, budget stop, batch ids
        import dataclasses
        summary["judge"] = dataclasses.asdict(stats)
        if stats.budget_stopped:
            err.print(f"budget reached: {stats.skipped_budget} trace(s) not started", style="yellow",
                      highlight=False)
    runs = getattr(clf, "detector_runs", None)
    if runs:
        summary["detectors"] = [{"name": r.name, "mode": r.mode, "seconds": round(r.seconds, 3),
                                 "findings": r.findings, "error": r.error} for r in runs]
    if as_json:
        print_json(summary)
    else:
        rows = [{"mode": m, "present": n} for m, n in present.items()]
        if rows:
            err.print(table(rows, ["mode", "present"], title=f"{clf.name} {clf.version}: traces with the mode",
                            justify_right=["present"]))
        err.print(f"run {res.run_id}: {res.done} trace(s) classified, {res.failed} failed, "
                  f"{res.annotations} annotation(s), {res.attributions} root cause(s)"
                  + (f", {len(res.errors)} part(s) failed" if res.errors else ""), highlight=False)
    # A failed part (e.g. one broken detector) is an error even though the others' results are stored.
    for part, reason in res.errors.items():
        err.print(f"error: {part}: {reason}", style="red", markup=False, highlight=False, soft_wrap=True)
    if res.errors:
        raise SystemExit(1)

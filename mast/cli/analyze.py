"""`mast analyze`: ingest, classify and report in one command (the main job).

Stages, each with its own progress bar on stderr and one row in the closing summary:
1. ingest the paths (:func:`mast.ingest.pipeline.ingest_paths`);
2. classify every trace of the store with the rules (when registered) and with the LLM
   judge when a model is configured (``--model``/``MAST_JUDGE_MODEL``) together with
   ``OPENAI_API_KEY`` or a base URL (:func:`mast.classify.runner.run`);
3. write the report (:func:`mast.report.write_report`).

A bad file stops the job unless ``--keep-going``; a classifier that fails is reported and
the report is still written from what the store holds.  Either way the exit status is 1.
The report's path goes to stdout.
"""

from __future__ import annotations

import os
import time

import click

from mast.cli._render import err, print_json, table


def judge_config(model: str | None, base_url: str | None) -> tuple[dict | None, str]:
    """Judge options when a model and a way to reach it are configured, else (None, why not)."""
    if not model:
        return None, "no model configured (--model or MAST_JUDGE_MODEL)"
    if not (os.environ.get("OPENAI_API_KEY") or base_url):
        return None, "no OPENAI_API_KEY and no --base-url/OPENAI_BASE_URL"
    return {"model": model, **({"base_url": base_url} if base_url else {})}, ""


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="reports/index.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML report to write.")
@click.option("--system", help="System name for traces whose source does not name one.")
@click.option("--keep-going", is_flag=True, help="Carry on past bad files (exit status is still 1).")
@click.option("-m", "--model", envvar="MAST_JUDGE_MODEL", help="Judge model (or MAST_JUDGE_MODEL); no model, no judge.")
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_obj
def analyze(obj, paths, output, system, keep_going, model, base_url, as_json):
    """Ingest trace files, tag failure modes and write the HTML report, in one go."""
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from mast.classify import create, names
    from mast.classify.runner import Selection, run
    from mast.errors import MastError
    from mast.ingest.pipeline import expand, ingest_paths
    from mast.report import write_report
    from mast.store import Store

    files = expand(paths)  # a missing path fails before the store is touched
    stages: list[dict] = []
    failed = False
    judge_opts, judge_why = judge_config(model, base_url)

    def progress(*columns):
        return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), *columns,
                        TimeElapsedColumn(), console=err, transient=False, disable=not err.is_terminal)

    with Store(obj["db"]) as store:
        # 1. ingest ---------------------------------------------------------------------------
        t0 = time.perf_counter()
        with progress(DownloadColumn()) as p:
            task = p.add_task("ingest", total=sum(f.stat().st_size for f in files))

            def on_file(res, size):
                p.advance(task, size)
                if res.error:
                    p.console.print(f"error: {res.error}", style="red", highlight=False, markup=False,
                                    soft_wrap=True)

            summary = ingest_paths(store, files, "auto", system, keep_going, on_file)
        errors = summary.errors
        fmts = ", ".join(f"{k} ×{v}" for k, v in sorted(summary.formats.items())) or "-"
        stages.append({"stage": "ingest", "result": f"{len(summary.files)} file(s) ({fmts}): "
                       f"{summary.traces_new} new trace(s), {summary.traces_present} already stored, "
                       f"{summary.steps} step(s), {len(errors)} error(s)",
                       "seconds": round(time.perf_counter() - t0, 2), "ok": not errors})
        if errors:
            failed = True
            if not keep_going:
                _finish(stages, as_json, None)
                err.print(f"stopped at a bad file; {len(files) - len(summary.files)} file(s) not read "
                          "(use --keep-going to read past bad files)", style="yellow", highlight=False)
                raise SystemExit(1)

        # 2. classify --------------------------------------------------------------------------
        selection = Selection()
        ids = selection.resolve(store)
        available = names()
        # (name, options, why skipped); rules first: the judge uses their findings as hints.
        plan: list[tuple[str, dict, str]] = [
            ("rules", {}, "" if "rules" in available else "no rules classifier registered"),
            ("judge", judge_opts or {}, judge_why if not judge_opts else
             ("" if "judge" in available else "judge classifier not installed")),
        ]
        for name, opts, why in plan:
            if why:
                stages.append({"stage": f"classify {name}", "result": f"skipped: {why}", "seconds": 0.0, "ok": True})
                continue
            t0 = time.perf_counter()
            try:
                clf = create(name, **opts)
                with progress(MofNCompleteColumn()) as p:
                    task = p.add_task(f"classify {name}", total=len(ids))

                    def on_output(out, p=p, task=task):
                        p.advance(task, len(out.trace_ids) or len({a.trace_id for a in out.annotations}))

                    res = run(store, clf, selection, on_output=on_output, trace_ids=ids)
                present = store.fetchall("SELECT count(*) FILTER (WHERE label = 'present'), count(DISTINCT trace_id) "
                                         "FILTER (WHERE label = 'present') FROM annotations WHERE run_id = ?",
                                         [res.run_id])[0]
                ok = not (res.failed or res.errors)
                result = (f"{res.done} trace(s) classified, {res.failed} failed; {present[0]} failure tag(s) "
                          f"on {present[1]} trace(s)" + (f"; ${res.cost_usd:.4f}" if res.cost_usd else "")
                          + "".join(f"; error in {k}: {v}" for k, v in res.errors.items()))
            except MastError as e:
                ok, result = False, f"error: {e}"
            failed |= not ok
            stages.append({"stage": f"classify {name}", "result": result,
                           "seconds": round(time.perf_counter() - t0, 2), "ok": ok})

        # 3. report ------------------------------------------------------------------------------
        t0 = time.perf_counter()
        with progress() as p:
            task = p.add_task("report", total=1)
            rep = write_report(store, output)
            p.advance(task)
        e = rep.context.explorer
        stages.append({"stage": "report", "result": f"{rep.path} ({rep.bytes / 1e6:.1f} MB): {e.total_traces} "
                       f"trace(s), {e.listed} in the explorer", "seconds": round(time.perf_counter() - t0, 2),
                       "ok": True})
    _finish(stages, as_json, rep)
    if failed:
        raise SystemExit(1)


def _finish(stages: list[dict], as_json: bool, rep) -> None:
    if as_json:
        print_json({"stages": stages, "report": str(rep.path) if rep else None})
        return
    from rich.markup import escape

    # Results quote file names and error messages: escape them so rich shows "[...]" as text.
    rows = [{**s, "result": escape(s["result"]), "seconds": f"{s['seconds']:.2f}", "": "✓" if s["ok"] else "✗"}
            for s in stages]
    err.print(table(rows, ["", "stage", "result", "seconds"], title="mast analyze", justify_right=["seconds"]))
    if rep is not None:
        for note in rep.context.notes:
            err.print(f"note: {note}", style="yellow", highlight=False, markup=False)
        err.print(f"Report written to {rep.path.resolve()} — open it in a browser (it needs no network).",
                  highlight=False, markup=False, soft_wrap=True)
        click.echo(str(rep.path))

"""`mast analyze`: the main job (:func:`mast.analyze.analyze`) with progress bars on
stderr, a closing summary table, and the report's path on stdout.

A bad file stops the job unless ``--keep-going``; a classifier that fails is reported and
the report is still written from what the store holds.  Either way the exit status is 1.
"""

from __future__ import annotations

import click

from mast.cli._render import err, print_json, safe, table
from mast.cli.options import default_system_option, judge_options, json_option, keep_going_option


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="reports/index.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML report to write.")
@default_system_option
@keep_going_option
@judge_options
@json_option
@click.pass_obj
def analyze(settings, paths, output, default_system, keep_going, model, base_url, response_format, as_json):
    """Ingest trace files, tag failure modes and write the HTML report, in one go."""
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mast.analyze import analyze as run_job
    from mast.ingest.pipeline import expand
    from mast.store import Store

    settings = settings.replace(judge_model=model, base_url=base_url, judge_response_format=response_format)
    bars: dict[str, tuple[Progress, int]] = {}

    def on_event(ev) -> None:
        if ev.total is not None:  # a stage starts: close the previous bar, open its own
            for p, _ in bars.values():
                p.stop()
            p = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                         DownloadColumn() if ev.unit == "bytes" else MofNCompleteColumn(), TimeElapsedColumn(),
                         console=err.console, transient=False, disable=not err.is_terminal)
            p.start()
            bars[ev.stage] = (p, p.add_task(ev.stage, total=ev.total))
        p, task = bars[ev.stage]
        if ev.advance:
            p.advance(task, ev.advance)
        if ev.message:
            p.console.print(f"{'error' if ev.error else 'note'}: {safe(ev.message)}", style="red" if ev.error else None,
                            highlight=False, markup=False, soft_wrap=True)

    files = expand(paths)  # a missing path fails before the store is created
    try:
        with Store(settings.db) as store:
            res = run_job(store, files, output, settings=settings, default_system=default_system,
                          keep_going=keep_going, on_event=on_event)
    except KeyboardInterrupt:
        # Each file and each classified trace is committed on its own, and an interrupted
        # classification run is marked so: a rerun of the same command goes on from there.
        for p, _ in bars.values():
            p.stop()
        err.print("interrupted: what was stored stays (whole files, classified traces); rerun the same "
                  "command to go on", style="yellow", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(130) from None
    finally:
        for p, _ in bars.values():
            p.stop()
    _finish(res, as_json)
    if res.stopped:
        why = ("stopped at once (see the error above)" if keep_going
               else "stopped at a bad file (use --keep-going to read past bad files)")
        err.print(f"{why}; {res.files_total - res.files_read} file(s) not read", style="yellow", highlight=False)
    if not res.ok:
        raise SystemExit(1)


def _finish(res, as_json: bool) -> None:
    rep = res.report
    if as_json:
        print_json({"stages": [s.as_dict() for s in res.stages], "report": str(rep.path) if rep else None})
        return
    # Results quote file names and error messages: table() shows them as plain, safe text.
    rows = [{**s.as_dict(), "result": s.result, "seconds": f"{s.seconds:.2f}", "": "✓" if s.ok else "✗"}
            for s in res.stages]
    err.print(table(rows, ["", "stage", "result", "seconds"], title="mast analyze", justify_right=["seconds"]))
    if rep is not None:
        for note in rep.context.notes:
            err.print(f"note: {safe(note)}", style="yellow", highlight=False, markup=False)
        err.print(f"Report written to {rep.path.resolve()} — open it in a browser (it needs no network).",
                  highlight=False, markup=False, soft_wrap=True)
        click.echo(str(rep.path))

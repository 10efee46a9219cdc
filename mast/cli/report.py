"""`mast report`: write the self-contained HTML failure report."""

from __future__ import annotations

import click

from mast.cli._render import err, read_db, safe
from mast.cli.options import systems_option, taxonomy_option


@click.command()
@click.option("-o", "--output", default="reports/index.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@systems_option
@click.option("--annotator", "annotators", multiple=True,
              help="Only labels from these annotators, e.g. rules, human, judge:gpt-4o (repeatable).")
@taxonomy_option
@click.option("--max-traces", type=click.IntRange(0), default=None,
              help="Traces carried with their steps in the explorer (default 2000).")
@click.option("--review", "review_set", metavar="ID",
              help="Write the review page of this review set instead (see `mast sample --for-review`): label its "
                   "traces with the keyboard and export one labels file for `mast ingest`.")
@click.option("--baseline", default=None, metavar="SEL",
              help="With --candidate: add a comparison view of two selections (syntax of `mast compare`).")
@click.option("--candidate", default=None, metavar="SEL", help="With --baseline: the selection compared with it.")
@click.pass_obj
def report(obj, output, systems, annotators, taxonomy_id, max_traces, review_set, baseline, candidate):
    """Write one HTML file (no network needed to view it) with failure exposure per system."""
    from mast.compare import parse_selection
    from mast.errors import UsageError
    from mast.report import Limits, write_report, write_review
    from mast.store import Store

    if (baseline is None) != (candidate is None):
        raise UsageError("--baseline and --candidate go together", "Give both selections, or neither.")
    comparison = None
    if baseline is not None:
        parse_selection(baseline), parse_selection(candidate)  # a bad selection fails before the report is built
        comparison = (baseline, candidate)

    limits = Limits() if max_traces is None else Limits(max_traces=max_traces)
    if review_set:
        if systems or annotators or comparison:
            raise click.UsageError("--review takes the review set's traces: --system, --annotator, --baseline and "
                                   "--candidate do not apply")
        with Store(read_db(obj), read_only=True) as store:
            rv = write_review(store, review_set, output, limits=limits)
        err.print(f"review page: {len(rv.context.traces)} traces of review set {review_set}, "
                  f"{rv.bytes / 1e6:.1f} MB", highlight=False)
        click.echo(str(rv.path))
        return
    with Store(read_db(obj), read_only=True) as store:
        res = write_report(store, output, systems=systems, annotators=annotators, taxonomy=taxonomy_id,
                           limits=limits, comparison=comparison)
    e = res.context.explorer
    err.print(f"report: {e.total_traces} traces, {e.listed} in the explorer ({e.detailed} with steps), "
              f"{res.bytes / 1e6:.1f} MB", highlight=False)
    for note in res.context.notes:
        err.print(f"note: {safe(note)}", style="yellow", highlight=False, markup=False)
    click.echo(str(res.path))

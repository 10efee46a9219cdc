"""`mast export annotations|exposure`: tables for notebooks and other tools."""

from __future__ import annotations

import sys

import click

from mast.cli._render import err, read_db
from mast.cli.options import systems_option, taxonomy_option


@click.command()
@click.argument("what", type=click.Choice(["annotations", "exposure"]))
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (stdout when absent; not for parquet).")
@systems_option
@click.option("--annotator", "annotators", multiple=True, help="Only these annotators (repeatable).")
@taxonomy_option
@click.pass_obj
def export(obj, what, fmt, output, systems, annotators, taxonomy_id):
    """Export stored annotations, or the exposure table of the report (system × annotator × mode)."""
    from mast.report.export import annotations_frame, exposure_frame, write_frame
    from mast.store import Store

    if fmt == "parquet" and not output:
        from mast.errors import UsageError
        raise UsageError("parquet is binary and needs a file", "Add -o FILE.parquet (or use csv/jsonl on stdout).")
    with Store(read_db(obj), read_only=True) as store:
        df = (annotations_frame(store, systems, annotators) if what == "annotations"
              else exposure_frame(store, systems, annotators, taxonomy_id))
    write_frame(df, fmt, output, sys.stdout)
    if output:
        err.print(f"{what}: {df.height} row(s) written to {output}", highlight=False, markup=False)

"""`mast sample --for-review` and `mast labels`: the human review loop (see :mod:`mast.review`)."""

from __future__ import annotations

import click

from mast.cli._render import err, out, print_json, table
from mast.cli.options import json_option, systems_option, taxonomy_option


@click.command()
@click.option("--for-review", "n", type=click.IntRange(min=1), required=True, metavar="N",
              help="Pick N traces for a person to label, recorded as a review set.")
@click.option("--strategy", type=click.Choice(["uncertain", "stratified", "random"]), default="uncertain",
              show_default=True,
              help="uncertain: where classifiers disagree or are least sure; stratified: round-robin by system and "
                   "mode; random: seeded.")
@systems_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the order (ties, strata, random).")
@click.option("--include-reviewed", is_flag=True,
              help="Also pick traces already in an earlier review set (left out by default).")
@taxonomy_option
@json_option
@click.pass_obj
def sample(obj, n, strategy, systems, seed, include_reviewed, taxonomy_id, as_json):
    """Choose traces worth a person's time and record them as a review set.

    Then `mast report --review ID -o review.html` writes the page to label them on, and
    `mast ingest LABELS.json` takes the labels file it exports."""
    from mast.review import sample_for_review
    from mast.store import Store

    with Store(obj.db) as store:
        rs = sample_for_review(store, n, strategy=strategy, systems=systems, seed=seed, taxonomy=taxonomy_id,
                               include_reviewed=include_reviewed)
    if as_json:
        print_json({"review_set": rs.review_set, "strategy": rs.strategy, "seed": rs.seed,
                    "taxonomy": rs.taxonomy, "traces": [t.__dict__ for t in rs.traces]})
        return
    out.print(table([t.__dict__ for t in rs.traces], ["position", "trace_id", "system", "reason"],
                    title=f"review set {rs.review_set}: {len(rs.traces)} trace(s), strategy {strategy}"))
    err.print(f"next: mast report --review {rs.review_set} -o review.html", highlight=False, markup=False)


@click.group()
def labels():
    """Human labels from the review page: import a labels file, list review sets, make judge examples."""


@labels.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@json_option
@click.pass_obj
def import_(obj, paths, as_json):
    """Store labels files exported by the review page (as annotator human:<reviewer>).

    Each file is checked whole against its review set and the taxonomy first; a bad file
    stores nothing.  `mast ingest` does the same for a labels file it is given."""
    from mast.review import import_labels
    from mast.store import Store

    with Store(obj.db) as store:
        results = [import_labels(store, p) for p in paths]
    render_imports(results, as_json)


def render_imports(results, as_json: bool) -> None:
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    for r in results:
        err.print(f"{r.path}: {r.labels} label(s) of review set {r.review_set} stored as {r.annotator} "
                  f"({r.present} present, {r.absent} absent, {r.unsure} unsure)"
                  + (f", replacing {r.replaced} from an earlier import" if r.replaced else ""),
                  highlight=False, markup=False)


@labels.command("sets")
@json_option
@click.pass_obj
def sets(obj, as_json):
    """List the review sets in the store."""
    from mast.review import review_sets
    from mast.store import Store

    with Store(obj.db, read_only=True) as store:
        rows = review_sets(store)
    if as_json:
        print_json(rows)
    else:
        out.print(table(rows, ["review_set", "created_at", "strategy", "seed", "traces", "taxonomy"],
                        title="review sets"))


@labels.command("examples")
@click.option("--review-set", "review_set", required=True, metavar="ID", help="The review set whose labels to use.")
@click.option("--reviewer", metavar="NAME", help="Only this reviewer's labels (default: every reviewer's).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the examples file (mast-judge-examples JSON).")
@click.option("--step-chars", type=click.IntRange(min=40), default=220, show_default=True,
              help="Characters kept of each evidence step (half that of the steps either side).")
@click.option("--max-evidence", type=click.IntRange(min=1), default=2, show_default=True,
              help="Evidence steps shown per example.")
@json_option
@click.pass_obj
def examples(obj, review_set, reviewer, output, step_chars, max_evidence, as_json):
    """Write the judge's few-shot examples from a review set's human labels.

    Every 'present' label with evidence steps becomes one example (an excerpt of its trace
    around the evidence, the note as its rationale; secrets redacted).  Use it with
    `mast classify --with judge --examples FILE` (or `mast analyze --examples FILE`): a trace
    that is itself an example is judged with that example swapped out."""
    from mast.review import write_review_examples
    from mast.store import Store

    with Store(obj.db, read_only=True) as store:
        res = write_review_examples(store, review_set, output, reviewer=reviewer, step_chars=step_chars,
                                    max_evidence=max_evidence)
    if as_json:
        print_json(res.__dict__)
        return
    err.print(f"{res.path}: {res.examples} example(s) for mode(s) {', '.join(res.modes)} from review set "
              f"{res.review_set} (reviewer(s) {', '.join(res.reviewers)})"
              + (f"; no example for {', '.join(res.modes_without)}" if res.modes_without else ""),
              highlight=False, markup=False)

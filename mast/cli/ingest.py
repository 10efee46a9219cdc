"""`mast ingest` and `mast formats`."""

from __future__ import annotations

import contextlib

import click

from mast.cli._render import err, out, print_json, safe, table
from mast.cli.options import default_system_option, json_option, keep_going_option


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-f", "--format", "fmt", default="auto", show_default=True,
              help="Importer to use (see `mast formats`), or auto to detect per file.")
@default_system_option
@keep_going_option
@json_option
@click.pass_obj
def ingest(obj, paths, fmt, default_system, keep_going, as_json):
    """Read trace files (folders recursively) into the store.

    A labels file exported by the review page is stored as human labels instead
    (the same as `mast labels import`)."""
    from mast.classify.hooks import ingest_hooks
    from mast.ingest import get
    from mast.ingest.pipeline import SYSTEM_RULES, IngestLimits, expand, ingest_paths
    from mast.labels_file import is_labels_file
    from mast.store import Store

    if fmt != "auto":
        get(fmt)  # unknown names fail before anything is opened
    lim = IngestLimits.from_settings(obj)  # a bad limit fails before anything is opened too
    files = expand(paths)
    # Labels files hold annotations of stored traces, not traces: no importer reads them.
    label_files = [f for f in files if fmt == "auto" and is_labels_file(f)]
    files = [f for f in files if f not in label_files]
    total = 0
    for f in files:
        with contextlib.suppress(OSError):  # a file gone by now is reported by ingest, in its place
            total += f.stat().st_size
    bar = None
    if err.is_terminal:
        # rich.progress only for a bar someone sees: importing it is ~0.03 s of a small ingest
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
        bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), DownloadColumn(),
                       TimeRemainingColumn(), console=err.console, transient=True)
    with Store(obj.db) as store, bar or contextlib.nullcontext():
        task = bar.add_task("ingesting", total=total) if bar else None
        console = bar.console if bar else err  # err: plain lines need no rich (mast.cli._plain)

        def on_file(res, size):
            if bar:
                bar.advance(task, size)
            if res.error:
                console.print(f"error: {safe(res.error)}", style="red", highlight=False, markup=False,
                              soft_wrap=True)
            elif res.companion:
                console.print(f"note: {safe(res.path)}: skipped, {safe(res.companion)}", highlight=False,
                              markup=False, soft_wrap=True)

        summary = ingest_paths(store, files, fmt, default_system, keep_going, on_file, hooks=ingest_hooks(obj),
                               limits=lim)
        labelled = []
        if label_files and not summary.errors:
            from mast.review import import_labels  # the review machinery, only when a labels file is given
            labelled = [import_labels(store, f) for f in label_files]
    errors = summary.errors
    shown = summary.shown_paths
    if as_json:
        print_json({
            "files": len(summary.files), "skipped_unchanged": sum(f.skipped for f in summary.files),
            "skipped_companion": [{"path": f.path, "note": f.companion} for f in summary.files if f.companion],
            "formats": dict(summary.formats), "traces_new": summary.traces_new,
            "traces_present": summary.traces_present, "steps": summary.steps,
            "systems_named": dict(summary.systems_named),
            "traces_replaced": summary.traces_replaced, "labels_replaced": summary.labels_replaced,
            "alternates": summary.alternates, "traces_superseded": summary.traces_superseded,
            "labels_superseded": summary.labels_superseded,
            "same_run_no_id": [{"path": a, "other": b} for a, b in summary.same_run],
            "merged_by_content": [{"path": a, "other": b} for a, b in summary.merged_by_content],
            "pieces_joined": [{"trace_id": t, "files": [shown.get(p, p) for p in ps]}
                              for t, ps in summary.joined.traces],
            "pieces_replaced": summary.joined.replaced,
            "pieces_labels_replaced": summary.joined.labels, "pieces_notes": summary.joined.notes,
            "errors": [str(e) for e in errors],
            "stopped": str(summary.aborted) if summary.aborted else None,
            "labels": [r.__dict__ for r in labelled],
        })
    else:
        fm = ", ".join(f"{k} ×{v}" for k, v in sorted(summary.formats.items())) or "-"
        skipped = sum(f.skipped for f in summary.files)
        companions = sum(bool(f.companion) for f in summary.files)
        if files or not label_files:
            err.print(f"{len(summary.files)} file(s) [{fm}]"
                      + (f", {skipped} unchanged since last ingest" if skipped else "")
                      + (f", {companions} companion file(s) skipped" if companions else "")
                      + f": {summary.traces_new} new trace(s), {summary.traces_present} already present, "
                      f"{summary.steps} step(s), {len(errors)} error(s)"
                      + (f"; changed files replaced {summary.traces_replaced} earlier trace(s) and "
                         f"{summary.labels_replaced} label(s) of them" if summary.traces_replaced else ""),
                      highlight=False, markup=False)
        if summary.alternates or summary.traces_superseded:
            err.print(f"one trace per run: {summary.alternates} artefact(s) kept as alternate sources of a richer "
                      "artefact's trace"
                      + (f"; richer artefacts replaced {summary.traces_superseded} earlier trace(s) and "
                         f"{summary.labels_superseded} label(s) of them" if summary.traces_superseded else "")
                      + " (see `mast traces show`)", highlight=False, markup=False)
        joined = summary.joined
        if joined.traces:
            err.print(f"pieces of one trace in several files: {sum(len(ps) for _, ps in joined.traces)} file(s) "
                      f"joined into {len(joined.traces)} trace(s)"
                      + (f", replacing {joined.replaced} earlier trace(s) and {joined.labels} label(s) of them"
                         if joined.replaced else ""), highlight=False, markup=False)
        for note in joined.notes:
            err.print(f"note: {safe(note)}", highlight=False, markup=False, soft_wrap=True)
        _same_run_notes(summary.same_run, summary.shown_paths)
        _same_run_notes(summary.merged_by_content, summary.shown_paths, merged=True)
        named = summary.systems_named
        if named.keys() - {"artefact"}:  # only worth a line when a fallback named some
            err.print("system names: " + ", ".join(f"{named[k]} trace(s) from the {k}" for k in SYSTEM_RULES
                                                  if named[k]), highlight=False, markup=False)
        if labelled:
            from mast.cli.review import render_imports
            render_imports(labelled, False)
    if errors:
        if keep_going and not as_json:  # the error lines scrolled past with the progress: name them again
            err.print(f"failed ({len(errors)}): " + ", ".join(safe(f.path) for f in summary.files if f.error),
                      highlight=False, markup=False, soft_wrap=True)
        for hint in dict.fromkeys(e.hint for e in errors if e.hint):
            err.print(f"hint: {safe(hint)}", highlight=False, markup=False)
        if summary.aborted:
            left = len(files) - len(summary.files)
            err.print("stopped at once" + (f": {left} file(s) not read" if left else "") + "; the file named was "
                      "not stored (fix the cause, then rerun: stored files are skipped)", style="yellow",
                      highlight=False, markup=False)
        elif not keep_going and len(summary.files) < len(files):
            err.print(f"stopped after the first error; {len(files) - len(summary.files)} file(s) not read "
                      "(use --keep-going to read past bad files)", style="yellow")
        raise SystemExit(1)


#: Files with a same-run note printed; the rest are only counted (a folder of replays would flood stderr).
SAME_RUN_NOTES = 20


def _same_run_notes(pairs: list[tuple[str, str]], shown: dict[str, str], merged: bool = False) -> None:
    """One note per file naming the files its run looks like (``shown``: stored path -> as typed);
    ``merged``: the files its run was merged with by content."""
    by_file: dict[str, list[str]] = {}
    for a, b in pairs:
        by_file.setdefault(a, []).append(shown.get(b, b))
    for a, others in list(by_file.items())[:SAME_RUN_NOTES]:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        if merged:
            err.print(f"note: {safe(a)} merged by content with {', '.join(map(safe, others[:3]))}{more}: no run "
                      "id ties them, but the task, the opening messages and the agents agree and their times do "
                      "not say otherwise (one trace; `mast traces show` names the rule)",
                      highlight=False, markup=False, soft_wrap=True)
            continue
        err.print(f"note: {safe(a)} looks like the same run as {', '.join(map(safe, others[:3]))}{more} (same "
                  "framework, task and opening messages) but no run id ties them: kept as separate traces",
                  highlight=False, markup=False, soft_wrap=True)
    if len(by_file) > SAME_RUN_NOTES:
        err.print(f"note: … and {len(by_file) - SAME_RUN_NOTES} more file(s) like that (`--json` lists them)",
                  highlight=False, markup=False)


@click.command()
@json_option
def formats(as_json):
    """List the trace formats mast can read, each with an example of a file's first bytes."""
    from mast.ingest.registry import listing

    rows = [{"name": name, "description": description, "example": example}
            for name, description, example in listing()]
    if as_json:
        print_json(rows)
    else:
        out.print(table(rows, ["name", "description", "example"], title="formats (auto-detection order)"))

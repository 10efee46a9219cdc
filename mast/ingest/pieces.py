"""Pieces of one trace in separate files, joined into one trace.

A user who pages through an API with a script writes one file per page (``page-1.json``,
``page-2.json``, …: Phoenix's ``/spans`` and ``/spans/otlpv1``, Langfuse's observation
pages); a span download may come in parts; two OTLP files may hold disjoint spans of one
trace id.  Each file alone is read as a trace of that trace id, so run identity
(:mod:`mast.ingest.identity`) sees several artefacts of one run and would keep the one with
more steps: a trace cut by a page boundary would lose the spans of the other pages.

After the files of an ``mast ingest`` are written, :func:`join_pieces` looks at the runs
(kind ``otel-trace``: one trace id) that a file of this ingest belongs to and that other
files *of the same format* also hold: it reads all of them again as one export
(the importer's ``read_pieces``: their spans together, each span id once), and when no
file alone holds every span of the run (the pieces are pages, not copies), it stores the
union as the run's one trace, replacing the trace the run had (``Store.store_union``).
Two exports of one run (the same spans twice), or a piece and a file that holds it all,
are left to run identity as before.

Why read the earlier files again rather than keep their spans in the store: the store
keeps steps, not spans, and steps are built from the whole span tree (the agent of a step
comes from its ancestors, a handoff from a parent and a child on different pages), so a
union of stored steps would not be the trace of the union of the spans.  ``run_sources``
already says which files hold a piece of which run; a file is read again only when a
new piece of its run arrives, and only if it is still where it was, unchanged since it
was ingested (otherwise the run keeps its trace, and a note says which file is missing).
The union depends only on the set of files (they are read in path order, a repeated span
keeps the first file's copy), so it is the same whatever order the files arrive in,
in one ``mast ingest`` or several, and a rerun changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mast import ingest as registry
from mast.errors import MastError
from mast.ingest.finish import name_system
from mast.ingest.summary import FileResult, Joined
from mast.store import Store, WriteHook

#: Formats whose files may hold pieces of one trace (one trace id across files).
PIECE_FORMATS = ("otel", "phoenix", "langfuse")


def join_pieces(store: Store, results: Sequence[FileResult], system: str | None = None,
                hooks: Sequence[WriteHook] = ()) -> Joined:
    """Join the pieces of the runs that the files of ``results`` (this ingest's) hold pieces of."""
    out = Joined()
    # Only a file whose run has other artefacts can hold a piece of it: for the others the
    # look-up (one query of 0.01 s) would find nothing.
    keys = [r.key for r in results if r.key and r.format in PIECE_FORMATS and not r.error and not r.skipped
            and r.shared]
    if not keys:
        return out
    groups = store.piece_groups(keys, PIECE_FORMATS)
    if not groups:
        return out
    done = store.ingested_files([p for _, _, paths, _ in groups for p in paths])  # only the pieces' files
    for group, fmt, paths, other_steps in groups:
        missing = [p for p in paths if not _unchanged(Path(p), done.get(p))]
        if missing:
            out.notes.append(f"{missing[0]}: gone or changed since it was ingested; the pieces of its run "
                             f"({len(paths)} files) were not joined (ingest it again, or all of them together)")
            continue
        imp = registry.get(fmt)
        read = getattr(imp, "read_pieces", None)
        if read is None:
            continue
        try:
            built = [(t, whole) for t, whole in read([Path(p) for p in paths])]
        except (MastError, OSError, ValueError) as e:  # it was read once: a file changed within its mtime
            out.notes.append(f"pieces of one run not joined: {e}")
            continue
        for t, whole in built:
            name_system(Path(paths[0]), t, system)
            if t.metadata.get("run_key") != group:
                continue
            if whole or len(t.steps) <= other_steps:
                break  # copies of one export, or another format's artefact holds more: run identity chose
            t.metadata["pieces"] = list(paths)
            with store.transaction():
                replaced, labels = store.store_union(group, fmt, paths, t, hooks)
            out.traces.append((t.trace_id, list(paths)))
            out.replaced += replaced
            out.labels += labels
            break
    return out


def _unchanged(path: Path, recorded: tuple[int, int] | None) -> bool:
    if recorded is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == recorded

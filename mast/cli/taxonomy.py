"""`mast taxonomy`: the modes, and which classifiers can see each one."""

from __future__ import annotations

import click

from mast.cli.options import json_option, taxonomy_option

from mast.cli._render import out, print_json, table


@click.command()
@taxonomy_option
@json_option
def taxonomy(taxonomy_id, as_json):
    """Show the failure modes of a taxonomy."""
    from mast.classify import coverage
    from mast.taxonomy import load

    tax = load(taxonomy_id)
    cov = coverage(tax)
    rows = [{"id": m.id, "name": m.name, "category": f"{m.category} {m.category_name}",
             "definition": m.definition, "evidence": m.evidence,
             "covered_by": cov.get(m.id, [])} for m in tax.modes]
    if as_json:
        print_json({"id": tax.id, "version": tax.version, "source": tax.source, "notes": list(tax.notes),
                    "modes": rows, "maps": tax.maps})
        return
    for r in rows:
        r["covered by"] = ", ".join(r["covered_by"]) or "-"
    out.print(table(rows, ["id", "name", "category", "definition", "covered by"],
                    title=f"{tax.name} ({tax.id} {tax.version})"))
    for n in tax.notes:
        out.print(f"[dim]note:[/dim] {n}", highlight=False)

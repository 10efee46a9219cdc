"""`mast taxonomy`: the modes, and which classifiers can see each one."""

from __future__ import annotations

import click

from mast.cli._render import out, print_json, table


@click.command()
@click.option("-t", "--taxonomy", "taxonomy_id", default="mast-v1", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def taxonomy(taxonomy_id, as_json):
    """Show the failure modes of a taxonomy."""
    from mast.taxonomy import load

    tax = load(taxonomy_id)
    try:
        from mast.classify import coverage
        cov = coverage(tax)
    except ImportError:
        cov = {}
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

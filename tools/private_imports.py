"""An import-linter contract: no module reaches into another package's private modules.

`parallax.elements._ipc` may import `parallax.link` (the package's public names) but not
`parallax.link._shm`: a private module (a name segment starting with `_`) belongs to the
package that holds it, and only modules inside that package may import it. Each package
offers what others need through its `__init__` (STYLE.md, "Public API").

Configured in pyproject.toml (`contract_types`, then a contract of `type = "private"`).
"""

from __future__ import annotations

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, output


def _owner(module: str) -> str | None:
    """The package that owns `module`'s first private segment (None: it is public)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class PrivateImportContract(Contract):
    """Fails for each direct import of a private module from outside its package."""

    type_name = "private"

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        reach_ins = []
        for importer in sorted(graph.modules):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                owner = _owner(imported)
                if owner is None or _inside(importer, owner):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = sorted({d["line_number"] for d in details})
                reach_ins.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not reach_ins, metadata={"reach_ins": reach_ins})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for r in check.metadata["reach_ins"]:
            lines = ", ".join(f"l.{n}" for n in r["lines"])
            output.print_error(
                f"{r['importer']} imports the private {r['imported']} ({lines}): "
                f"import it from {_owner(r['imported'])}",
                bold=False,
            )
            output.new_line()

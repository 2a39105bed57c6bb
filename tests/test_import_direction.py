"""Imports follow the data: read/normalise/validate (ingest) → store → publish (with the map it builds) → view;
server, CLI, upload and demo sit on top; shared helpers (collections, settings, files, crs, …) below all."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = {"gdi.server", "gdi.cli", "gdi.upload", "gdi.demo", "gdi.collection_cli", "gdi.masterportal"}
FORBIDDEN = {
    "gdi.ingest": {"gdi.publish", "gdi.viewer", *TOP},
    "gdi.store": {"gdi.ingest", "gdi.publish", "gdi.viewer", *TOP},
    "gdi.publish": {"gdi.ingest", *TOP},
    "gdi.viewer": {"gdi.ingest", "gdi.store", "gdi.publish", *TOP},
    "gdi.store.postgis": {"gdi.store.gpkg"},
    "gdi.store.gpkg": {"gdi.store.postgis"},
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_stage_imports_a_later_one():
    wrong = []
    for path in sorted((REPO / "gdi").rglob("*.py")):
        name = module_name(path)
        for owner, banned in FORBIDDEN.items():
            if name == owner or name.startswith(owner + "."):
                wrong += [f"{name} imports {m}" for m in sorted(imports(path))
                          if any(m == b or m.startswith(b + ".") for b in banned)]
    assert wrong == []

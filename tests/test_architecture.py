"""The layout's rules, checked on the code: no import cycle between packages, none back up the layers.

A unit is a package under ``app/`` (``app.routing``'s stages count as units of their own). The
layers run from the plain values and infrastructure at the bottom to the entry points at the
top; a unit may import its own layer or one below, never one above.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("app.settings", "app.connections", "app.serving", "app.redis_link", "app.observability", "app.demo"),
    ("app.catalog", "app.simulator"),
    ("app.store",),
    ("app.llm",),
    (
        "app.routing.deadline",
        "app.routing.cutoff",
        "app.routing.preparation",
        "app.routing.token_hold",
        "app.routing.conversation",
    ),
    ("app.routing.retrieval", "app.routing.query", "app.routing.schema_detail"),
    ("app.routing.ranking",),
    ("app.routing.judging", "app.routing.result"),
    ("app.routing.plan", "app.routing.held_plan", "app.routing.extra_votes", "app.routing.service"),
    ("app.routing.progress", "app.routing.caching"),
    ("app.sources", "app.auth", "app.memory"),
    ("app.answering",),
    ("app.api",),
    ("app.mcp",),
    ("app.main",),
    ("app.eval", "app.harness", "app.settings_doc"),
    ("app.cli",),
)
LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:3] if parts[:2] == ["app", "routing"] and len(parts) > 2 else parts[:2])


def _module(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Every import between units under app/, lazy ones inside functions included."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in APP.rglob("*.py"):
        here = _unit(_module(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("app.") and _unit(name) != here:
                    edges[here].add(_unit(name))
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module(p)) for p in APP.rglob("*.py")} - {"app", "app.routing"}  # empty package inits
    assert sorted(units - LAYER.keys()) == []


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted(
        f"{a} -> {b}" for a, targets in _imports().items() for b in targets if LAYER[b] > LAYER[a]
    )
    assert upward == []


def test_no_import_cycle_between_units() -> None:
    edges = _imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            unit = todo.pop()
            if unit == goal:
                return True
            if unit not in seen:
                seen.add(unit)
                todo.extend(edges.get(unit, ()))
        return False

    cycles = sorted(f"{a} <-> {b}" for a, targets in edges.items() for b in targets if reaches(b, a))
    assert cycles == []

"""DSPy below its top-level API is reached through one module only (``app.llm.dspy_internals``)."""

from __future__ import annotations

import ast
from pathlib import Path

import app.llm.dspy_internals as internals

ROOT = Path(__file__).resolve().parent.parent
GATE = ROOT / "app" / "llm" / "dspy_internals.py"


def _dspy_submodule_imports(path: Path) -> list[str]:
    """``dspy.<something>`` modules that ``path`` imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("dspy.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dspy."):
            found.append(node.module or "")
    return found


def test_only_the_gate_module_imports_dspy_submodules() -> None:
    offenders = {
        str(path.relative_to(ROOT)): imports
        for folder in ("app", "bench", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != GATE and (imports := _dspy_submodule_imports(path))
    }
    assert offenders == {}
    # The gate itself does reach below the top level (else the check above proves nothing).
    assert _dspy_submodule_imports(GATE)


def test_the_gate_exports_what_it_imports() -> None:
    for name in internals.__all__:
        assert getattr(internals, name) is not None
    assert internals.retry_after_seconds("7") == 7.0

"""The layering the design card fixes: core/ stands on nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_CORE = ("training", "bot", "charts")


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):  # walks function bodies too: a lazy import is still an import
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_core_imports_nothing_from_training_bot_or_charts() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] in ABOVE_CORE
    ]
    assert offenders == []


def test_the_walk_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from training.models import fit_model_set\n    import bot.app\n")
    assert _imported_modules(sample) == ["training.models", "bot.app"]

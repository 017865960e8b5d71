"""The package's shape: library code never imports the command-line modules."""

from __future__ import annotations

import ast
from pathlib import Path

import skyrack

PACKAGE = Path(skyrack.__file__).parent
CLI_MODULES = ("skyrack.cli", "skyrack.cliargs")


def _is_cli(module: str) -> bool:
    return module in CLI_MODULES or module.endswith((".commands", "_commands"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_library_modules_never_import_cli_modules():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if _is_cli(module) or module == "skyrack.__main__":
            continue
        offenders += [f"{module} imports {name}" for name in sorted(_imports(path)) if _is_cli(name)]
    assert offenders == []


def test_the_check_sees_a_cli_import():
    # the test above would pass on a package it cannot read: show it reads this one
    assert "skyrack.cliargs" in _imports(PACKAGE / "orbit" / "commands.py")


def test_the_orbit_library_does_not_import_the_profile():
    # profile.py builds on orbit/elements.py; the way back would be an import cycle
    for path in sorted((PACKAGE / "orbit").glob("*.py")):
        if path.name != "commands.py":
            assert "skyrack.profile" not in _imports(path), path.name

"""The layering the code promises, checked on its imports: the engine stands alone, tooling stays outside."""

from __future__ import annotations

import ast
from pathlib import Path

import imagesense

PACKAGE = Path(imagesense.__file__).parent


def package_of(path: Path) -> str:
    return ".".join(["imagesense", *path.relative_to(PACKAGE).parent.parts])


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, at the top or inside functions, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def own_modules(path: Path, package: str | None = None) -> set[str]:
    names = imported_modules(path, package or package_of(path))
    return {name for name in names if name == "imagesense" or name.startswith("imagesense.")}


def test_the_engine_imports_nothing_of_the_service() -> None:
    """engine/ is the model layer: nothing from api, schemas, errors, settings, service or anything else
    outside engine/, so a remote engine and the local one sit behind the same protocol."""
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "engine").rglob("*.py")
        for name in own_modules(path)
        if not name.startswith("imagesense.engine")
    }
    assert not offenders


def test_the_service_never_imports_its_tooling() -> None:
    """Benchmarks, the checkpoint builder and the sample pages are reached only from the command line."""
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "devtools" and path.name != "cli.py"
        for name in own_modules(path)
        if name.startswith("imagesense.devtools")
    }
    assert not offenders


def test_the_checker_sees_forbidden_imports(tmp_path: Path) -> None:
    """The rule above can fail: forbidden imports, absolute, relative or inside a function, are found."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from imagesense.settings import Settings\nfrom ..errors import ApiError\n"
        "def later():\n    import imagesense.api.deps\n",
        encoding="utf-8",
    )
    found = own_modules(probe, "imagesense.engine")
    assert {"imagesense.settings", "imagesense.errors", "imagesense.api.deps"} <= found


def test_modules_stay_small() -> None:
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 300} == {}

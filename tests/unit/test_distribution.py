"""Two distributions in one repository: each declares exactly what its code imports.

The library (``pyproject.toml``, package ``bicameral``) and the reference shop
(``shop/pyproject.toml``, package ``shop``) are built apart; ``pip install ./`` gives the library
alone, with only the dependencies it imports itself.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "pyproject.toml"
SHOP = ROOT / "shop" / "pyproject.toml"
RUNTIME_EXTRAS = ("postgres", "redis", "nats")
PLUGINS = {"pytest-asyncio", "hiredis"}
"""Declared for what they do when installed (a pytest plugin; the C reply parser redis-py takes
up when present), never imported by name."""


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _project(path: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(path.read_text())["project"]
    return project


def _requirements(requirements: list[str]) -> set[str]:
    return {_name(Requirement(line).name) for line in requirements}


@cache
def _owners() -> dict[str, list[str]]:
    return packages_distributions()


def _imported(package: Path, own: str) -> set[str]:
    """Returns the distributions whose modules the code under ``package`` imports."""
    modules: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.partition(".")[0])
    third_party = {m for m in modules - {own, "__future__"} if m not in sys.stdlib_module_names}
    unknown = {m for m in third_party if m not in _owners()}
    assert not unknown, f"imported but installed by no distribution: {sorted(unknown)}"
    return {_name(dist) for module in third_party for dist in _owners()[module]}


def test_the_library_depends_on_exactly_what_it_imports_outside_its_extras() -> None:
    project = _project(LIBRARY)
    extras = project["optional-dependencies"]
    optional = _requirements([r for name in (*RUNTIME_EXTRAS, "testing") for r in extras[name]])
    imported = _imported(ROOT / "src" / "bicameral", "bicameral")
    assert _requirements(project["dependencies"]) == imported - optional
    assert optional - PLUGINS <= imported, "an extra declares a package the library never uses"


def test_the_shop_depends_on_exactly_what_it_imports() -> None:
    project = _project(SHOP)
    imported = _imported(ROOT / "shop" / "src" / "shop", "shop")
    assert _requirements(project["dependencies"]) == imported | {"bicameral"}


def test_each_distribution_packages_only_its_own_code() -> None:
    library = tomllib.loads(LIBRARY.read_text())["tool"]["setuptools"]
    shop = tomllib.loads(SHOP.read_text())["tool"]["setuptools"]
    assert library["packages"]["find"]["where"] == ["src"]
    assert [p.parent.name for p in (ROOT / "src").glob("*/__init__.py")] == ["bicameral"]
    assert [p.parent.name for p in (ROOT / "shop" / "src").glob("*/__init__.py")] == ["shop"]
    assert shop["packages"]["find"]["where"] == ["src"]


def test_the_shop_registers_its_app_and_demo_with_the_library() -> None:
    points = _project(SHOP)["entry-points"]
    assert points["bicameral.apps"] == {"shop": "shop.app:services"}
    assert points["bicameral.demos"] == {"shop": "shop.demo:load"}
    assert "entry-points" not in _project(LIBRARY)


def test_the_library_starts_without_its_extras_the_shop_or_the_test_tools() -> None:
    """Importing the command, the runtime and the HTTP app loads no optional package."""
    probe = (
        "import sys, bicameral, bicameral.cli.main, bicameral.runtime.node, bicameral.http.app;"
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
    )
    optional = {"asyncpg", "redis", "nats", "pytest", "hypothesis", "httpx", "shop"}
    assert loaded & optional == set()

"""Two distributions in one repository: each declares exactly what its code imports.

The library (``pyproject.toml``, package ``bicameral``) and the reference shop
(``shop/pyproject.toml``, package ``shop``) are built apart; ``pip install ./`` gives the library
alone, with only the dependencies it imports itself.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import distribution, packages_distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "pyproject.toml"
SHOP = ROOT / "shop" / "pyproject.toml"
RUNTIME_EXTRAS = ("postgres", "redis", "nats", "tracing")
PLUGINS = {"pytest-asyncio", "opentelemetry-exporter-otlp-proto-http", "hiredis"}
"""Declared for what they do when installed (a pytest plugin, a span exporter found by its
entry point, the C reply parser redis-py takes up), never imported by name."""


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


@cache
def _file_owners(top: str) -> dict[Path, str]:
    """Returns the distribution installing each file of ``top``, a namespace package several
    distributions share (``opentelemetry``)."""
    found: dict[Path, str] = {}
    for name in _owners()[top]:
        dist = distribution(name)
        for file in dist.files or ():
            found[Path(str(dist.locate_file(file))).resolve()] = name
    return found


def _owner_of(dotted: list[str]) -> str:
    """Returns the distribution of the deepest module named by one of ``dotted`` (a module,
    or what ``from module import name`` may name) in a shared namespace package."""
    top = dotted[0].partition(".")[0]
    for name in sorted(dotted, key=len, reverse=True):
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            continue
        if spec is not None and spec.origin:
            owner = _file_owners(top).get(Path(spec.origin).resolve())
            if owner:
                return owner
    raise AssertionError(f"no distribution installs {dotted[0]}")


def _imported(package: Path, own: str) -> set[str]:
    """Returns the distributions whose modules the code under ``package`` imports."""
    modules: list[list[str]] = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.extend([alias.name] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.append([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    third_party = [
        dotted
        for dotted in modules
        if (top := dotted[0].partition(".")[0]) not in {own, "__future__"}
        and top not in sys.stdlib_module_names
    ]
    unknown = {d[0] for d in third_party if d[0].partition(".")[0] not in _owners()}
    assert not unknown, f"imported but installed by no distribution: {sorted(unknown)}"
    found: set[str] = set()
    for dotted in third_party:
        owners = _owners()[dotted[0].partition(".")[0]]
        found.update(_name(d) for d in (owners if len(set(owners)) == 1 else [_owner_of(dotted)]))
    return found


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
    optional |= {"google"}  # the OpenTelemetry SDK's exporter (protobuf) loads only when asked
    assert loaded & optional == set()

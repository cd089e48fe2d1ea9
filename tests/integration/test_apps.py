"""``--app``: ``module:attr`` found from the current folder, ``path/to/file.py:attr``, and one
clear error for anything else."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bicameral import ConfigurationError, Service
from bicameral.runtime.apps import import_target, load_services

APP = """
from bicameral import Service
from helper import NAME

svc = Service(NAME)
services = [svc]
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    name = f"app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP)
    (tmp_path / "helper.py").write_text("NAME = 'tiny'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = set(sys.modules)
    yield tmp_path
    for added in set(sys.modules) - before:
        del sys.modules[added]


def test_a_module_in_the_current_folder_is_found(folder: Path) -> None:
    name = next(folder.glob("app_*.py")).stem
    [service] = load_services(f"{name}:svc")
    assert isinstance(service, Service)
    assert service.name == "tiny"
    assert [s.name for s in load_services(name)] == ["tiny"]  # attr defaults to services


def test_a_file_path_is_loaded_with_its_folder_on_the_path(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = next(folder.glob("app_*.py"))
    monkeypatch.chdir(folder.parent)
    [service] = load_services(f"{folder.name}/{path.name}:svc")
    assert service.name == "tiny"
    assert import_target(f"{path}:svc") is service  # loaded once


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("no_such_module_here:app", "ModuleNotFoundError"),
        ("helper:missing", "AttributeError"),
        ("nowhere/app.py:svc", "no file nowhere/app.py"),
        ("helper:NAME", "is not a Service"),
    ],
)
def test_a_bad_target_is_one_configuration_error(folder: Path, target: str, said: str) -> None:
    with pytest.raises(ConfigurationError, match=said):
        load_services(target)


def test_an_app_that_fails_on_import_is_named(folder: Path) -> None:
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigurationError, match=r"cannot load 'broken:svc': RuntimeError: boom"):
        load_services("broken:svc")
    assert "broken" not in sys.modules

"""What bicameral writes in its data dir is its owner's only: folders 0700 and files 0600
(SQLite's -wal and -shm included) whatever the umask; a data dir open to others is warned about."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bicameral.files import private_dir, private_file, warn_if_shared
from bicameral.http.app import create_app
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import EMBEDDED_KEY_FILE, embedded_secret
from bicameral.security.tokens import issue_token
from shop.app import services


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask-000", "umask-022", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


async def test_a_running_shop_keeps_every_file_private(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "new" / "data"
    node = Node(Settings.load(environ={}, data_dir=data), services(), ROLES)
    app = create_app(node, manage_node=False)
    await node.start()
    try:
        token = issue_token(embedded_secret(data), subject="admin", roles=["admin"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            got = await client.post(
                "/inventory/commands/RegisterProduct",
                json={"sku": "mug", "name": "Mug", "price_cents": 100},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert got.status_code == 200
        found = modes(data)
    finally:
        await node.stop()
    assert any(name.endswith("-wal") for name in found)
    assert any(name.endswith("-shm") for name in found)
    assert EMBEDDED_KEY_FILE in found
    assert "inventory/events.db" in found
    for name, mode in found.items():
        is_dir = (data / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), f"{name}: {mode:o}"
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_private_file_keeps_an_existing_file_and_its_mode(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "a" / "b" / "file"
    private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text("kept")
    path.chmod(0o640)
    private_file(path)
    assert path.read_text() == "kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert private_dir(path.parent) == path.parent


def test_a_data_dir_open_to_others_is_warned_about_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    settings = Settings.load(
        environ={},
        data_dir=shared,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
    )
    with caplog.at_level(logging.WARNING, logger="bicameral.files"):
        Node(settings, services(), ROLES)
    lines = [r.getMessage() for r in caplog.records if r.name == "bicameral.files"]
    assert lines == [
        f"data dir {shared} is open to other users (mode 755); run: chmod 700 {shared}"
    ]


def test_a_private_or_missing_data_dir_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = private_dir(tmp_path / "private")
    with caplog.at_level(logging.WARNING, logger="bicameral.files"):
        assert not warn_if_shared(private)
        assert not warn_if_shared(tmp_path / "missing")
    assert not caplog.records

"""deploy/nginx.conf routes the operational routes too: the API document and its pages, metrics
(admin only, checked by the process), readiness and the console; and its own errors are
problem+json.

Inventory's command-api and query-api run as their own processes behind Debian's nginx; the
orders upstream points at a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest
from openapi_spec_validator import validate

from bicameral.runtime.apps import load_services
from bicameral.runtime.auth import embedded_key
from bicameral.runtime.console import sign_in_link
from bicameral.runtime.settings import Settings
from bicameral.security.tokens import issue_token
from tests.e2e.cluster import ROOT, Cluster, free_port, nginx_binary
from tests.e2e.layouts import create_stores, embedded_layout, write_settings

pytestmark = pytest.mark.timeout(180)
APP = "shop.app:services"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("nginx")
    return write_settings(home / "bicameral.toml", embedded_layout(home), APP)


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[Cluster]:
    if nginx_binary() is None:
        message = "nginx is not installed; install it with: apt-get install nginx-light"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    home = settings.data_dir.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    cluster = Cluster(home, home / "bicameral.toml", env)
    embedded_key(settings)  # made once, before the processes would race to make it
    asyncio.run(create_stores(settings))
    try:
        commands = cluster.serve("commands", "inventory", "command-api", free_port())
        queries = cluster.serve("queries", "inventory", "query-api", free_port())
        apis = [commands.port or 0, queries.port or 0]
        cluster.nginx(
            {
                "inventory_commands": apis[:1],
                "inventory_queries": apis[1:],
                "api": apis,
                "console": apis[1:],
                "orders_commands": [free_port()],  # nobody there
            }
        )
        cluster.wait_healthy(["commands", "queries"])
        yield cluster
    finally:
        cluster.stop()
        print(cluster.logs())


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster.procs['nginx'].port}", timeout=30) as c:
        yield c


def bearer(settings: Settings, *roles: str) -> dict[str, str]:
    token = issue_token(embedded_key(settings), subject="someone", roles=roles)
    return {"Authorization": f"Bearer {token}"}


def direct(cluster: Cluster, name: str, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{cluster.procs[name].port}{path}", timeout=30)


def test_the_document_through_nginx_describes_the_whole_api(http: httpx.Client) -> None:
    got = http.get("/openapi.json")
    assert got.status_code == 200
    doc = got.json()
    validate(doc)
    for service in load_services(APP):
        assert any(p.startswith(f"/{service.name}/") for p in doc["paths"]), service.name
    assert "/inventory/commands/RegisterProduct" in doc["paths"]
    assert "/inventory/queries/GetProduct" in doc["paths"]


def test_the_documentation_pages_and_their_assets_come_through(http: httpx.Client) -> None:
    for page, asset in (
        ("/docs", "/docs/assets/swagger-ui-bundle.js"),
        ("/redoc", "/docs/assets/redoc.standalone.js"),
    ):
        html = http.get(page)
        assert html.status_code == 200
        assert asset in html.text
        script = http.get(asset)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path", ["/metrics", "/inventory/commands/metrics", "/inventory/queries/metrics"]
)
def test_metrics_come_through_for_admins_only(
    http: httpx.Client, settings: Settings, path: str
) -> None:
    anonymous = http.get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert http.get(path, headers=bearer(settings, "customer")).status_code == 403
    admin = http.get(path, headers=bearer(settings, "admin"))
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain")
    assert "python_info" in admin.text or "# HELP" in admin.text


@pytest.mark.parametrize(
    ("path", "process"),
    [
        ("/health/ready", "queries"),
        ("/inventory/commands/health/ready", "commands"),
        ("/inventory/queries/health/ready", "queries"),
    ],
)
def test_readiness_is_answered_by_the_processes(
    http: httpx.Client, cluster: Cluster, path: str, process: str
) -> None:
    """nginx passes /health/ready on: the answer is the process's, whatever it is."""
    through = http.get(path)
    itself = direct(cluster, process, "/health/ready")
    assert through.status_code == itself.status_code
    assert "no such route" not in through.text  # not nginx's own 404


def test_commands_and_queries_still_come_through(http: httpx.Client, settings: Settings) -> None:
    admin = bearer(settings, "admin")
    body = {"sku": "ng-1", "name": "Pen", "price_cents": 100}
    done = http.post("/inventory/commands/RegisterProduct", json=body, headers=admin)
    assert done.status_code == 200, done.text
    got = http.get("/inventory/queries/ListProducts")
    assert got.status_code == 200
    assert got.headers["x-content-type-options"] == "nosniff"


def test_nginx_answers_its_own_refusals_as_problems(http: httpx.Client) -> None:
    cases = [
        (http.post("/inventory/commands/RegisterProduct", content=b" " * (2 << 20)), 413),
        (http.get("/inventory/queries/ListProducts", headers={"X-Big": "b" * 20_000}), 431),
        (http.get("/inventory/queries/GetProduct?sku=" + "s" * 20_000), 414),
        (http.get("/nowhere"), 404),
        (http.post("/orders/commands/PlaceOrder", json={}), 503),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == status
    assert cases[-1][0].headers["retry-after"] == "1"


def test_a_token_of_8_kib_reaches_the_process(http: httpx.Client) -> None:
    """nginx's header buffers leave the 8 KiB token limit to the processes."""
    got = http.get(
        "/inventory/queries/ListProducts", headers={"Authorization": "Bearer " + "a" * 8000}
    )
    assert got.status_code == 401
    assert "malformed" in got.json()["detail"]


def test_the_console_comes_through_with_its_session_and_origin_checks(
    http: httpx.Client, settings: Settings
) -> None:
    """A query-api copy serves the console of every service; nginx keeps the Host's port, so
    the console's own Origin passes its cross-site check."""
    base = str(http.base_url).rstrip("/")
    link = sign_in_link(settings, base, "ops").removeprefix(base)
    opened = http.get(link)
    assert opened.status_code == 303, opened.text
    assert http.get(link).status_code == 401  # once
    page = http.get("/console", headers={"Accept": "text/html"})
    assert page.status_code == 200
    for service in ("inventory", "orders", "payments"):
        assert f"<td>{service}</td>" in page.text
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"content-type": "application/x-www-form-urlencoded", "Origin": base}
    out = http.post("/console/sign-out", headers=form, content=f"csrf={csrf}")
    assert out.status_code == 303, out.text


def test_a_subscription_streams_through_nginx_unbuffered(http: httpx.Client) -> None:
    with http.stream("GET", "/inventory/subscriptions/ListProducts") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("id: ")  # the first result, before the stream ends
        assert next(lines) == "event: result"
    assert http.get("/inventory/subscriptions/GetProduct").status_code == 422

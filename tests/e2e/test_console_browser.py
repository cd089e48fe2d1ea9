"""The console in a real browser: Debian's chromium, driven by Playwright, against the shop.

Sign in with the link ``bicameral console`` prints, see the three services, watch a lag figure
move while ``bicameral demo load`` runs, open an event and read who did it, sign out; a
customer's token is refused. The overview's screenshot goes to ``$CONSOLE_SCREENSHOT`` when
set (``docs/console.png`` is one), else to the test's temporary folder.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from tests.e2e.conftest import BICAMERAL, Server, child_env, cli

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOP = ("inventory", "orders", "payments")

if os.environ.get("CI"):  # .ci/run installs both: there a missing one is a failure
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    sync_api = importlib.import_module("playwright.sync_api")
else:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True
        )
    sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Returns Debian's chromium under Playwright (never a browser Playwright downloads)."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in_link(server: Server) -> str:
    done = cli(
        "console", "--data-dir", str(server.data_dir), "--url", server.url, "--subject", "ops"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def demo_load(server: Server, log: Path) -> subprocess.Popen[bytes]:
    where = ["--url", server.url, "--data-dir", str(server.data_dir)]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*BICAMERAL, "demo", "load", "--orders", "300", "--concurrency", "8", *where],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )


def lag_figures(page: object) -> list[str]:
    """Returns the overview's lag figures: the total, then each consumer's events behind."""
    total = page.locator("#lag-total").inner_text()  # type: ignore[attr-defined]
    cells = page.locator('#consumers td[data-field="lag"]').all_inner_texts()  # type: ignore[attr-defined]
    return [total, *cells]


def test_an_admin_watches_the_shop_live_and_signs_out(
    server: Server, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    problems: list[str] = []  # script errors and CSP violations would show here
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(sign_in_link(server))
    assert page.url == f"{server.url}/console"
    services = page.locator("#services").inner_text()
    for name in SHOP:
        assert name in services

    page.wait_for_function("document.querySelectorAll('#lag-chart polyline').length > 0")
    before = lag_figures(page)
    load = demo_load(server, tmp_path / "demo.log")
    try:
        deadline = time.monotonic() + 180
        seen = {tuple(before)}
        while len(seen) == 1 and time.monotonic() < deadline and load.poll() is None:
            page.wait_for_timeout(200)
            seen.add(tuple(lag_figures(page)))
        assert len(seen) > 1, f"no lag figure moved during the load: {before}"
        assert load.wait(240) == 0, (tmp_path / "demo.log").read_text()
    finally:
        if load.poll() is None:
            load.kill()
    page.wait_for_timeout(3000)  # the chart draws the lag coming back down
    shot = Path(os.environ.get("CONSOLE_SCREENSHOT") or tmp_path / "console.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.click("nav >> text=Events")
    page.fill('input[name="type"]', "OrderPlaced")
    page.click("form.filters button")
    page.locator("#events tbody a").first.click()
    page.wait_for_url("**/console/events/orders/*")
    principal = page.locator('[data-fact="principal"] dd').inner_text()
    assert principal not in ("", "-")
    assert principal in page.locator("#metadata").inner_text()

    assert problems == []
    page.click("#sign-out")
    page.wait_for_url("**/console/sign-in?signed-out=1")
    page.goto(f"{server.url}/console")
    assert "/console/sign-in" in page.url
    page.close()


def test_a_customer_token_is_refused_the_console(server: Server, browser: object) -> None:
    token = issue_token(embedded_secret(server.data_dir), subject="alice", roles=["customer"])
    context = browser.new_context(  # type: ignore[attr-defined]
        extra_http_headers={"Authorization": f"Bearer {token}"}
    )
    try:
        answer = context.new_page().goto(f"{server.url}/console")
        assert answer.status == 403
        assert answer.headers["content-type"] == "application/problem+json"
    finally:
        context.close()
    assert httpx.get(f"{server.url}/console/api/overview", timeout=30).status_code == 401


def test_a_link_followed_from_another_site_signs_in_too(server: Server, browser: object) -> None:
    """localhost is another site than 127.0.0.1: the SameSite=Strict cookie is not sent on
    the redirect that follows the link, and the sign-in page goes on from this site."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://localhost:{server.port}/console/sign-in")
    page.evaluate(
        """(href) => {
            const a = document.createElement("a");
            a.href = href; a.id = "elsewhere"; a.textContent = "sign in";
            document.body.appendChild(a);
        }""",
        sign_in_link(server),
    )
    page.click("#elsewhere")
    page.wait_for_url(f"{server.url}/console")
    assert page.locator("h1").inner_text() == "Overview"
    page.close()

"""End-to-end fixtures: a real `memex serve` (with its in-process worker) on a fresh database, and Chromium.

The browser is Debian's chromium driven by Playwright. Without it the tests skip locally and fail on CI
(CI=true), so a CI image that lost its browser cannot pass quietly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import clone_database, drop_database, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct-horse-battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Kept with the tests' output (CI keeps test-results/), to be looked at.
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
# axe-core, installed by scripts/test-parts (`npm ci` in tests/e2e/a11y), checks every photographed page.
AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
# What fails a page: barriers for some people (axe's "serious") or for everyone using a given aid ("critical").
BLOCKING_IMPACTS = ("serious", "critical")
# The first start loads the embedding model and migrates; the machines running this are small and shared.
STARTUP_SECONDS = 180


@dataclass(frozen=True)
class Server:
    url: str
    admin_email: str
    admin_password: str
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"memex serve exited with status {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"memex serve was not ready after {STARTUP_SECONDS} s:\n{_tail(log)}")


@contextmanager
def serving(
    pg_server_url: str, tmp_path_factory: pytest.TempPathFactory, extra_env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """`memex serve` on a free loopback port and a fresh database, its first admin bootstrapped from the environment."""
    database_url = clone_database(pg_server_url)
    workdir = tmp_path_factory.mktemp("e2e-server")
    log = workdir / "serve.log"
    port = _free_port()
    env = {
        **os.environ,
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(workdir / "data"),
        "MEMEX_ADMIN_EMAIL": ADMIN_EMAIL,
        "MEMEX_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MEMEX_LOG_FORMAT": "console",
        "MEMEX_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    # The `memex` entry point of this interpreter (`-m memex.cli.main` would import main.py twice).
    entry = "from memex.cli.main import main; main()"
    command = [sys.executable, "-c", entry, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process, log)
        yield Server(url=url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drop_database(pg_server_url, database_url)


@pytest.fixture(scope="module")
def server(pg_server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`memex serve` with its default settings (no language model: answers are extractive)."""
    with serving(pg_server_url, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless; skipped locally and failed on CI when it is not installed."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def browsing(browser: Browser, server: Server, *, color_scheme: Literal["light", "dark"] = "light") -> Iterator[Page]:
    """A fresh browser context (no cookies) on `server` at 1280x800; a JavaScript error anywhere fails the test."""
    context = browser.new_context(base_url=server.url, viewport=DESKTOP, color_scheme=color_scheme)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A page of a fresh browser context on the default server (see `browsing`)."""
    with browsing(browser, server) as opened:
        yield opened


# The innermost elements reaching past the right edge: what to fix when a page scrolls sideways.
_TOO_WIDE = """() => {
  const edge = document.documentElement.clientWidth + 0.5;
  const past = (e) => e.getBoundingClientRect().right > edge;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? `#${e.id}` : "") +
    [...e.classList].map((c) => `.${c}`).join("");
  return [...document.body.querySelectorAll("*")]
    .filter((e) => past(e) && ![...e.children].some(past)).slice(0, 5).map(name);
}"""


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it stands, one line each (rule, help, where)."""
    if not AXE.exists():
        require("axe-core", "run scripts/test-parts (it runs `npm ci` in tests/e2e/a11y)")
    # Evaluated rather than added as a <script>: the pages' Content-Security-Policy refuses inline scripts, and
    # the check must not need that policy loosened.
    page.evaluate(AXE.read_text())
    results = page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    found = []
    for violation in results["violations"]:
        if violation["impact"] in BLOCKING_IMPACTS:
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — at {targets}")
    return found


def screenshots(page: Page, name: str) -> None:
    """Photograph the page as it stands at desktop and at phone width (`<name>-1280x800.png`, `<name>-390x844.png`)
    and check it at both.

    At phone width the page must fit: nothing may make it scroll sideways. At either width axe-core must find no
    serious or critical accessibility problem. The viewport is put back afterwards.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or DESKTOP
    try:
        for size in (DESKTOP, PHONE):
            page.set_viewport_size(size)
            page.wait_for_timeout(100)  # one layout pass after the resize
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                culprits = ", ".join(page.evaluate(_TOO_WIDE))
                pytest.fail(f"{name} scrolls sideways by {overflow} px at {size['width']} px wide: {culprits}")
            problems = accessibility_violations(page)
            assert not problems, f"{name} at {size['width']} px: " + "\n".join(problems)
    finally:
        page.set_viewport_size(before)

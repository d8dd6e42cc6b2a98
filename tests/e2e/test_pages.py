"""Every page as a person meets it: as the admin and as a plain user, in light and dark, at desktop and phone
width, photographed and checked with axe-core (see `screenshots`); the first steps, empty states and 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, browsing, screenshots

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
INDEXING_SECONDS = 180
PLAIN_EMAIL = "reader@example.com"


@dataclass(frozen=True)
class Person:
    role: Literal["admin", "plain"]
    email: str
    password: str
    kb_id: str


@contextmanager
def api_client(server: Server, email: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in as a browser is: session cookie and CSRF header."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/api/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


def personal_kb_with_a_document(server: Server, email: str, password: str) -> str:
    """The person's personal KB, once sample.md in it is indexed."""
    with api_client(server, email, password) as client:
        me = client.get("/api/auth/me").json()["user"]["id"]
        kb = next(kb for kb in client.get("/api/kbs").json() if kb["is_personal"] and kb["owner_id"] == me)["id"]
        files = [("files", ("sample.md", (DATA / "sample.md").read_bytes()))]
        assert client.post(f"/api/kbs/{kb}/documents", files=files).status_code == 202
        deadline = time.monotonic() + INDEXING_SECONDS
        while time.monotonic() < deadline:
            docs = client.get(f"/api/kbs/{kb}/documents").json()["documents"]
            if docs and all(d["status"] == "indexed" for d in docs):
                return str(kb)
            assert not [d for d in docs if d["status"] == "failed"], docs
            time.sleep(0.5)
    pytest.fail(f"sample.md was not indexed after {INDEXING_SECONDS} s")


def new_user(server: Server, email: str) -> str:
    """Create a plain user as the admin; their generated password."""
    with api_client(server, server.admin_email, server.admin_password) as admin:
        created = admin.post("/api/admin/users", json={"email": email})
        assert created.status_code == 201, created.text
        return str(created.json()["password"])


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, Person]:
    plain_password = new_user(server, PLAIN_EMAIL)
    admin_kb = personal_kb_with_a_document(server, server.admin_email, server.admin_password)
    plain_kb = personal_kb_with_a_document(server, PLAIN_EMAIL, plain_password)
    return {
        "admin": Person("admin", server.admin_email, server.admin_password, admin_kb),
        "plain": Person("plain", PLAIN_EMAIL, plain_password, plain_kb),
    }


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#user-email")).to_have_text(email)


def visit(page: Page, path: str, ready: str) -> None:
    """Open a page and wait until what `ready` selects is visible (the page has loaded its data)."""
    page.goto(path)
    expect(page.locator(ready).first).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("role", ["admin", "plain"])
def test_every_page_fits_and_passes_the_accessibility_check(
    browser: Browser, server: Server, people: dict[str, Person], role: str, scheme: Literal["light", "dark"]
) -> None:
    person = people[role]
    with browsing(browser, server, color_scheme=scheme) as page:
        shot = f"{role}-{scheme}"
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")

        page.goto("/login")
        expect(page.get_by_label("Email")).to_be_visible()
        screenshots(page, f"login-{scheme}")
        log_in(page, person.email, person.password)
        expect(page.locator("#welcome")).to_be_hidden()  # they have documents: no first steps
        screenshots(page, f"search-{shot}")

        visit(page, "/?q=key+rotation", "#results .result")
        screenshots(page, f"search-results-{shot}")
        visit(page, "/?q=zebrafish+xylophone&mode=keyword", "#search-status")
        expect(page.locator("#search-status")).to_contain_text("No results for “zebrafish xylophone”")
        screenshots(page, f"search-nothing-found-{shot}")

        visit(page, "/kbs", "#kb-table")
        screenshots(page, f"kbs-{shot}")
        visit(page, f"/kbs/{person.kb_id}", "#docs-table tr[data-status=indexed]")
        expect(page.locator("#members")).to_be_visible()
        screenshots(page, f"kb-{shot}")

        visit(page, "/chat", ".composer")
        screenshots(page, f"chat-{shot}")
        visit(page, "/keys", "#key-create-title")
        screenshots(page, f"keys-{shot}")
        page.locator("#user-email").click()  # the email in the frame leads to the account page
        expect(page.locator("#account-email")).to_have_text(person.email)
        screenshots(page, f"account-{shot}")

        page.goto("/admin")
        if role == "admin":
            expect(page.locator("#users-table tbody tr").first).to_be_visible()
        else:
            expect(page.locator("#flash")).to_have_text("Only administrators can see this page.")
        screenshots(page, f"admin-{shot}")

        visit(page, "/docs", ".swagger-ui .info .title")
        screenshots(page, f"docs-{shot}")
        page.goto("/no/such/page")
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        screenshots(page, f"404-{shot}")


def test_first_login_says_what_memex_does_and_takes_files_there(page: Page, server: Server) -> None:
    password = new_user(server, "newcomer@example.com")
    log_in(page, "newcomer@example.com", password)
    welcome = page.locator("#welcome")
    expect(welcome.get_by_role("heading", name="Welcome to Memex")).to_be_visible()
    expect(welcome).to_contain_text("answers questions about them in chat")
    screenshots(page, "welcome")

    with page.expect_file_chooser() as chooser:
        welcome.get_by_role("button", name="Choose files").click()
    chooser.value.set_files(str(DATA / "sample.md"))
    status = page.locator("#welcome-status")
    expect(status).to_contain_text("1 file added")
    status.get_by_role("link", name="your personal knowledge base").click()
    expect(page.locator("#docs-table tbody tr")).to_have_count(1)
    expect(page.locator(".doc-name")).to_have_text("Memex Operations Guide")


def test_an_empty_knowledge_base_says_what_to_do_next(page: Page, server: Server) -> None:
    log_in(page, server.admin_email, server.admin_password)
    page.goto("/kbs")
    page.get_by_label("Name").fill("Empty shelf")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#kb-title")).to_have_text("Empty shelf")
    expect(page.locator("#docs-empty")).to_have_text(
        "No documents yet. Drag files onto the box above or choose them: once indexed, they can be searched and"
        " asked about in chat."
    )
    expect(page.get_by_role("button", name="Choose files")).to_be_visible()
    screenshots(page, "kb-empty")


def test_a_missing_page_is_a_page_for_browsers_and_json_for_the_api(page: Page, server: Server) -> None:
    response = page.goto("/kbs/nothing/here")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.locator("main")).to_contain_text("There is no page at /kbs/nothing/here.")
    page.get_by_role("link", name="Go to search").click()
    expect(page).to_have_url(f"{server.url}/login?next=%2F")

    for path in ("/api/no-such-thing", "/v1/no-such-thing"):
        api = httpx.get(f"{server.url}{path}", headers={"Accept": "text/html,*/*"})
        assert api.status_code == 404
        assert api.json()["detail"] == "Not Found"
    plain = httpx.get(f"{server.url}/no/such/page")
    assert plain.status_code == 404 and plain.json() == {"detail": "Not Found"}

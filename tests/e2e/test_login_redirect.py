"""The login page's ?next= in a real browser: after logging in, the usual open-redirect tricks land on the home
page of this server, never on another site."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow

# `next` as the page reads it (decoded from the query). Browsers drop tabs and newlines from URLs and read "\" as
# "/", so several of these become "//evil.example", a link to another site, if followed as they are.
OUTSIDE = [
    "/\t/evil.example/phish",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "https://evil.example",
    "http:evil.example",
    "%2F%2Fevil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/%09/evil.example",  # stays a path here: "%09" is text once decoded
    "/ /evil.example",
    " //evil.example",
    "/\u3000/evil.example",
]


def test_next_never_leaves_the_site(page: Page, server: Server) -> None:
    # The reported link, followed through the login form.
    page.goto("/login?next=/%09/evil.example/phish")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#user-email")).to_have_text(server.admin_email)

    # Logged in, the login page goes straight on to `next`: each trick, encoded as a link would carry it.
    for value in OUTSIDE:
        page.goto("/login?next=" + quote(value, safe=""))
        if value.startswith("/%09"):
            expect(page).to_have_url(f"{server.url}/%09/evil.example")  # a page of this server (not found)
        else:
            expect(page).to_have_url(f"{server.url}/")
        assert page.evaluate("location.origin") == server.url, value

    # A page of this server is followed, query included; one made of dot segments stays on this server too.
    page.goto("/login?next=" + quote("/keys?tab=mine", safe=""))
    expect(page).to_have_url(f"{server.url}/keys?tab=mine")
    page.goto("/login?next=" + quote("/.//evil.example", safe=""))
    expect(page).to_have_url(f"{server.url}//evil.example")
    assert page.evaluate("location.origin") == server.url

"""The search page as a person uses it: nothing relevant is said so, passages are grouped under their document,
a file in two KBs is one entry naming both, more results page in, and the keyboard and the URL drive it."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshots
from tests.e2e.test_pages import api_client, log_in

pytestmark = pytest.mark.slow

INDEXING_SECONDS = 180
NOTES = 24  # more relevant passages than one page of 20

GUIDE = "\n\n".join(
    [
        "# Key rotation guide",
        "## Why keys are rotated\n\nSigning keys are rotated every ninety days so that a leaked key stops "
        "working soon. Key rotation limits how long a stolen credential is useful.",
        "## How to rotate a key\n\nTo rotate a signing key, create the new key, deploy it beside the old one, "
        "then retire the old key once every service verifies with the new key.",
        "## Rotation schedule\n\nThe rotation schedule lists each signing key, its owner and the date its "
        "next key rotation is due.",
    ]
)


def note(n: int) -> bytes:
    return (
        f"# Rotation note {n}\n\nKey rotation note {n}: the signing key of service {n} was rotated "
        f"on day {n} and the old signing key retired.\n"
    ).encode()


def wait_indexed(client: httpx.Client, kb: str, count: int) -> None:
    deadline = time.monotonic() + INDEXING_SECONDS
    while time.monotonic() < deadline:
        docs = client.get(f"/api/kbs/{kb}/documents", params={"limit": 100}).json()["documents"]
        assert not [d for d in docs if d["status"] == "failed"], docs
        if len(docs) == count and all(d["status"] == "indexed" for d in docs):
            return
        time.sleep(0.5)
    pytest.fail(f"{count} documents were not indexed after {INDEXING_SECONDS} s")


@pytest.fixture(scope="module")
def handbook(server: Server) -> None:
    """Two KBs: Handbook (the guide and many short notes) and Archive (the same guide, byte for byte)."""
    with api_client(server, server.admin_email, server.admin_password) as client:
        kbs = {}
        for name in ("Handbook", "Archive"):
            created = client.post("/api/kbs", json={"name": name})
            assert created.status_code == 201, created.text
            kbs[name] = created.json()["id"]
        files = [("files", ("rotation-guide.md", GUIDE.encode()))]
        files += [("files", (f"note-{n:02}.md", note(n))) for n in range(NOTES)]
        assert client.post(f"/api/kbs/{kbs['Handbook']}/documents", files=files).status_code == 202
        guide = [("files", ("rotation-guide.md", GUIDE.encode()))]
        assert client.post(f"/api/kbs/{kbs['Archive']}/documents", files=guide).status_code == 202
        wait_indexed(client, kbs["Handbook"], NOTES + 1)
        wait_indexed(client, kbs["Archive"], 1)


def results(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#results > li.result")


def test_search_groups_pages_and_says_when_nothing_is_relevant(page: Page, server: Server, handbook: None) -> None:
    log_in(page, server.admin_email, server.admin_password)

    # Gibberish: no page of unrelated passages, a sentence saying nothing is relevant.
    page.goto("/?q=xyzzy+qwertyuiop")
    expect(page.locator("#search-status")).to_contain_text("Nothing relevant to “xyzzy qwertyuiop”")
    expect(results(page)).to_have_count(0)
    expect(page.locator("#more-results")).to_be_hidden()
    screenshots(page, "search-nothing-relevant")

    # `/` focuses the query from anywhere on the page; Enter runs the search.
    page.locator("h1").click()
    page.keyboard.press("/")
    box = page.get_by_label("Query")
    expect(box).to_be_focused()
    box.fill("how to rotate a signing key")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/\?q=how\+to\+rotate\+a\+signing\+key&mode=hybrid$"))
    expect(results(page).first).to_be_visible()

    # The guide, in two KBs, is one entry naming both; its other passages fold under it.
    guide = results(page).filter(has_text="Key rotation guide")
    expect(guide).to_have_count(1)
    expect(guide.locator(".result-foot .badge")).to_have_count(2)
    badges = sorted(guide.locator(".result-foot .badge").all_inner_texts())
    assert badges == ["Archive", "Handbook"], badges
    toggle = guide.get_by_role("button", name=re.compile(r"^More from this document \(\d+\)$"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(guide.locator(".more-passages")).to_be_hidden()
    toggle.click()
    expect(guide.locator(".more-passages")).to_be_visible()
    expect(guide.locator(".more-passages .passage").first).to_be_visible()
    assert guide.locator(".more-passages .passage").count() >= 1
    # People see passages, not the fusion arithmetic.
    assert not re.search(r"score|\b0\.\d{3,}", page.locator("#results").inner_text(), re.IGNORECASE)
    screenshots(page, "search-grouped")

    # One page of passages, then more on request; the URL keeps the page and Back returns to the first.
    first_page = results(page).count()
    more = page.get_by_role("button", name="More results")
    expect(more).to_be_visible()
    more.click()
    expect(page).to_have_url(re.compile(r"&page=2$"))
    expect(results(page)).not_to_have_count(first_page)
    assert results(page).count() > first_page
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"page=2"))
    expect(results(page)).to_have_count(first_page)

    # Changing a filter runs the search again; Back restores exactly what the URL says.
    page.get_by_label("Mode").select_option("keyword")
    expect(page).to_have_url(re.compile(r"mode=keyword"))
    expect(page.locator("#search-status")).to_contain_text("for “how to rotate a signing key”")
    page.go_back()
    expect(page).to_have_url(re.compile(r"mode=hybrid$"))
    expect(page.get_by_label("Mode")).to_have_value("hybrid")
    expect(box).to_have_value("how to rotate a signing key")

    # Esc clears the query and the results.
    box.focus()
    box.press("Escape")
    expect(box).to_have_value("")
    expect(results(page)).to_have_count(0)
    expect(page).to_have_url(f"{server.url}/")

"""The search page as a person uses it: nothing relevant is said so, passages are grouped under their document,
a file in two KBs is one entry naming both, more results page in, and the keyboard and the URL drive it; a
passage expands in place, and a result opens its document inside Memex at the passage."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import DATA
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


# Everything a hostile HTML file could try; the document page must show its text and nothing else.
HOSTILE_HTML = b"""<html><head><title>Incident report</title><script>window.pwned = 1</script>
<style>body { display: none }</style></head><body>
<h1>Incident report</h1>
<p onclick="window.pwned = 2">The outage began at noon when the cache expired. Requests then went straight to the
database, which slowed down within a minute and stopped answering within five. The on-call engineer saw the alerts
at 12:04 and began to shed load at 12:10. By 12:30 the cache had been warmed again from a snapshot, and traffic
returned to normal over the next hour. Nobody lost data, but many people could not log in for most of that time.</p>
<img src="x.png" onerror="window.pwned = 3">
<p><a href="javascript:window.pwned = 4">Click here</a> or read <a href="https://example.com/postmortem">the postmortem</a>.</p>
<iframe src="/"></iframe>
<h2>Timeline</h2>
<p>The pager fired twice before anyone answered it.</p>
</body></html>
"""

# Ways past a sanitizer that checks strings rather than parsed URLs and elements.
HOSTILE_FRAGMENTS = """
<a href=" javascript:alert(1)">a</a> <a href="JaVaScRiPt:alert(1)">b</a> <a href="&#106;avascript:alert(1)">c</a>
<a href="java&#x09;script:alert(1)">d</a> <a href="data:text/html,<script>alert(1)</script>">e</a>
<a href="https://example.com/ok" onclick="x()" style="color: red">ok</a> <a href="/api/auth/logout">local</a>
<svg><script>alert(1)</script><a href="javascript:alert(1)">in svg</a></svg><math><mi>in math</mi></math>
<form action="/api/auth/logout" method="post"><button formaction="/x">Go</button><input value="v"></form>
<div style="position: fixed" id="flash" class="alert">styled</div>
<table><tr><td colspan="2" onmouseover="x()">cell</td></tr></table>
<details open ontoggle="alert(1)"><summary>summary</summary>inside</details>
<object data="x"></object><embed src="x"><base href="https://evil.example/">
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<noscript><p>hidden</p></noscript><template><p>template</p></template>
"""


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


def test_a_result_opens_its_document_at_the_passage(page: Page, server: Server, handbook: None) -> None:
    with api_client(server, server.admin_email, server.admin_password) as client:
        kb = client.post("/api/kbs", json={"name": "Reports"}).json()["id"]
        body = [
            ("files", ("sample.pdf", (DATA / "sample.pdf").read_bytes())),
            ("files", ("incident.html", HOSTILE_HTML)),
        ]
        ids = {d["name"]: d["id"] for d in client.post(f"/api/kbs/{kb}/documents", files=body).json()["documents"]}
        wait_indexed(client, kb, 2)
        pdf = client.get(f"/api/documents/{ids['sample.pdf']}/text").json()
    log_in(page, server.admin_email, server.admin_password)

    # A result's title opens the Markdown document, rendered, at that passage; Search leads back to the results.
    page.goto("/?q=how+to+rotate+a+signing+key")
    guide = results(page).filter(has_text="Key rotation guide")
    guide.get_by_role("link", name="Key rotation guide").click()
    expect(page).to_have_url(re.compile(r"/documents/[0-9a-f-]{36}\?chunk=\d+$"))
    expect(page.locator("h1")).to_have_text("Key rotation guide")
    expect(page.locator("#doc-body").get_by_role("heading", name="How to rotate a key")).to_be_visible()
    passage = page.locator("#doc-body .passage-block mark.passage-mark")
    expect(passage).to_have_count(1)
    expect(passage).to_contain_text("To rotate a signing key, create the new key")
    expect(passage).to_be_in_viewport()
    expect(page.locator("#doc-details")).to_contain_text("rotation-guide.md")
    expect(page.get_by_role("link", name=re.compile(r"^Download rotation-guide\.md"))).to_have_attribute(
        "href", re.compile(r"^/api/documents/[0-9a-f-]{36}/file$")
    )
    screenshots(page, "document-markdown")
    page.locator("#doc-back").click()
    expect(page).to_have_url(re.compile(r"/\?q=how\+to\+rotate"))

    # A long passage expands in place; HTML opens without its scripts, handlers, frames, images or javascript: links.
    page.goto("/?q=outage+when+the+cache+expired")
    report = results(page).filter(has_text="Incident report")
    expand = report.locator(".passage").first.locator("button.show-full")
    expect(expand).to_have_text("Show full passage")
    expand.click()
    expect(expand).to_have_attribute("aria-expanded", "true")
    expect(expand).to_have_text("Show less")
    expect(report.locator(".full-passage").first).to_contain_text("Nobody lost data")
    expect(report.locator(".snippet").first).to_be_hidden()
    screenshots(page, "search-full-passage")
    report.get_by_role("link", name="Incident report").click()
    body = page.locator("#doc-body")
    expect(body.locator("mark.passage-mark")).to_have_count(2)  # the two paragraphs of that passage
    expect(body.locator("mark.passage-mark").first).to_contain_text("The outage began at noon")
    expect(body.locator("mark.passage-mark").first).to_be_in_viewport()
    expect(body).to_contain_text("The pager fired twice")
    assert body.locator("script, style, iframe, img, [onclick], [onerror], [style]").count() == 0
    expect(body.get_by_role("link", name="Click here")).to_have_count(0)
    expect(body.get_by_text("Click here")).to_be_visible()
    expect(body.get_by_role("link", name="the postmortem")).to_have_attribute("href", "https://example.com/postmortem")
    assert page.evaluate("window.pwned") is None
    screenshots(page, "document-html")
    made = page.evaluate(
        """async (source) => {
            const { renderHtml } = await import("/static/safehtml.js");
            const root = document.createElement("div");
            root.append(renderHtml(source));
            const all = [...root.querySelectorAll("*")];
            return {
                tags: [...new Set(all.map((e) => e.localName))],
                links: [...root.querySelectorAll("[href]")].map((a) => a.getAttribute("href")),
                attributes: [...new Set(all.flatMap((e) => e.getAttributeNames()))],
                text: root.textContent,
            };
        }""",
        HOSTILE_FRAGMENTS,
    )
    assert set(made["tags"]) <= {"a", "span", "div", "table", "tbody", "tr", "td"}, made["tags"]
    assert made["links"] == ["https://example.com/ok"]
    assert set(made["attributes"]) <= {"href", "target", "rel", "class", "colspan"}, made["attributes"]
    assert "inside" in made["text"] and "cell" in made["text"]
    for dropped in ("alert(1)", "hidden", "template", "in svg", "in math", "Go"):
        assert dropped not in made["text"], dropped

    # A PDF: every page's text, the passage's page in view and the passage marked.
    rehearsed = next(p for p in pdf["passages"] if "rehearsed" in p["text"])
    page.goto(f"/documents/{ids['sample.pdf']}?chunk={rehearsed['id']}")
    mark = page.locator(f"#{rehearsed['location'].replace(' ', '-')} mark.passage-mark")
    expect(mark).to_contain_text("rehearsed on a scratch database")
    expect(mark).to_be_in_viewport()
    expect(page.locator(".doc-page")).to_have_count(len({p["location"] for p in pdf["passages"]}))
    screenshots(page, "document-pdf")

    # A passage no longer in the document still shows the document; an unknown document says so.
    page.goto(f"/documents/{ids['sample.pdf']}?chunk=999999999")
    expect(page.locator("#doc-status")).to_contain_text("no longer in this document")
    expect(page.locator(".doc-page").first).to_be_visible()
    page.goto(f"/documents/{uuid.uuid4()}")
    expect(page.locator("h1")).to_have_text("Document not found")
    expect(page.locator("#doc-not-found")).to_contain_text("is in a knowledge base you cannot read")
    screenshots(page, "document-not-found")

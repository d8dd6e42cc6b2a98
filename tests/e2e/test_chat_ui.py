"""The chat page end to end: a real server (extractive, then with an OpenAI-compatible double), a real browser."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import fail, reply
from tests.e2e.conftest import Server, browsing, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "test-results"
SCREENSHOT = ROOT / "docs" / "screenshot-chat.png"
INDEXING_SECONDS = 180
UUID = r"[0-9a-f-]{36}"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = '<script>alert("x")</script>'
NOTES = f"""Badge reader notes

The badge reader logs every entry {IMG} and keeps the log for ninety days.
The audit script {SCRIPT} is run weekly by the security team.
Report a lost badge through [the desk form](javascript:alert(1)) within one day.
"""
HOSTILE_MARKDOWN = f"""# Title {IMG}

**{SCRIPT}** and *<iframe src=javascript:alert(1)>* and `<svg onload=alert(1)>`
[a link](javascript:alert(1)) [b](data:text/html,<script>alert(1)</script>) [ok](https://example.com/ok)
<a href="javascript:alert(1)">raw</a> ![img](x onerror=alert(1))

- <style>body {{ display: none }}</style>
> <object data=x></object>

```html" onmouseover="alert(1)
<script>alert(1)</script>
```
"""


@contextmanager
def api_client(server: Server, email: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in as a browser is: session cookie and CSRF header."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/api/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


def add_documents(server: Server, files: dict[str, bytes]) -> None:
    """Upload files to the admin's personal knowledge base and wait until they are indexed."""
    with api_client(server, server.admin_email, server.admin_password) as client:
        me = client.get("/api/auth/me").json()["user"]["id"]
        # Admins see every user's personal KB: take the admin's own.
        kb = next(kb for kb in client.get("/api/kbs").json() if kb["is_personal"] and kb["owner_id"] == me)["id"]
        upload = client.post(f"/api/kbs/{kb}/documents", files=[("files", item) for item in files.items()])
        assert upload.status_code == 202, upload.text
        deadline = time.monotonic() + INDEXING_SECONDS
        while time.monotonic() < deadline:
            docs = client.get(f"/api/kbs/{kb}/documents").json()["documents"]
            assert not [d for d in docs if d["status"] == "failed"], docs
            if len(docs) == len(files) and all(d["status"] == "indexed" for d in docs):
                return
            time.sleep(0.5)
    pytest.fail(f"the documents were not indexed after {INDEXING_SECONDS} s")


@pytest.fixture(scope="module")
def documents(server: Server) -> None:
    add_documents(server, {"sample.md": (DATA / "sample.md").read_bytes(), "notes.txt": NOTES.encode()})


@pytest.fixture(scope="module")
def llm_server(
    pg_server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory, openai_server: OpenAIDouble
) -> Iterator[Server]:
    """`memex serve` answering with the OpenAI double's model, without retries (a failure shows at once)."""
    env = {
        "MEMEX_LLM_PROVIDER": "openai",
        "MEMEX_LLM_BASE_URL": openai_server.base_url,
        "MEMEX_LLM_MODEL": "test-model",
        "MEMEX_LLM_API_KEY": "test-key",
        "MEMEX_LLM_MAX_RETRIES": "0",
    }
    with serving(pg_server_url, tmp_path_factory, env) as running:
        add_documents(running, {"sample.md": (DATA / "sample.md").read_bytes()})
        yield running


@pytest.fixture
def llm_page(browser: Browser, llm_server: Server) -> Iterator[Page]:
    with browsing(browser, llm_server) as opened:
        yield opened


def log_in(page: Page, email: str, password: str, *, then: str = "/chat") -> None:
    page.goto(f"/login?next={then}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#user-email")).to_have_text(email)


def ask(page: Page, question: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(question)
    box.press("Enter")


def last_answer(page: Page) -> Locator:
    return page.locator("#messages .message.assistant").last


def wait_for_answer(page: Page) -> None:
    expect(last_answer(page).locator(".message-meta, .notice").first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_empty_states_say_what_to_do(page: Page, server: Server) -> None:
    with api_client(server, server.admin_email, server.admin_password) as admin:
        created = admin.post("/api/admin/users", json={"email": "newcomer@example.com"})
        assert created.status_code == 201, created.text
    log_in(page, "newcomer@example.com", created.json()["password"])
    expect(page.get_by_role("heading", name="Ask a question about your documents")).to_be_visible()
    expect(page.locator("#conversations-empty")).to_have_text("No conversations yet.")
    notice = page.locator("#no-documents")
    expect(notice).to_contain_text("You have no documents yet.")
    expect(notice.get_by_role("link")).to_have_attribute("href", "/kbs")
    expect(page.get_by_role("link", name="Chat")).to_have_attribute("aria-current", "page")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()

    # A question the server refuses before answering comes back to the box, with the reason.
    ask(page, "why " * 300)
    expect(page.locator("#composer-error")).to_have_text(
        "The message is 1199 characters long; the limit is 1000: shorten it and ask again."
    )
    expect(box).to_have_value(("why " * 300).strip())
    expect(page.locator("#messages .message")).to_have_count(0)


def test_ask_cite_follow_up_rename_reload_and_delete(page: Page, server: Server, documents: None) -> None:
    log_in(page, server.admin_email, server.admin_password)
    expect(page.locator("#no-documents")).to_be_hidden()

    # Asked of one knowledge base, the conversation keeps it.
    me = page.request.get("/api/auth/me").json()["user"]
    kbs = page.request.get("/api/kbs").json()
    personal = next(kb["id"] for kb in kbs if kb["is_personal"] and kb["owner_id"] == me["id"])
    page.get_by_label("Knowledge base").select_option(personal)

    # An extractive answer streams in, with numbered citations and the model and timings in small print.
    ask(page, "How often are API keys rotated?")
    wait_for_answer(page)
    answer = last_answer(page)
    expect(answer.locator(".answer")).to_contain_text("No language model is configured")
    expect(answer.locator(".answer")).to_contain_text("API keys are rotated every 90 days.")
    expect(answer.locator(".message-meta")).to_contain_text(re.compile(r"extractive · retrieval \d+ ms"))
    expect(page).to_have_url(re.compile(rf"/chat\?c={UUID}$"))
    conversation_url = page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("How often are API keys rotated?")
    current = page.locator("#conversation-list a[aria-current=page]")
    expect(current).to_contain_text("How often are API keys rotated?")
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    RESULTS.mkdir(exist_ok=True)
    page.screenshot(path=RESULTS / "chat-desktop.png")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(RESULTS / "chat-desktop.png", SCREENSHOT)

    # The answer copies as its Markdown text.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.get_by_role("button", name="Copy answer").click()
    expect(answer.get_by_role("button", name="Copy answer")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").startswith("No language model is configured")

    # A citation opens its passage, with where it comes from and the original file to download.
    citation = answer.locator(".answer button.cite").first
    expect(citation).to_have_attribute("aria-label", re.compile(r"^Source 1: Memex Operations Guide"))
    citation.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("[1] Memex Operations Guide")
    expect(dialog).to_contain_text("sample.md")
    expect(dialog).to_contain_text("Key rotation")
    expect(dialog.locator("blockquote mark")).not_to_be_empty()
    download = dialog.get_by_role("link", name=re.compile(r"^Download original"))
    expect(download).to_have_attribute("href", re.compile(rf"^/api/documents/{UUID}/file$"))
    original = page.request.get(download.get_attribute("href") or "")
    assert original.ok
    assert original.body() == (DATA / "sample.md").read_bytes()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(citation).to_be_focused()

    # A follow-up stays in the conversation.
    ask(page, "How long are backups kept?")
    expect(page.locator("#messages .message")).to_have_count(4)
    wait_for_answer(page)
    expect(last_answer(page).locator(".answer")).to_contain_text("30 days")
    expect(page).to_have_url(conversation_url)

    page.get_by_role("button", name="Rename").click()
    title = page.get_by_role("textbox", name="Conversation title")
    expect(title).to_be_focused()
    title.fill("Key rotation and backups")
    title.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Key rotation and backups")
    expect(current).to_contain_text("Key rotation and backups")

    # A reload shows the stored conversation the same way, citations included.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Key rotation and backups")
    expect(page.locator("#messages .message")).to_have_count(4)
    expect(page.locator("#messages .answer button.cite").first).to_be_visible()
    expect(page.locator("#messages .sources").first).to_contain_text("Memex Operations Guide")
    expect(page.get_by_label("Knowledge base")).to_have_value(personal)
    page.screenshot(path=RESULTS / "chat-desktop-reloaded.png")

    # At phone width the conversation list folds behind a toggle.
    page.set_viewport_size({"width": 390, "height": 844})
    toggle = page.get_by_role("button", name="Conversations (1)")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(current).to_be_hidden()
    page.screenshot(path=RESULTS / "chat-phone.png")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(current).to_be_visible()
    page.screenshot(path=RESULTS / "chat-phone-conversations.png")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("“Key rotation and backups” and all its messages will be deleted.")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")
    expect(page).to_have_url(f"{server.url}/chat")
    expect(page.locator("#conversations-empty")).to_be_visible()
    expect(page.locator("#messages .message")).to_have_count(0)
    assert page.request.get("/api/conversations").json() == {"conversations": []}


def test_documents_and_questions_cannot_inject_html(page: Page, server: Server, documents: None) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, server.admin_email, server.admin_password)
    question = f"What does the badge reader log {IMG} and who runs the audit script?"
    ask(page, question)
    wait_for_answer(page)
    answer = last_answer(page).locator(".answer")
    expect(answer).to_contain_text(IMG)
    expect(answer).to_contain_text(SCRIPT)
    expect(page.locator("#messages .message.user .bubble")).to_have_text(question)
    expect(page.get_by_role("heading", level=1)).to_contain_text(IMG)

    notes = last_answer(page).locator(".sources button").filter(has_text="Badge reader notes")
    notes.click()
    expect(page.get_by_role("dialog").locator("blockquote")).to_contain_text("<")
    assert page.locator("main img, main script, #messages a[href^='javascript']").count() == 0
    assert page.locator("body script").count() == 0

    # The renderer itself, on Markdown written to break out: only its own elements, only http(s) links.
    made = page.evaluate(
        """async (source) => {
            const { renderMarkdown } = await import("/static/markdown.js");
            const root = document.createElement("div");
            root.append(renderMarkdown(source));
            return {
                tags: [...new Set([...root.querySelectorAll("*")].map((e) => e.localName))],
                links: [...root.querySelectorAll("a")].map((a) => a.getAttribute("href")),
                attributes: [...new Set([...root.querySelectorAll("*")].flatMap((e) => e.getAttributeNames()))],
            };
        }""",
        HOSTILE_MARKDOWN,
    )
    assert set(made["tags"]) <= {"h3", "p", "strong", "em", "code", "pre", "a", "ul", "ol", "li", "blockquote"}
    assert made["links"] == ["https://example.com/ok"]
    assert set(made["attributes"]) <= {"class", "href", "target", "rel", "data-lang"}
    assert dialogs == []


def test_model_answer_streams_is_checked_and_can_be_stopped(
    llm_page: Page, llm_server: Server, openai_double: OpenAIDouble
) -> None:
    page = llm_page
    log_in(page, llm_server.admin_email, llm_server.admin_password)
    box = page.get_by_role("textbox", name="Message")

    # The double's default answer quotes source [1]; slowed down, it visibly streams in.
    openai_double.push(reply(None, first_token_delay=0.3, token_delay=0.3))
    ask(page, "How often are API keys rotated?")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(box).to_be_disabled()
    expect(last_answer(page).locator(".answer .typing")).to_have_count(0)  # the first words are in…
    expect(last_answer(page)).to_have_attribute("aria-busy", "true")  # …and more are coming
    wait_for_answer(page)
    answer = last_answer(page)
    expect(answer).not_to_have_attribute("aria-busy", "true")
    expect(answer.locator(".answer button.cite")).to_have_count(1)
    expect(answer.locator(".claim")).to_have_count(0)
    expect(answer.locator(".message-meta")).to_contain_text(re.compile(r"^test-model · retrieval \d+ ms · first token"))
    expect(box).to_be_enabled()
    expect(box).to_be_focused()

    # A cited sentence its source does not back is marked, and so, more lightly, is an uncited claim.
    page.get_by_role("button", name="New chat").click()
    openai_double.push(
        reply("The moon is made of cheese [1]. Lunar cheese is aged for seven years in Norwegian caves.")
    )
    ask(page, "What happens when API keys are rotated?")
    wait_for_answer(page)
    answer = last_answer(page)
    unsupported = answer.locator(".answer .claim.unsupported")
    expect(unsupported.first).to_have_text("The moon is made of cheese")
    expect(unsupported.first).to_have_attribute("title", "Not supported by the cited source")
    uncited = answer.locator(".answer .claim.uncited")
    expect(uncited).to_have_text("Lunar cheese is aged for seven years in Norwegian caves.")
    expect(uncited).to_have_attribute("title", "No source cited")
    expect(answer.locator(".check-summary")).to_have_text(
        "1 sentence is not supported by the cited source · 1 sentence cites no source"
    )
    page.screenshot(path=RESULTS / "chat-unsupported.png")

    # Stop ends a slow answer, keeps what came, and the server lets go of the model's stream.
    page.get_by_role("button", name="New chat").click()
    openai_double.push(reply("Rotation " * 200, token_delay=0.1))
    ask(page, "Tell me everything about rotation")
    expect(last_answer(page).locator(".answer")).to_contain_text("Rotation Rotation")
    page.get_by_role("button", name="Stop").click()
    expect(last_answer(page).locator(".notice")).to_have_text("Stopped before the answer was complete.")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(box).to_be_enabled()
    openai_double.wait_for_sync(lambda d: d.active == 0, timeout=10, what="the stopped stream to be closed")

    # An earlier conversation opens from the list, its stored answer marked as it was when it streamed.
    page.locator("#conversation-list a").filter(has_text="What happens when API keys are rotated?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What happens when API keys are rotated?")
    expect(page).to_have_url(re.compile(rf"/chat\?c={UUID}$"))
    expect(page.locator("#messages .claim.unsupported").first).to_have_text("The moon is made of cheese")
    expect(page.locator("#messages .answer .claim.uncited")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("What happens when API keys are rotated?")


def test_failing_model_shows_the_error_and_an_extractive_answer(
    llm_page: Page, llm_server: Server, openai_double: OpenAIDouble
) -> None:
    page = llm_page
    openai_double.set_default(fail(500, "the GPU caught fire"))
    log_in(page, llm_server.admin_email, llm_server.admin_password)
    ask(page, "How long are backups kept?")
    wait_for_answer(page)
    answer = last_answer(page)
    expect(answer.get_by_role("alert")).to_contain_text("The language model failed")
    expect(answer.locator(".answer")).to_contain_text("The language model could not answer")
    expect(answer.locator(".answer")).to_contain_text("30 days")
    expect(answer.locator(".answer button.cite").first).to_be_visible()
    expect(answer.locator(".message-meta")).to_contain_text("extractive")

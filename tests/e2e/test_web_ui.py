"""The web UI end to end: a real server and worker, a real browser, the journeys a user takes."""

from __future__ import annotations

import base64
import mimetypes
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshots

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "screenshot-search.png"
# Parsing, chunking and embedding on a small shared machine; the first job also loads the model.
INDEXING_MS = 180_000
VIEWER_EMAIL = "viewer@example.com"
LEAVER_EMAIL = "leaver@example.com"
KB_NAME = "Handbook"


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#user-email")).to_have_text(email)


def drop_files(page: Page, selector: str, paths: list[Path]) -> None:
    """Drag and drop files onto an element, as a user dragging them from their file manager."""
    files = [
        {
            "name": p.name,
            "type": mimetypes.guess_type(p.name)[0] or "",
            "data": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in paths
    ]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: f.type }));
            }
            return transfer;
        }""",
        files,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_pages_need_a_login_and_show_the_api_error(page: Page, server: Server) -> None:
    page.goto("/keys")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fkeys$"))
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(f"{server.url}/keys")


def test_upload_search_share_read_only_and_api_keys(page: Page, server: Server) -> None:
    log_in(page, server.admin_email, server.admin_password)

    # The admin adds a second user and reads the generated password, shown once.
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Email").fill(VIEWER_EMAIL)
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-user-email")).to_have_text(VIEWER_EMAIL)
    viewer_password = page.locator("#new-user-password").inner_text()
    assert len(viewer_password) >= 8
    expect(page.locator("#users-table")).to_contain_text(VIEWER_EMAIL)
    page.get_by_role("button", name="Done").click()
    page.get_by_label("Email").fill(LEAVER_EMAIL)
    page.get_by_label("Email").press("Enter")
    leaver = page.locator("#users-table tbody tr").filter(has_text=LEAVER_EMAIL)
    leaver.get_by_role("button", name=f"Disable {LEAVER_EMAIL}").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(leaver).to_contain_text("disabled")

    # A new knowledge base starts empty and says how to fill it.
    page.get_by_role("link", name="Knowledge bases").click()
    page.get_by_label("Name").fill(KB_NAME)
    page.get_by_label("Name").press("Enter")
    expect(page).to_have_url(re.compile(r"/kbs/[0-9a-f-]{36}$"))
    kb_url = page.url
    expect(page.locator("#docs-empty")).to_contain_text(
        "No documents yet. Drag files onto the box above or choose them"
    )
    expect(page.locator("#upload")).to_be_visible()

    # One file dropped, one chosen with the file picker; both go queued → indexing → indexed.
    drop_files(page, "#upload", [DATA / "sample.md"])
    page.locator("#file-input").set_input_files(DATA / "sample.pdf")
    rows = page.locator("#docs-table tbody tr")
    expect(rows).to_have_count(2)
    for name in ("sample.md", "sample.pdf"):
        status = rows.filter(has_text=name).locator(".status .badge")
        expect(status).to_have_text(re.compile("queued|indexing|indexed"))
        expect(status).to_have_text("indexed", timeout=INDEXING_MS)

    # A word from the Markdown file is found, highlighted, and links to the original file.
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Query").fill("rotation")
    page.get_by_label("Query").press("Enter")
    hit = page.locator("#results .result").filter(has_text="sample.md").first
    expect(hit.locator("mark").first).to_have_text(re.compile("rotat", re.IGNORECASE))
    expect(page).to_have_url(re.compile(r"/\?q=rotation"))
    source = page.request.get(hit.get_by_role("link").first.get_attribute("href") or "")
    assert source.ok
    assert source.body() == (DATA / "sample.md").read_bytes()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)

    # Shared as viewer with the second user: an invitation, answered the same whether or not the address exists.
    page.goto(kb_url)
    page.get_by_label("Share with (email)").fill(VIEWER_EMAIL)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("#share-status")).to_have_text(
        f"If {VIEWER_EMAIL} has an account, they have been invited as viewer; "
        "the knowledge base is shared once they accept."
    )
    expect(page.locator("#members-table tbody tr")).to_have_count(1)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))

    # The viewer sees the knowledge base read-only: documents and downloads, no upload, delete or sharing.
    log_in(page, VIEWER_EMAIL, viewer_password)
    expect(page.get_by_role("link", name="Users")).to_be_hidden()
    page.get_by_role("link", name="Knowledge bases").click()
    expect(page.locator("#kb-table tbody tr").filter(has_text=KB_NAME)).to_have_count(0)
    invitation = page.locator("#invitations-table tbody tr").filter(has_text=KB_NAME)
    expect(invitation).to_contain_text("Viewer")
    invitation.get_by_role("button", name=f"Accept {KB_NAME}").click()
    expect(page.locator("#invitations")).to_be_hidden()
    expect(page.locator("#kb-table tbody tr").filter(has_text=KB_NAME)).to_contain_text("Viewer")
    page.get_by_role("link", name=KB_NAME).click()
    expect(page.locator("#kb-readonly")).to_be_visible()
    expect(page.locator("#docs-table tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name=re.compile("^Download"))).to_have_count(2)
    expect(page.locator("#upload")).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("^(Delete|Retry)"))).to_have_count(0)
    expect(page.locator("#share-form")).to_be_hidden()
    expect(page.locator("#kb-settings")).to_be_hidden()

    # An API key is shown once, works as a bearer token, and stops working when revoked.
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    page.get_by_label("Name").fill("e2e script")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_be_focused()
    key = page.locator("#new-key-value").inner_text()
    bearer = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(f"{server.url}/api/kbs", headers=bearer)
    assert listed.status_code == 200, listed.text
    assert KB_NAME in listed.text
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#new-key")).to_be_hidden()
    row = page.locator("#keys-table tbody tr").filter(has_text="e2e script")
    prefix = row.locator("code").inner_text().rstrip("…")
    assert prefix.startswith("mx_") and key.startswith(prefix), "the list shows the key as it starts"
    row.get_by_role("button", name="Revoke e2e script").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys-table tbody tr").filter(has_text="e2e script").get_by_role("button")).to_have_count(0)
    assert httpx.get(f"{server.url}/api/kbs", headers=bearer).status_code == 401


def test_invitations_can_be_declined_admins_see_owners_and_names_lose_bidi_overrides(
    page: Page, server: Server, tmp_path: Path
) -> None:
    lena = "lena@example.com"
    log_in(page, server.admin_email, server.admin_password)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Email").fill(lena)
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-user-email")).to_have_text(lena)
    password = page.locator("#new-user-password").inner_text()
    page.get_by_role("button", name="Done").click()
    # The admin view lists every knowledge base with its real owner, Lena's personal one included.
    expect(page.locator("#admin-kbs-table tbody tr").filter(has_text=lena)).to_contain_text("Personal")

    # A file whose name hides its real extension behind a right-to-left override shows its characters in order.
    page.get_by_role("link", name="Knowledge bases").click()
    page.get_by_label("Name").fill("Invoices")
    page.get_by_label("Name").press("Enter")
    expect(page).to_have_url(re.compile(r"/kbs/[0-9a-f-]{36}$"))
    spoof = tmp_path / "invoice\u202efdp.md"
    spoof.write_text("invoice text without a heading\n", encoding="utf-8")
    expect(page.locator("#upload")).to_be_visible()  # shown once the page knows the user may upload
    page.locator("#file-input").set_input_files(spoof)
    row = page.locator("#docs-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("invoicefdp")
    assert "\u202e" not in row.inner_text()
    assert "\u202e" not in (row.get_by_role("link", name=re.compile("^Download")).get_attribute("aria-label") or "")

    page.get_by_label("Share with (email)").fill(lena)
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("#share-status")).to_contain_text(f"If {lena} has an account")
    page.get_by_role("button", name="Log out").click()
    # Logging out navigates to the login page itself; a goto racing it would be aborted.
    expect(page).to_have_url(f"{server.url}/login")

    log_in(page, lena, password)
    page.get_by_role("link", name="Knowledge bases").click()
    invitation = page.locator("#invitations-table tbody tr").filter(has_text="Invoices")
    expect(invitation).to_contain_text("admin")
    invitation.get_by_role("button", name="Decline Invoices").click()
    expect(page.locator("#invitations")).to_be_hidden()
    expect(page.locator("#kb-table tbody tr")).to_have_count(1)
    expect(page.locator("#kb-table tbody tr")).to_contain_text("Personal")


def test_an_upload_lists_each_rejected_file_and_a_large_file_shows_its_progress(
    page: Page, server: Server, tmp_path: Path
) -> None:
    log_in(page, server.admin_email, server.admin_password)
    page.get_by_role("link", name="Knowledge bases").click()
    expect(page.locator("#kb-table tbody tr").first).to_be_visible()  # the page's script is running
    page.get_by_label("Name").fill("Uploads")
    page.get_by_label("Name").press("Enter")
    expect(page).to_have_url(re.compile(r"/kbs/[0-9a-f-]{36}$"))
    expect(page.locator("#upload")).to_be_visible()
    # The picker offers the types the server accepts (all of them, by default).
    accept = page.locator("#file-input").get_attribute("accept") or ""
    assert set(accept.split(",")) == {
        ".md",
        ".markdown",
        ".txt",
        ".text",
        ".pdf",
        ".docx",
        ".html",
        ".htm",
        ".json",
        ".rst",
        ".org",
    }
    expect(page.locator("#upload")).to_contain_text("Markdown, text, PDF, Word, HTML, JSON, reStructuredText, Org")

    # More than one embedding call's worth of chunks, so that its row shows how far it got.
    sections = "".join(f"## Part {i}\n\nStep {i} of the quorbit procedure.\n\n" for i in range(400))
    picked = {
        "manual.md": f"# Manual\n\n{sections}".encode(),
        "notes.md": b"# Notes\n\nThe quorbit schedule runs on Tuesdays.\n",
        "notes copy.md": b"# Notes\n\nThe quorbit schedule runs on Tuesdays.\n",
        "photo.png": b"\x89PNG\r\n\x1a\n",
        "empty.md": b"\n",
        "corrupt.pdf": (DATA / "corrupt.pdf").read_bytes(),
    }
    for name, data in picked.items():
        (tmp_path / name).write_bytes(data)
    # Past the server's limit (MEMEX_MAX_UPLOAD_MB, 25 by default): the page says so without sending it.
    with (tmp_path / "huge.txt").open("wb") as huge:
        huge.truncate(26 * 1024 * 1024)
    page.locator("#file-input").set_input_files([tmp_path / "huge.txt", *(tmp_path / name for name in picked)])

    expect(page.locator("#upload-status")).to_have_text("3 files accepted.")
    rejected = page.locator("#upload-rejected")
    expect(rejected.locator("p")).to_have_text("These 4 files were not added:")
    expect(rejected.locator("li")).to_have_text(
        [
            "huge.txt: the file is larger than the upload limit of 25 MiB.",
            "notes copy.md: the same content is already in this knowledge base as 'notes.md'.",
            re.compile(r"^photo\.png: file type \.png is not accepted; accepted types: \.docx, .*\.txt\.$"),
            "empty.md: the file is empty.",
        ]
    )
    rows = page.locator("#docs-table tbody tr")
    manual = rows.filter(has_text="manual.md")
    expect(manual.locator(".progress")).to_contain_text(re.compile(r"^\d+ of \d+ chunks$"), timeout=INDEXING_MS)
    screenshots(page, "kb-upload-rejected-and-progress")

    # A file that cannot be read says why, and offers no retry that would fail the same way.
    corrupt = rows.filter(has_text="corrupt")
    expect(corrupt.locator(".status .badge")).to_have_text("failed", timeout=INDEXING_MS)
    expect(corrupt).to_contain_text("corrupt PDF: not a valid PDF structure (damaged or truncated file)")
    expect(corrupt).to_contain_text("Trying again would fail the same way: upload a repaired copy")
    expect(corrupt.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)
    expect(manual.locator(".status .badge")).to_have_text("indexed", timeout=INDEXING_MS)
    expect(manual.locator(".progress")).to_have_count(0)
    screenshots(page, "kb-upload-failed")


def test_admins_reset_and_unlock_owners_change_roles_and_people_change_their_password(
    page: Page, server: Server
) -> None:
    carol, dora = "carol@example.com", "dora@example.com"
    with httpx.Client(base_url=server.url, timeout=30) as admin:
        answer = admin.post("/api/auth/login", json={"email": server.admin_email, "password": server.admin_password})
        admin.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        assert admin.post("/api/admin/users", json={"email": dora}).status_code == 201
        kb = admin.post("/api/kbs", json={"name": "Crew"}).json()["id"]

        # The admin creates Carol, then resets her password: the new one is shown once.
        log_in(page, server.admin_email, server.admin_password)
        page.get_by_role("link", name="Users").click()
        page.get_by_label("Email").fill(carol)
        page.get_by_role("button", name="Create user").click()
        expect(page.locator("#new-user-email")).to_have_text(carol)
        first_password = page.locator("#new-user-password").inner_text()
        page.get_by_role("button", name="Done").click()
        row = page.locator("#users-table tbody tr").filter(has_text=carol)
        row.get_by_role("button", name=f"Reset password {carol}").click()
        page.get_by_role("dialog").get_by_role("button", name="Reset password").click()
        expect(page.locator("#new-user-title")).to_have_text("Password reset")
        password = page.locator("#new-user-password").inner_text()
        assert len(password) >= 16 and password != first_password
        screenshots(page, "admin-password-reset")
        page.get_by_role("button", name="Done").click()

        # Failed logins lock her account for a while; the admin sees until when, and unlocks it.
        with httpx.Client(base_url=server.url, timeout=30) as guesser:
            for n in range(5):
                wrong = guesser.post("/api/auth/login", json={"email": carol, "password": f"guess {n}"})
                assert wrong.status_code == 401
            assert guesser.post("/api/auth/login", json={"email": carol, "password": password}).status_code == 429
        page.reload()
        expect(row.locator(".badge").last).to_have_text(re.compile(r"^locked until \d{1,2}:\d{2}"))
        screenshots(page, "admin-locked")
        row.get_by_role("button", name=f"Unlock {carol}").click()
        expect(page.locator("#users-status")).to_have_text(f"{carol} can log in again at once.")
        expect(row.locator(".badge").last).to_have_text("active")

        with httpx.Client(base_url=server.url, timeout=30) as carols_other_session:
            login = carols_other_session.post("/api/auth/login", json={"email": carol, "password": password})
            assert login.status_code == 200, login.text
            carols_other_session.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            assert admin.post(f"/api/kbs/{kb}/members", json={"email": carol, "role": "viewer"}).status_code == 202
            assert carols_other_session.post(f"/api/invitations/{kb}/accept").status_code == 200

            # The owner (here the admin) makes Carol an editor; sharing suggests the people not yet members.
            page.goto(f"/kbs/{kb}")
            role = page.get_by_label(f"Role of {carol}")
            expect(role).to_have_value("viewer")
            expect(page.locator(f'#share-people option[value="{dora}"]')).to_have_count(1)
            expect(page.locator(f'#share-people option[value="{carol}"]')).to_have_count(0)
            role.select_option("editor")
            expect(page.locator("#share-status")).to_have_text(f"{carol} is now editor of this knowledge base.")
            members = admin.get(f"/api/kbs/{kb}/members").json()
            assert {m["email"]: m["role"] for m in members}[carol] == "editor"
            screenshots(page, "kb-member-roles")
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(f"{server.url}/login")

            # Carol changes her own password from her account page; her other session ends, this one stays.
            log_in(page, carol, password)
            page.get_by_role("link", name=carol).click()
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()
            page.get_by_label("Current password").fill("not my password")
            page.get_by_label("New password", exact=True).fill("carol's own passphrase")
            page.get_by_label("New password again").fill("carol's own passphrase")
            page.get_by_role("button", name="Change password").click()
            expect(page.locator("#password-error")).to_have_text(
                "Your current password is not right: nothing was changed."
            )
            page.get_by_label("Current password").fill(password)
            page.get_by_role("button", name="Change password").click()
            expect(page.locator("#password-status")).to_have_text(
                "Your password has been changed (1 other session logged out)."
            )
            screenshots(page, "account-password-changed")
            assert carols_other_session.get("/api/auth/me").status_code == 401
        page.reload()
        expect(page.locator("#account-email")).to_have_text(carol)

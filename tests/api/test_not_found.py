"""A missing path: a page for a browser following a link, `{"detail"}` for the API and for machines."""

from __future__ import annotations

import httpx
import pytest

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_browser_gets_a_page_that_leads_back(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/no/such/page", headers=BROWSER)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in response.text
    assert "<code>/no/such/page</code>" in response.text
    assert 'href="/"' in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")


async def test_the_path_is_escaped_in_the_page(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/<script>x</script>", headers=BROWSER)
    assert response.status_code == 404
    assert "<script>x" not in response.text and "&lt;script&gt;x" in response.text


@pytest.mark.parametrize("path", ["/api/no-such-thing", "/v1/no-such-thing", "/static/missing.js"])
async def test_api_paths_answer_json_even_to_a_browser(anon: httpx.AsyncClient, path: str) -> None:
    response = await anon.get(path, headers=BROWSER)
    assert response.status_code == 404
    assert response.json()["detail"] == "Not Found"


async def test_a_client_that_does_not_ask_for_html_gets_json(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/no/such/page")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}

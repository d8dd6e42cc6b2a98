"""The OpenAPI page works on a machine with no internet: every asset comes from the server itself."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import Server


def test_api_docs_render_with_every_other_host_unreachable(page: Page, server: Server) -> None:
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Memex")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 20
    assert elsewhere == []

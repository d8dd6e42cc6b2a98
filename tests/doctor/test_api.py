"""`GET /api/admin/doctor`: admins only, the same JSON as `memex doctor --json`."""

from __future__ import annotations

from memex.accounts.models import User
from tests.api.conftest import admin, alice, app, make  # noqa: F401  (fixtures)
from tests.factories import Factory


async def test_admins_get_the_findings(make: Factory, admin: User, alice: User) -> None:  # noqa: F811
    response = await (await make.as_user(admin)).get("/api/admin/doctor")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"findings", "manual", "summary"}
    assert body["summary"]["critical"] == 0 and body["summary"]["high"] == 0
    assert {"severity", "check", "found", "fix", "data"} <= set(body["findings"][0])

    refused = await (await make.as_user(alice)).get("/api/admin/doctor")
    assert refused.status_code == 403 and refused.json()["detail"]

"""Password guessing: a stranger's failures make only the stranger's address wait (never lock the owner out),
spraying many accounts from one address is rate-limited, and a disabled account answers like a wrong password."""

from __future__ import annotations

import asyncio

import httpx

from memex.accounts.models import User
from memex.runtime import Runtime
from tests.api.conftest import ClientFrom
from tests.factories import PASSWORD, Factory

LOGIN = "/api/auth/login"
BAD_CREDENTIALS = {"detail": "invalid email or password"}
ADDRESS_A, ADDRESS_B = "198.51.100.7", "203.0.113.9"


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def test_a_stranger_hammering_an_account_cannot_lock_its_owner_out(
    client_from: ClientFrom, admin: User, runtime: Runtime
) -> None:
    stranger, owner = client_from(ADDRESS_A), client_from(ADDRESS_B)
    free = runtime.settings.login_max_attempts
    statuses = [(await _login(stranger, admin.email, f"guess {n}")).status_code for n in range(20)]
    assert statuses == [401] * free + [429] * (20 - free)
    waiting = await _login(stranger, admin.email, "one more guess")
    seconds = int(waiting.headers["retry-after"])  # 30 from the 5th failure on, counting down
    assert 0 < seconds <= 30
    assert waiting.json() == {
        "detail": f"too many failed logins for this account from your address: try again in {seconds} s"
    }

    # The owner, from their own address, logs in at once; the stranger, even with the right password, waits.
    assert (await _login(owner, admin.email)).status_code == 200
    assert (await _login(stranger, admin.email)).status_code == 429
    # And the stranger's address may still try other accounts (spraying is the per-address limit's job).
    assert (await _login(stranger, "someone-else@example.com", "guess")).status_code == 401


async def test_each_failure_past_the_free_ones_doubles_the_wait_up_to_the_longest(
    client_from: ClientFrom, alice: User, runtime: Runtime
) -> None:
    backoff = runtime.rate_limits.login_backoff
    assert [backoff.wait_seconds(n) for n in range(1, 12)] == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]
    stranger = client_from(ADDRESS_A)
    for n in range(5):
        assert (await _login(stranger, alice.email, f"guess {n}")).status_code == 401
    assert 0 < int((await _login(stranger, alice.email)).headers["retry-after"]) <= 30

    async def wait_over() -> None:  # as if the wait had passed: only the wait is forgotten, not the failures
        _, wait = backoff._keys(f"{alice.email}|{ADDRESS_A}")
        await runtime.rate_limits.counter(lambda storage: storage.clear(wait))

    await wait_over()
    assert (await _login(stranger, alice.email, "guess 6")).status_code == 401
    refused = await _login(stranger, alice.email)
    assert refused.status_code == 429 and 30 < int(refused.headers["retry-after"]) <= 60
    await wait_over()
    assert (await _login(stranger, alice.email)).status_code == 200  # a success forgets every failure
    for n in range(4):
        assert (await _login(stranger, alice.email, f"new guess {n}")).status_code == 401


async def test_parallel_guesses_get_no_more_than_the_free_attempts(
    client_from: ClientFrom, alice: User, runtime: Runtime
) -> None:
    stranger = client_from(ADDRESS_A)
    answers = await asyncio.gather(*(_login(stranger, alice.email, f"guess {n}") for n in range(12)))
    checked = [a.status_code for a in answers if a.status_code == 401]
    assert 0 < len(checked) <= runtime.settings.login_max_attempts
    assert {a.status_code for a in answers} == {401, 429}


async def test_spraying_many_accounts_from_one_address_is_limited(
    client_from: ClientFrom, make: Factory, runtime: Runtime
) -> None:
    # The default is 30/minute;300/hour. A login takes a while here (argon2 on a small machine) and a minute may
    # end during the test, which would let the sliding window admit a few more: the test counts per day.
    limit = 30
    assert "rate_limits" not in runtime.caches  # built at the first request, from these settings
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_login": f"{limit}/day"})
    users = [await make.user() for _ in range(50)]
    sprayer = client_from(ADDRESS_A)
    statuses = [(await _login(sprayer, user.email, "Winter2026!")).status_code for user in users]
    assert statuses == [401] * limit + [429] * (50 - limit)
    refused = await _login(sprayer, users[0].email, PASSWORD)
    assert refused.status_code == 429 and "too many login attempts" in refused.json()["detail"]
    assert (await _login(client_from(ADDRESS_B), users[0].email)).status_code == 200


async def test_a_disabled_account_answers_like_a_wrong_password(
    client_from: ClientFrom, make: Factory, admin: User, alice: User
) -> None:
    root = await make.as_user(admin)
    assert (await root.patch(f"/api/admin/users/{alice.id}", json={"is_active": False})).status_code == 200
    client = client_from(ADDRESS_A)
    answers = [
        await _login(client, alice.email),  # disabled, right password
        await _login(client, alice.email, "not the password"),  # disabled, wrong password
        await _login(client, "nobody@example.com"),  # no such account
    ]
    for answer in answers:
        assert answer.status_code == 401 and answer.json() == BAD_CREDENTIALS
        assert answer.headers["www-authenticate"] == "Bearer"
    # Counted as failures like any other: a disabled account cannot be told apart by its back-off either.
    for n in range(3):
        assert (await _login(client, alice.email, f"guess {n}")).status_code == 401
    assert (await _login(client, alice.email)).status_code == 429

"""The one rule for redirects to a `next` parameter (single sign-on, the login page's link): paths of this site."""

from __future__ import annotations

import pytest

from memex.accounts.sso import MAX_NEXT, safe_next
from tests.e2e.test_login_redirect import OUTSIDE


@pytest.mark.parametrize("value", [v for v in OUTSIDE if not v.startswith("/%09")])
def test_tricks_that_leave_the_site_become_the_home_page(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["", None, "/\x7f/evil.example", "/\x85/evil.example", "/" + "a" * MAX_NEXT])
def test_empty_control_characters_and_overlong_values_become_the_home_page(value: str | None) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["/", "/keys", "/kbs/3f1c?tab=shared#members", "/%09/evil.example", "/%5Cx"])
def test_paths_of_this_site_are_kept(value: str) -> None:
    assert safe_next(value) == value

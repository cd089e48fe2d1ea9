"""A request's bearer token expiry, read for answers that outlive the request."""

from __future__ import annotations

from datetime import timedelta

from bicameral.security.expiry import bearer_expiry
from bicameral.security.tokens import issue_token


def test_the_expiry_is_the_tokens_exp() -> None:
    token = issue_token(b"k" * 32, subject="ann", ttl=timedelta(seconds=90), now=1_000_000)
    assert bearer_expiry(f"Bearer {token}") == 1_000_090.0
    assert bearer_expiry(f"bearer  {token} ") == 1_000_090.0


def test_no_bearer_token_has_no_expiry() -> None:
    assert bearer_expiry(None) is None
    assert bearer_expiry("Basic YTpi") is None
    assert bearer_expiry("Bearer ") is None
    assert bearer_expiry("Bearer not-a-jwt") is None

"""Bearer tokens: what verifies, what is refused, and that errors reveal nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral.errors import AuthenticationError, ConfigurationError
from bicameral.security.keys import EmbeddedKeySet
from bicameral.security.tokens import MAX_LEEWAY, TokenVerifier, issue_token, parse_ttl

SECRET = b"s" * 48
OTHER = b"o" * 48


def verifier(leeway: float = 10.0, audience: str = "bicameral") -> TokenVerifier:
    return TokenVerifier(
        EmbeddedKeySet(SECRET), "bicameral", audience, frozenset({"HS256"}), leeway
    )


def refusal(token: str, v: TokenVerifier | None = None) -> str:
    with pytest.raises(AuthenticationError) as caught:
        (v or verifier()).verify(token)
    assert token not in caught.value.detail
    return caught.value.detail


def test_an_issued_token_verifies_into_its_subject_and_roles() -> None:
    token = issue_token(SECRET, subject="alice", roles=["staff", "admin"])
    principal = verifier().verify(token)
    assert principal.subject == "alice"
    assert principal.roles == {"staff", "admin"}
    assert principal.service is None


@given(subject=st.text(min_size=1, max_size=40), roles=st.sets(st.text(max_size=12), max_size=4))
def test_any_subject_and_roles_round_trip(subject: str, roles: set[str]) -> None:
    principal = verifier().verify(issue_token(SECRET, subject=subject, roles=roles))
    assert (principal.subject, principal.roles) == (subject, roles)


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SECRET, subject="a", ttl=timedelta(seconds=60), now=time.time() - 120)
    assert refusal(token) == "the bearer token has expired"


def test_a_token_expired_within_the_leeway_still_verifies() -> None:
    token = issue_token(SECRET, subject="a", ttl=timedelta(seconds=60), now=time.time() - 65)
    assert verifier(leeway=10).verify(token).subject == "a"


def test_a_token_not_valid_yet_is_refused_beyond_the_leeway() -> None:
    token = issue_token(SECRET, subject="a", now=time.time() + 120)
    assert refusal(token) == "the bearer token is not valid yet"


def test_a_token_for_another_audience_is_refused() -> None:
    token = issue_token(SECRET, subject="a", audience="someone-else")
    assert refusal(token) == "the bearer token is not meant for this API"


def test_a_token_from_another_issuer_is_refused() -> None:
    token = issue_token(SECRET, subject="a", issuer="mallory")
    assert refusal(token) == "the bearer token comes from an unknown issuer"


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = issue_token(OTHER, subject="a")
    assert refusal(token) == "the bearer token's signature is not valid"


def test_an_unsigned_token_is_refused() -> None:
    claims = {"sub": "a", "iss": "bicameral", "aud": "bicameral", "exp": time.time() + 60}
    token = jwt.encode(claims, None, algorithm="none")
    assert refusal(token) == "the bearer token's algorithm is not accepted"


def test_a_token_without_expiry_is_refused() -> None:
    claims = {"sub": "a", "iss": "bicameral", "aud": "bicameral"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert refusal(token) == "the bearer token lacks a required claim"


def test_a_token_whose_roles_are_not_a_list_is_refused() -> None:
    claims = {
        "sub": "a",
        "iss": "bicameral",
        "aud": "bicameral",
        "exp": time.time() + 60,
        "roles": "admin",
    }
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert "roles" in refusal(token)


def test_a_token_naming_an_unknown_key_is_refused() -> None:
    token = jwt.encode(
        {"sub": "a", "iss": "bicameral", "aud": "bicameral", "exp": time.time() + 60},
        SECRET,
        algorithm="HS256",
        headers={"kid": "elsewhere"},
    )
    assert refusal(token) == "the bearer token is not signed with a known key"


def test_garbage_is_refused_as_malformed() -> None:
    assert refusal("not-a-jwt") == "the bearer token is malformed"


def test_a_leeway_above_thirty_seconds_is_a_configuration_error() -> None:
    assert MAX_LEEWAY == 30
    with pytest.raises(ConfigurationError):
        verifier(leeway=31)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_ttls_are_read_with_units(text: str, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "1w", "-5m", "soon"])
def test_bad_ttls_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_ttl(text)

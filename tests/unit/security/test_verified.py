"""Verified tokens are remembered until they expire, never a refusal, and never past a key
that was taken away."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral.context import Principal
from bicameral.errors import AuthenticationError
from bicameral.security.keys import ASYMMETRIC, EmbeddedKeySet, JwksFileKeySet
from bicameral.security.tokens import TokenVerifier, issue_token
from bicameral.security.verified import Verified, VerifiedTokens
from tests.jwks import SigningKey, write_jwks

SECRET = b"s" * 48
OTHER = b"o" * 48


def verifier(leeway: float = 10.0, cache_size: int = 16) -> TokenVerifier:
    keys = EmbeddedKeySet(SECRET)
    return TokenVerifier(keys, "bicameral", "bicameral", frozenset({"HS256"}), leeway, cache_size)


def test_a_verified_token_is_remembered_and_answers_the_same_principal() -> None:
    v = verifier()
    token = issue_token(SECRET, subject="alice", roles=["staff"])
    first = v.verify(token)
    assert len(v.verified) == 1
    assert v.verify(token) is first
    assert (first.subject, first.roles) == ("alice", {"staff"})


def test_a_refused_token_is_never_remembered() -> None:
    v = verifier()
    for token in (
        issue_token(OTHER, subject="a"),
        issue_token(SECRET, subject="a", audience="else"),
        issue_token(SECRET, subject="a", now=time.time() + 120),
        "not-a-token",
    ):
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                v.verify(token)
    assert len(v.verified) == 0


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    v = verifier(leeway=0)
    token = issue_token(SECRET, subject="a", ttl=timedelta(seconds=1))
    assert v.verify(token).subject == "a"
    time.sleep(max(0.0, v.verified._entries[token].expires - time.time()) + 0.05)
    with pytest.raises(AuthenticationError, match="expired"):
        v.verify(token)
    assert len(v.verified) == 0


def test_the_window_follows_nbf_iat_exp_and_the_leeway() -> None:
    v = verifier(leeway=5)
    key = v.keys.key(None, "HS256")
    claims = {"nbf": 100, "iat": 90, "exp": 160}
    entry = v._proved(Principal(subject="a"), claims, None, "HS256", key)
    assert (entry.not_before, entry.expires) == (95, 165)


def test_the_cache_holds_at_most_its_size_dropping_the_least_recently_used() -> None:
    v = verifier(cache_size=2)
    one, two, three = (issue_token(SECRET, subject=s) for s in ("one", "two", "three"))
    v.verify(one)
    v.verify(two)
    v.verify(one)  # one is now the most recently used
    v.verify(three)
    assert set(v.verified._entries) == {one, three}


def test_a_cache_of_size_zero_remembers_nothing() -> None:
    v = verifier(cache_size=0)
    v.verify(issue_token(SECRET, subject="a"))
    assert len(v.verified) == 0


def test_an_entry_outside_its_window_is_dropped() -> None:
    keys = EmbeddedKeySet(SECRET)
    cache = VerifiedTokens(4)
    key = keys.key(None, "HS256")
    cache.remember("t", Verified(Principal(subject="a"), 10.0, 20.0, None, "HS256", key))
    assert cache.principal("t", 9.0, keys) is None
    assert len(cache) == 0
    cache.remember("t", Verified(Principal(subject="a"), 10.0, 20.0, None, "HS256", key))
    assert cache.principal("t", 10.0, keys) == Principal(subject="a")
    assert cache.principal("t", 20.0, keys) is None


def test_a_key_removed_from_the_jwks_file_revokes_remembered_tokens(tmp_path: Path) -> None:
    kept, revoked = SigningKey.rsa("kept"), SigningKey.rsa("revoked")
    path = tmp_path / "jwks.json"
    write_jwks(path, kept, revoked)
    v = TokenVerifier(
        JwksFileKeySet(path, ASYMMETRIC), "https://id.example", "shop", frozenset({"RS256"})
    )
    token = revoked.sign("alice", "staff")
    other = kept.sign("bob")
    assert v.verify(token).subject == "alice"
    assert v.verify(other).subject == "bob"
    write_jwks(path, kept)
    with pytest.raises(AuthenticationError, match="known key"):
        v.verify(token)
    assert v.verify(other).subject == "bob"  # verified again against the file read anew
    assert set(v.verified._entries) == {other}


POOL = (
    issue_token(SECRET, subject="alice", roles=["staff"]),
    issue_token(SECRET, subject="bob"),
    issue_token(OTHER, subject="mallory", roles=["admin"]),
    issue_token(SECRET, subject="carol", audience="elsewhere"),
    issue_token(SECRET, subject="dave", ttl=timedelta(seconds=60), now=time.time() - 86_400),
    issue_token(SECRET, subject="erin", now=time.time() + 86_400),
    "not.a.token",
)


def _outcome(v: TokenVerifier, token: str) -> object:
    try:
        return v.verify(token)
    except AuthenticationError as exc:
        return exc.detail


@given(st.lists(st.sampled_from(POOL), max_size=30), st.integers(0, 3))
def test_a_cached_verifier_answers_every_token_as_an_uncached_one(
    tokens: list[str], size: int
) -> None:
    cached, fresh = verifier(cache_size=size), verifier(cache_size=0)
    for token in tokens:
        assert _outcome(cached, token) == _outcome(fresh, token)
    assert len(cached.verified) <= size
    assert all(  # only tokens that verify are kept
        not isinstance(_outcome(fresh, token), str) for token in cached.verified._entries
    )

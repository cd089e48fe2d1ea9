"""Tokens verified before, remembered until they expire, so a client sending the same bearer
token on every request pays for one signature check, not one per request.

Only a token that verified is remembered, keyed by its exact text, with what verification
proved: its principal, the window its ``nbf``/``iat`` and ``exp`` claims allow (leeway
included), and the key object that checked its signature. A remembered token is served only
while the clock is inside that window and its key set still hands out that very key for its
``kid``: a JWKS file that changed (a key removed to revoke it, or any rotation) makes every
token of that file verify again in full. The cache is bounded (least recently used goes).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from bicameral.context import Principal
from bicameral.errors import AuthenticationError
from bicameral.security.keys import KeySet, VerificationKey

__all__ = ["DEFAULT_CACHED_TOKENS", "Verified", "VerifiedTokens"]

DEFAULT_CACHED_TOKENS = 4096
"""How many verified tokens a process remembers (at most 8 KiB each)."""


class Verified(NamedTuple):
    """What verifying one token proved."""

    principal: Principal
    not_before: float
    """The earliest time (``nbf``/``iat`` less the leeway) the token is valid."""
    expires: float
    """The time (``exp`` plus the leeway) from which the token is refused."""
    kid: str | None
    algorithm: str
    key: VerificationKey


class VerifiedTokens:
    """A bounded LRU map of verified token text to what its verification proved."""

    def __init__(self, size: int = DEFAULT_CACHED_TOKENS) -> None:
        self.size = size
        self._entries: OrderedDict[str, Verified] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def principal(self, token: str, now: float, keys: KeySet) -> Principal | None:
        """Returns the principal of ``token`` if it verified before and still holds at ``now``
        with the same key; None when it must be verified (again)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.not_before <= now < entry.expires and _same_key(keys, entry):
            self._entries.move_to_end(token)
            return entry.principal
        del self._entries[token]
        return None

    def remember(self, token: str, verified: Verified) -> None:
        """Writes what verifying ``token`` proved, forgetting the least recently used beyond
        ``size``."""
        if self.size <= 0:
            return
        self._entries[token] = verified
        self._entries.move_to_end(token)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forgets every token."""
        self._entries.clear()


def _same_key(keys: KeySet, entry: Verified) -> bool:
    try:
        return keys.key(entry.kid, entry.algorithm) is entry.key
    except AuthenticationError:  # the key is gone (revoked): verify in full, which refuses it
        return False

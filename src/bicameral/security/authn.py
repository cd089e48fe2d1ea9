"""HTTP authentication: who a request comes from, read from its ``Authorization`` header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from bicameral.context import ANONYMOUS, Principal
from bicameral.errors import AuthenticationError
from bicameral.security.tokens import MAX_TOKEN_BYTES, TokenVerifier, too_long

__all__ = ["Authenticator", "BearerAuthenticator", "anonymous"]

Authenticator = Callable[[Request], Awaitable[Principal]]
"""Returns the principal of a request; raises AuthenticationError for bad credentials."""


async def anonymous(request: Request) -> Principal:
    """Returns the anonymous principal, whatever the request carries."""
    return ANONYMOUS


class BearerAuthenticator:
    """Reads ``Authorization: Bearer <jwt>``: no header is anonymous, a bad token is refused,
    and a token longer than ``MAX_TOKEN_BYTES`` is refused unread."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, request: Request) -> Principal:
        """Returns the token's principal, or ANONYMOUS when the request has no credentials."""
        return self.principal(request.headers.get("authorization"))

    def principal(self, header: str | None) -> Principal:
        """Returns the principal of an ``Authorization`` header's value (None: no header)."""
        if header is None:
            return ANONYMOUS
        if len(header) > MAX_TOKEN_BYTES + 16:  # room for the scheme and spaces
            raise too_long()
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("send credentials as 'Authorization: Bearer <token>'")
        if len(token) > MAX_TOKEN_BYTES:
            raise too_long()
        return self.verifier.verify(token)

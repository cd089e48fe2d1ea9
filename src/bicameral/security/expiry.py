"""When a request's bearer token expires, for answers that outlive the request (live queries)."""

from __future__ import annotations

import jwt

__all__ = ["bearer_expiry"]


def bearer_expiry(authorization: str | None) -> float | None:
    """Returns the ``exp`` (unix seconds) of the bearer token in an ``Authorization`` header,
    or None when there is none. Read unverified: call it only once the token was verified."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None

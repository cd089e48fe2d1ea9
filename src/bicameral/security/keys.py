"""Signing and verification keys: the embedded HS256 secret, and JWKS files that rotate.

The embedded secret lives in the data dir (``jwt-hs256.key``, mode 0600), made on first start
and kept. A JWKS file holds public RS256 or EdDSA keys, each named by ``kid``; the file is read
again whenever it changes, so a key can be added before use and removed to revoke it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shlex
import stat
import threading
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt import PyJWK

from bicameral.errors import AuthenticationError, ConfigurationError
from bicameral.files import FILE_MODE, private_dir

__all__ = [
    "EMBEDDED_KEY_FILE",
    "EMBEDDED_KID",
    "EmbeddedKeySet",
    "JwksFileKeySet",
    "KeySet",
    "VerificationKey",
    "embedded_secret",
    "existing_secret",
]

log = logging.getLogger("bicameral.security")

EMBEDDED_KEY_FILE = "jwt-hs256.key"
EMBEDDED_KID = "embedded"
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})


class VerificationKey:
    """One key that may verify tokens signed with ``algorithm``."""

    __slots__ = ("algorithm", "key", "kid")

    def __init__(self, kid: str | None, algorithm: str, key: Any) -> None:
        self.kid = kid
        self.algorithm = algorithm
        self.key = key


class KeySet(Protocol):
    """Where a token verifier finds the key a token names."""

    def key(self, kid: str | None, algorithm: str) -> VerificationKey:
        """Returns the key for ``kid``; raises AuthenticationError when there is none."""
        ...


def embedded_secret(data_dir: Path) -> bytes:
    """Returns the embedded HS256 secret, writing a new one (mode 0600) on first use.

    The new key is written to a private temporary file and then linked into place, so
    processes starting at once all end up with the one complete key.
    """
    path = Path(data_dir) / EMBEDDED_KEY_FILE
    if not path.exists():
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have taken bits from it
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return _read_secret(path)


def existing_secret(data_dir: Path) -> bytes:
    """Returns the embedded HS256 secret of ``data_dir``; never makes one.

    Raises ConfigurationError, in one line naming the file looked for and how to make it,
    when the server never started on that data dir.
    """
    path = Path(data_dir) / EMBEDDED_KEY_FILE
    if not path.exists():
        raise ConfigurationError(
            f"no signing key at {path.absolute()}: start the server first "
            f"(bicameral up --data-dir {shlex.quote(str(data_dir))} makes it), "
            "or name the data dir it runs on with --data-dir"
        )
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ConfigurationError(f"{path} holds a key shorter than 32 bytes")
    return secret


class EmbeddedKeySet:
    """The one embedded HS256 secret (tokens from ``bicameral token issue``)."""

    def __init__(self, secret: bytes) -> None:
        self._key = VerificationKey(EMBEDDED_KID, "HS256", secret)

    def key(self, kid: str | None, algorithm: str) -> VerificationKey:
        """Returns the secret for an HS256 token whose kid is absent or ``embedded``."""
        if algorithm != "HS256" or kid not in (None, EMBEDDED_KID):
            raise AuthenticationError("the bearer token is not signed with a known key")
        return self._key


class JwksFileKeySet:
    """Public keys from a JWKS file, chosen by kid, read again whenever the file changes."""

    def __init__(self, path: Path, algorithms: frozenset[str]) -> None:
        symmetric = algorithms - ASYMMETRIC
        if symmetric:
            raise ConfigurationError(
                f"a JWKS file verifies asymmetric algorithms only, not {sorted(symmetric)}"
            )
        self.path = Path(path)
        self.algorithms = algorithms
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._keys: dict[str | None, VerificationKey] = {}
        if not self.path.exists():
            raise ConfigurationError(f"JWKS file not found: {self.path}")
        self._refresh()
        if not self._keys:
            raise ConfigurationError(f"{self.path} holds no usable key")

    def key(self, kid: str | None, algorithm: str) -> VerificationKey:
        """Returns the key named ``kid`` if its algorithm is ``algorithm``."""
        self._refresh()
        found = self._keys.get(kid)
        if kid is None and found is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))
        if found is None or found.algorithm != algorithm:
            raise AuthenticationError("the bearer token is not signed with a known key")
        return found

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except OSError as exc:
            log.warning(
                "JWKS file %s unreadable (%s); keeping the keys read before", self.path, exc
            )
            return
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        if seen == self._seen:
            return
        with self._lock:
            if seen == self._seen:
                return
            try:
                keys = self._parse(json.loads(self.path.read_text()))
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                log.warning(
                    "JWKS file %s not valid (%s); keeping the keys read before", self.path, exc
                )
                return
            self._keys, self._seen = keys, seen

    def _parse(self, document: Any) -> dict[str | None, VerificationKey]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError('a JWKS document is an object with a "keys" list')
        keys: dict[str | None, VerificationKey] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                jwk = PyJWK(entry)
            except jwt.PyJWTError as exc:
                log.warning("JWKS file %s: skipping key %s: %s", self.path, entry.get("kid"), exc)
                continue
            if jwk.algorithm_name not in self.algorithms:
                continue
            kid = entry.get("kid")
            keys[str(kid) if kid is not None else None] = VerificationKey(
                kid, jwk.algorithm_name, jwk
            )
        return keys

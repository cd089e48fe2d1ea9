"""Test keys: RS256 and EdDSA key pairs, their JWKS documents and tokens they sign."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm


@dataclass
class SigningKey:
    """A private key with its kid and algorithm."""

    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ed25519(cls, kid: str) -> SigningKey:
        return cls(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())

    def jwk(self) -> dict[str, Any]:
        """Returns the public JWK."""
        codec = RSAAlgorithm if self.algorithm == "RS256" else OKPAlgorithm
        jwk: dict[str, Any] = json.loads(codec.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, subject: str, *roles: str, **claims: Any) -> str:
        """Returns a token of ``subject`` with ``roles``; ``claims`` override the defaults."""
        now = int(time.time())
        body = {
            "iss": "https://id.example",
            "aud": "shop",
            "sub": subject,
            "roles": list(roles),
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


def write_jwks(path: Path, *keys: SigningKey) -> None:
    """Replaces the JWKS file atomically, as a key-rotation job would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    os.replace(tmp, path)

"""API key material. SecretKeys are 256 random bits, so a keyed SHA-256 is as safe as a slow password hash
and keeps authentication at the cost of one indexed read (bcrypt would cap the API at a few dozen calls/s)."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SALT_BYTES = 16


@dataclass(frozen=True)
class IssuedKey:
    consumer: str
    secret: str  # shown once, never stored
    salt: bytes
    secret_hash: bytes


def issue_key() -> IssuedKey:
    consumer = secrets.token_hex(32).upper()
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(SALT_BYTES)
    return IssuedKey(consumer, secret, salt, hash_secret(secret, salt))


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hmac.new(salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def secret_matches(secret: str, salt: bytes, expected_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret, salt), expected_hash)

"""Password hashing and signed, expiring access tokens (stateless, like a JWT)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from inventory import settings

_ITERATIONS = 100_000


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, iterations, salt, expected = hashed.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


def _signature(payload: str) -> str:
    mac = hmac.new(settings.SECRET_KEY.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def create_access_token(user_id: int, *, expires_in: int | None = None) -> str:
    """`<user id>.<expiry, unix seconds>.<signature>`."""
    lifetime = settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60 if expires_in is None else expires_in
    payload = f"{user_id}.{int(time.time()) + lifetime}"
    return f"{payload}.{_signature(payload)}"


def read_access_token(token: str) -> int | None:
    """The user id a token was issued to, or None when it is forged, malformed or expired."""
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature, _signature(payload)):
        return None
    user_id, _, expires = payload.partition(".")
    if not (user_id.isdigit() and expires.isdigit()) or int(expires) < time.time():
        return None
    return int(user_id)

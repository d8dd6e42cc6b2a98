"""Password hashing with argon2id; hashing and verifying block, so async callers run them in a thread."""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024
# What a password set in the environment for an admin on a network address must have (see `weakness`).
STRONG_LENGTH = 12
STRONG_DISTINCT = 6
# Placeholders and the most common passwords, compared on their letters alone (Password123! is "password").
_COMMON = frozenset(
    {
        "password",
        "passwd",
        "passw",
        "changeme",
        "changeit",
        "admin",
        "administrator",
        "root",
        "secret",
        "memex",
        "letmein",
        "welcome",
        "default",
        "qwerty",
        "qwertyuiop",
        "azerty",
        "asdfgh",
        "abcdef",
        "abcdefgh",
        "test",
        "example",
        "iloveyou",
        "monkey",
        "dragon",
        "master",
        "login",
        "pass",
    }
)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify(password_hash: str | None, password: str) -> bool:
    """True if the password matches; with no hash, still spends the time of a check so unknown users cost the same."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify, password_hash, password)


def weakness(password: str) -> str | None:
    """Why a password is too weak to guard an admin account reachable from the network, or None if it is not."""
    if len(password) < STRONG_LENGTH:
        return f"it has {len(password)} characters, fewer than {STRONG_LENGTH}"
    if len(set(password)) < STRONG_DISTINCT:
        return f"it uses fewer than {STRONG_DISTINCT} different characters"
    letters = "".join(c for c in password.lower() if c.isalpha())
    if not letters:
        return "it has no letters"
    if letters in _COMMON:
        return "it is a common password or a placeholder"
    return None


def generate() -> str:
    """A random password for accounts made without one (about 128 bits)."""
    return secrets.token_urlsafe(16)

"""HTTP basic auth against bcrypt hashes, the way the Prometheus exporter toolkit does it.

`BasicAuth.check(header)` returns the user name when `header` is `Basic base64(user:password)`
for a configured user whose bcrypt hash matches the password, else None. Properties:

- the password is compared by `bcrypt.checkpw` (constant time in the password); an unknown user
  is checked against a dummy hash of the same cost, so the answer time does not tell whether a
  user exists;
- a verified pair is remembered as HMAC-SHA256(per-process random key, user NUL password) next
  to the hash it matched, in an LRU of `cache_size` entries, so a scraper that sends the same
  credentials every 15 s pays one bcrypt round (~50-250 ms), not one per scrape. Only successes
  are cached; the plain password is never stored;
- at most `bcrypt_slots` (2) bcrypt rounds run at once: a flood of wrong passwords keeps two
  handler threads busy, not all of them, so probes and cached logins are still answered;
- passwords longer than 72 bytes (bcrypt's limit) and malformed headers are refused;
- nothing here logs: the caller answers 401 and writes no credential anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

__all__ = ["BasicAuth"]

_MAX_PASSWORD_BYTES = 72


class BasicAuth:
    """Checks `Authorization` headers against `users` (name -> bcrypt hash). Thread-safe."""

    def __init__(
        self, users: Mapping[str, bytes], *, cache_size: int = 64, bcrypt_slots: int = 2
    ) -> None:
        """Keep the hashes and make the dummy hash (one bcrypt round at the highest cost)."""
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = dict(users)
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(bcrypt_slots)
        self._key = secrets.token_bytes(32)
        cost = max(int(h.split(b"$")[2]) for h in self._users.values())
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))

    def check(self, header: str | None) -> str | None:
        """The authenticated user name, or None (no header, malformed, unknown, wrong)."""
        credentials = _parse(header)
        if credentials is None:
            return None
        user, password = credentials
        hashed = self._users.get(user)
        digest = hmac.new(self._key, user.encode("utf-8") + b"\0" + password, hashlib.sha256)
        token = digest.digest()
        with self._lock:
            cached = self._cache.get(token)
            if cached is not None:
                self._cache.move_to_end(token)
        if cached is not None and hashed is not None and hmac.compare_digest(cached, hashed):
            return user
        if not self._verify(password, hashed if hashed is not None else self._dummy):
            return None
        if hashed is None:
            return None
        with self._lock:
            self._cache[token] = hashed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return user

    def _verify(self, password: bytes, hashed: bytes) -> bool:
        """bcrypt's comparison in one of the slots; False for a password over 72 bytes."""
        if len(password) > _MAX_PASSWORD_BYTES:
            return False
        with self._slots:
            try:
                return bcrypt.checkpw(password, hashed)
            except ValueError:
                return False


def _parse(header: str | None) -> tuple[str, bytes] | None:
    """(user, password bytes) from `Basic base64(user:password)`, or None when malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password.encode("utf-8")

"""Tests for monitor.http.auth: bcrypt basic auth with a cache of verified credentials."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable

import bcrypt
import pytest

from monitor.http.auth import BasicAuth

PASSWORD = "correct horse"


def hashed(password: str, rounds: int = 4) -> bytes:
    """A bcrypt hash at the lowest cost (tests stay fast)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds))


def basic(user: str, password: str) -> str:
    """An `Authorization: Basic` header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records the hash of every bcrypt.checkpw call (the real function still runs)."""
    calls: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = bcrypt.checkpw

    def counting(password: bytes, hashed_password: bytes) -> bool:
        calls.append(hashed_password)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


def test_right_password_authenticates_and_wrong_ones_do_not() -> None:
    """The right password gives the user name; a wrong one, another user's or none gives None."""
    auth = BasicAuth({"alice": hashed(PASSWORD), "bob": hashed("other")})
    assert auth.check(basic("alice", PASSWORD)) == "alice"
    assert auth.check(basic("alice", "wrong")) is None
    assert auth.check(basic("alice", "other")) is None
    assert auth.check(basic("bob", PASSWORD)) is None
    assert auth.check(basic("alice", "")) is None
    assert auth.check(basic("", PASSWORD)) is None


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b"alice:\xff\xfe").decode(),
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    """Missing, non-Basic, bad base64, colon-less and non-UTF-8 credentials are refused."""
    auth = BasicAuth({"alice": hashed(PASSWORD)})
    assert auth.check(header) is None


def test_scheme_is_case_insensitive_and_colons_belong_to_the_password() -> None:
    """`basic` works as `Basic`; only the first colon separates user and password."""
    auth = BasicAuth({"alice": hashed("a:b:c")})
    assert auth.check(basic("alice", "a:b:c").replace("Basic", "basic")) == "alice"


def test_a_verified_pair_costs_one_bcrypt_round(checkpw_calls: list[bytes]) -> None:
    """Ten scrapes with the same credentials run bcrypt once; wrong passwords every time."""
    auth = BasicAuth({"alice": hashed(PASSWORD)})
    for _ in range(10):
        assert auth.check(basic("alice", PASSWORD)) == "alice"
    assert len(checkpw_calls) == 1
    for _ in range(3):
        assert auth.check(basic("alice", "wrong")) is None
    assert len(checkpw_calls) == 4


def test_the_cache_is_bounded_and_keeps_no_plain_password() -> None:
    """The cache holds at most cache_size entries, none containing the password bytes."""
    users = {f"u{i}": hashed(f"p{i}") for i in range(5)}
    auth = BasicAuth(users, cache_size=3)
    for i in range(5):
        assert auth.check(basic(f"u{i}", f"p{i}")) == f"u{i}"
    assert len(auth._cache) == 3
    for token, value in auth._cache.items():
        assert b"p4" not in token and value in users.values()


def test_unknown_users_are_checked_against_a_dummy_hash(checkpw_calls: list[bytes]) -> None:
    """An unknown user still costs a bcrypt round (at the configured cost), so timing hides it."""
    auth = BasicAuth({"alice": hashed(PASSWORD, rounds=5)})
    assert auth.check(basic("mallory", PASSWORD)) is None
    (dummy,) = checkpw_calls
    assert dummy.split(b"$")[2] == b"05"
    assert dummy != auth._users["alice"]


def test_passwords_over_72_bytes_are_refused_not_truncated() -> None:
    """bcrypt reads 72 bytes; a longer password sharing that prefix must not get in."""
    prefix = "x" * 72
    auth = BasicAuth({"alice": hashed(prefix)})
    assert auth.check(basic("alice", prefix)) == "alice"
    assert auth.check(basic("alice", prefix + "anything")) is None


def test_at_most_two_bcrypt_rounds_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight concurrent wrong-password checks never run more than two bcrypt rounds at once."""
    auth = BasicAuth({"alice": hashed(PASSWORD)})
    real = bcrypt.checkpw
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def slow_checkpw(password: bytes, hashed_password: bytes) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        try:
            return real(password, hashed_password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(bcrypt, "checkpw", slow_checkpw)
    threads = [
        threading.Thread(target=auth.check, args=(basic("alice", f"guess{i}"),)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak[0] <= 2


def test_no_users_is_an_error() -> None:
    """A BasicAuth without users would refuse everyone: refuse to build it."""
    with pytest.raises(ValueError, match="at least one user"):
        BasicAuth({})

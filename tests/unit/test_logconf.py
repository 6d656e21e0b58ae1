"""Tests of monitor.logconf (rendering, routing, idempotence) and monitor.ratelimit."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from monitor.logconf import configure_logging, resolve_format
from monitor.ratelimit import RateLimitedSampler


class _TTY(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        """Pretend to be a TTY."""
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the root/kafka loggers and structlog back as they were after each test."""
    root = logging.getLogger()
    kafka = logging.getLogger("kafka")
    handlers, root_level, kafka_level = list(root.handlers), root.level, kafka.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(root_level)
    kafka.setLevel(kafka_level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the stream parsed as one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_auto_format_on_non_tty_writes_json_lines() -> None:
    """On a non-TTY stream, structlog and stdlib records become parseable JSON lines."""
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    structlog.get_logger("monitor.daemon").info("evaluated", model="fraud", drifted=2)
    logging.getLogger("monitor.other").warning("plain %s record", "stdlib")
    records = _json_lines(stream)
    assert len(records) == 2
    first, second = records
    assert first["event"] == "evaluated"
    assert (first["model"], first["drifted"]) == ("fraud", 2)
    assert (first["level"], first["logger"]) == ("info", "monitor.daemon")
    assert (second["event"], second["level"]) == ("plain stdlib record", "warning")
    assert second["logger"] == "monitor.other"
    for record in records:
        stamp = datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset() == UTC.utcoffset(stamp)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_level_filters_structlog_and_stdlib() -> None:
    """Records below the configured level are dropped from both logging paths."""
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    structlog.get_logger("monitor.x").info("hidden")
    logging.getLogger("monitor.y").info("hidden too")
    structlog.get_logger("monitor.x").error("shown")
    assert [r["event"] for r in _json_lines(stream)] == ["shown"]


def test_kafka_logger_held_at_warning_by_default() -> None:
    """kafka-python INFO chatter is dropped at level debug; its warnings still pass."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    kafka = logging.getLogger("kafka.conn")
    kafka.info("connecting")
    kafka.warning("broker %s unreachable", "b1:9092")
    structlog.get_logger("monitor.x").debug("own debug")
    records = _json_lines(stream)
    assert [(r["event"], r["logger"]) for r in records] == [
        ("broker b1:9092 unreachable", "kafka.conn"),
        ("own debug", "monitor.x"),
    ]


def test_kafka_level_can_be_lowered() -> None:
    """kafka_level='info' lets kafka-python INFO records through."""
    stream = io.StringIO()
    configure_logging("info", "json", stream, kafka_level="info")
    logging.getLogger("kafka.conn").info("connecting")
    assert [r["event"] for r in _json_lines(stream)] == ["connecting"]


def test_console_renderer_on_tty_and_json_when_forced() -> None:
    """auto picks the console renderer on a TTY; json is honoured even on a TTY."""
    tty = _TTY()
    configure_logging("info", "auto", tty)
    structlog.get_logger("monitor.cli").info("hello console", port=9108)
    text = tty.getvalue()
    assert "hello console" in text
    assert "monitor.cli" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])

    tty_json = _TTY()
    configure_logging("info", "json", tty_json)
    structlog.get_logger("monitor.cli").info("hello json")
    assert _json_lines(tty_json)[0]["event"] == "hello json"


def test_configure_is_idempotent() -> None:
    """A second call replaces the first handler: one copy per record, on the new stream only."""
    first, second = io.StringIO(), io.StringIO()
    log = structlog.get_logger("monitor.x")
    configure_logging("info", "json", first)
    log.info("one")
    configure_logging("info", "json", second)
    configure_logging("info", "json", second)
    log.info("two")
    logging.getLogger("kafka").warning("three")
    assert [r["event"] for r in _json_lines(first)] == ["one"]
    assert [r["event"] for r in _json_lines(second)] == ["two", "three"]


def test_exceptions_render_without_frame_locals() -> None:
    """A logged exception carries its type and message but never local variable values."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    secret_local = "Local-Secret-Value-42"
    try:
        raise RuntimeError("broker gone")
    except RuntimeError:
        structlog.get_logger("monitor.x").exception("failed", attempt=len(secret_local))
    (record,) = _json_lines(stream)
    assert record["event"] == "failed"
    assert "RuntimeError" in json.dumps(record["exception"])
    assert "broker gone" in json.dumps(record["exception"])
    assert secret_local not in stream.getvalue()


def test_invalid_level_and_format_are_rejected() -> None:
    """Unknown levels and formats raise ValueError instead of silently defaulting."""
    with pytest.raises(ValueError, match="log level"):
        configure_logging("verbose", "json", io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", io.StringIO())
    with pytest.raises(ValueError, match="kafka log level"):
        configure_logging("info", "json", io.StringIO(), kafka_level="loud")


@pytest.mark.parametrize(
    ("fmt", "tty", "expected"),
    [
        ("auto", False, "json"),
        ("auto", True, "console"),
        ("json", True, "json"),
        ("console", False, "console"),
    ],
)
def test_resolve_format(fmt: str, tty: bool, expected: str) -> None:
    """auto follows the stream's TTY-ness; explicit formats win."""
    stream = _TTY() if tty else io.StringIO()
    assert resolve_format(fmt, stream) == expected


# ------------------------------------------------------------------------------------------
# RateLimitedSampler
# ------------------------------------------------------------------------------------------


class _Clock:
    """A settable clock for the sampler."""

    def __init__(self, now: float = 1000.0) -> None:
        """Start at `now` seconds."""
        self.now = now

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


def test_sampler_allows_burst_then_blocks() -> None:
    """A full bucket allows exactly per_minute calls, then refuses and counts refusals."""
    clock = _Clock()
    sampler = RateLimitedSampler(5, clock)
    assert [sampler.allow() for _ in range(8)] == [True] * 5 + [False] * 3
    assert sampler.take_suppressed() == 3
    assert sampler.take_suppressed() == 0


def test_sampler_refills_at_rate() -> None:
    """Tokens come back at per_minute/60 per second: 6 per minute is one per 10 s."""
    clock = _Clock()
    sampler = RateLimitedSampler(6, clock)
    while sampler.allow():
        pass
    clock.now += 5.0
    assert not sampler.allow()
    clock.now += 5.0
    assert sampler.allow()
    assert not sampler.allow()
    clock.now += 30.0
    assert [sampler.allow() for _ in range(4)] == [True, True, True, False]


def test_sampler_refill_is_capped_at_capacity() -> None:
    """A long idle period refills at most per_minute tokens."""
    clock = _Clock()
    sampler = RateLimitedSampler(3, clock)
    for _ in range(3):
        assert sampler.allow()
    clock.now += 3600.0
    assert [sampler.allow() for _ in range(5)] == [True, True, True, False, False]


def test_sampler_zero_rate_never_allows_and_clock_regression_adds_nothing() -> None:
    """per_minute=0 never allows; a clock going backwards does not mint tokens."""
    clock = _Clock()
    never = RateLimitedSampler(0, clock)
    clock.now += 1e6
    assert not never.allow()
    sampler = RateLimitedSampler(1, clock)
    assert sampler.allow()
    clock.now -= 120.0
    assert not sampler.allow()
    clock.now += 120.0 + 59.0
    assert not sampler.allow()
    clock.now += 1.0
    assert sampler.allow()


def test_sampler_rejects_negative_rate() -> None:
    """A negative rate is a programming error."""
    with pytest.raises(ValueError, match="per_minute"):
        RateLimitedSampler(-1)

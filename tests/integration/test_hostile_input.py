"""Hostile and careless input against a real `driftmon run` and the real broker: bounded
memory, no payload in the logs, every rejected record in the dead-letter topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer

from bench.memory_hostile import BUDGET_MIB, hostile_array, vm_status
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, profile_to_json
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    write_config,
)
from tests.support.waiting import wait_until

FEATURES = [("x", "numeric"), ("c", "categorical")]
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def reference(path: Path) -> Path:
    """A file reference for (x, c)."""
    rng = np.random.default_rng(3)
    profile = fit_profile(
        "m",
        (FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)),
        {"x": rng.normal(0.0, 1.0, 2_000)},
        {"c": list(rng.choice(list("abcd"), 2_000))},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def send(bootstrap: str, topic: str, records: Sequence[Record]) -> None:
    """Produce (value, key, headers) records in order to partition 0; raises on any failure."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        bootstrap_timeout_ms=10_000,
        max_request_size=16 * 1024 * 1024,
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
    )
    try:
        futures = [
            producer.send(topic, value=v, key=k, headers=h or None, partition=0)
            for v, k, h in records
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()


def event(ts: float, model: str = "m", **features: Any) -> bytes:
    """One event as compact JSON."""
    return msgspec.json.encode({"ts": ts, "model": model, "features": features or {"x": 0.5}})


def flood(
    broker: TansuBroker,
    topic: str,
    tmp_path: Path,
    copies: int,
    *,
    compression: str | None = None,
    decode_worker: bool = False,
) -> tuple[float, Any]:
    """`copies` 349,000-element `[{},...]` arrays on each of the topic's 6 partitions into a
    real `driftmon run`: its peak RSS in MiB and its last scrape once all were consumed."""
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry("m", FEATURES, {"mode": "file", "path": str(reference(tmp_path / "r"))})
        ],
        event={"decode_worker": decode_worker},
    )
    value = hostile_array(349_000)
    assert len(value) == 1_047_001
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_kafka_connected", 1.0, timeout=30)
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap,
            max_request_size=4 << 20,
            compression_type=compression,
        )
        try:
            for _ in range(copies):
                for partition in range(6):
                    producer.send(topic, value=value, partition=partition)
            producer.flush(timeout=60)
        finally:
            producer.close()
        after = daemon.wait_metric(
            "driftmon_records_consumed_total", 6 * copies, timeout=180, topic=topic
        )
        assert daemon.proc is not None
        peak = vm_status(daemon.proc.pid)["VmHWM"]
        assert daemon.running and daemon.live()
        assert daemon.stop() == 0
    return peak, after


def rejected_by_reason(scrape: Any) -> dict[str, float]:
    """The nonzero `driftmon_records_rejected_total` of a scrape, by reason."""
    return {
        labels["reason"]: v for labels, v in scrape.find("driftmon_records_rejected_total") if v
    }


@pytest.mark.timeout(240)
def test_hostile_array_flood_stays_under_the_memory_budget(
    broker: TansuBroker, make_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """6 partitions x one 349,000-element `[{},...]` array keep driftmon run under its budget."""
    peak, after = flood(broker, make_topic(6), tmp_path, 1)
    assert peak <= BUDGET_MIB, f"peak RSS {peak:.0f} MiB > budget {BUDGET_MIB:.0f} MiB"
    assert rejected_by_reason(after) == {"unknown_model": 6 * 10_000, "too_large": 6 * 339_000}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("decode_worker", [False, True], ids=["in-process", "decode-worker"])
def test_a_gzip_compressed_flood_stays_under_the_memory_budget(
    broker: TansuBroker, make_topic: Callable[[int], str], tmp_path: Path, decode_worker: bool
) -> None:
    """64 gzip-compressed 349,000-element arrays on each of 6 partitions (1 KB each on the
    broker, 400 MB inflated): every one read, none skipped, under the budget (362 MiB before
    the inflate bound held per poll; 589 MiB with a decode worker before the submit bound, up
    to 267 before the batches in flight counted against the bound)."""
    peak, after = flood(
        broker, make_topic(6), tmp_path, 64, compression="gzip", decode_worker=decode_worker
    )
    skipped = sum(v for _, v in after.find("driftmon_kafka_unreadable_batches_total"))
    assert peak <= BUDGET_MIB, f"peak RSS {peak:.0f} MiB > budget {BUDGET_MIB:.0f} MiB"
    assert skipped == 0
    assert rejected_by_reason(after) == {
        "unknown_model": 384 * 10_000,
        "too_large": 384 * 339_000,
    }


MARKERS = (
    "123-45-6789",
    "alice.smith@example.com",
    "4111-1111-1111-1111",
    "KEYMARK",
    "HDRMARK",
    "FEATMARK",
    "VERSIONMARK",
)


@pytest.mark.timeout(180)
def test_logs_carry_no_payload_content_by_default(
    broker: TansuBroker, topic: str, make_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """Bad input carrying an SSN, an email and a card number leaves none of them in the log."""
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry("m", FEATURES, {"mode": "file", "path": str(reference(tmp_path / "r"))}),
            model_entry("ghost", FEATURES, {"mode": "file", "path": str(tmp_path / "none.json")}),
        ],
        kafka={"dead_letter_topic": make_topic(1), "max_message_bytes": 100_000},
        log_level="debug",
    )
    config["log"]["sample_rejects_per_minute"] = 10_000
    now = time.time()
    bad = [
        b'{"features":{"ssn":"123-45-6789"} not json',
        event(now, model="alice.smith@example.com"),
        msgspec.json.encode({"ts": "john.doe 4111-1111-1111-1111", "model": "m", "features": {}}),
        b"\xff alice.smith@example.com 123-45-6789",
        msgspec.json.encode(["123-45-6789", {"FEATMARK": 1}]),
        msgspec.json.encode("alice.smith@example.com"),
        msgspec.json.encode({"model": "m", "features": {"FEATMARK": "123-45-6789"}}),
        event(now, model_version="VERSIONMARK", x="4111-1111-1111-1111", FEATMARK="x"),
        event(now, model="ghost", x="123-45-6789"),
        b'{"pad":"' + b"123-45-6789 " * 10_000 + b'"}',
        None,
    ]
    records: list[Record] = [(v, b"KEYMARK-123-45-6789", [("h", b"HDRMARK")]) for v in bad]
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        send(broker.bootstrap, topic, records)
        daemon.wait_metric("driftmon_records_consumed_total", len(bad), timeout=60, topic=topic)
        wait_until(
            lambda: (
                sum(1 for line in daemon.log_lines() if line["event"] == "record rejected") >= 9
            ),
            10,
            message="the reject samples in the log",
            on_timeout=daemon.tail,
        )
        assert daemon.stop() == 0
    text = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    leaked = [marker for marker in MARKERS if marker in text]
    assert not leaked, f"{leaked} in the log:\n{text[-3000:]}"
    assert "record rejected" in text and "string of length" in text


def consume_all(bootstrap: str, topic: str, n: int, timeout_s: float = 60.0) -> list[Any]:
    """Read `n` records of `topic` from the start (fails after `timeout_s`)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"dlq-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=32 << 20,
        max_partition_fetch_bytes=16 << 20,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=3000,
    )
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
    finally:
        consumer.close()
    return out


@pytest.mark.timeout(240)
def test_every_rejected_record_reaches_the_dead_letter_topic(
    broker: TansuBroker, topic: str, make_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """Each kind of reject, a tombstone, a 3 MB and 1,500 small bad messages arrive with key,
    headers and reason headers; a 5 MB one too large for any request is counted instead and
    the records after it still arrive."""
    dlq = make_topic(1)
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry("m", FEATURES, {"mode": "file", "path": str(reference(tmp_path / "r"))}),
            model_entry("ghost", FEATURES, {"mode": "file", "path": str(tmp_path / "none.json")}),
        ],
        kafka={"dead_letter_topic": dlq, "max_message_bytes": 4 << 20},
    )
    now = time.time()
    kinds: list[tuple[bytes | None, str]] = [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (event(now, model="nope"), "unknown_model"),
        (msgspec.json.encode({"ts": "yesterday", "model": "m", "features": {}}), "bad_timestamp"),
        (None, "invalid_json"),  # a tombstone
        (b'{"ts":1,"model":"m","features":{"x":1.0}}' + b" " * 30, "too_late"),
        (event(now + 86_400), "too_early"),
        (event(now, model="ghost"), "no_reference"),
        (b"[" + b" " * (5 << 20) + b"]", "too_large"),  # too large for any request: counted
        (b"[" + b"x" * 3_000_000, "invalid_json"),
    ]
    kinds += [(f"bad {i}".encode(), "invalid_json") for i in range(1_500)]
    records: list[Record] = [
        (value, f"k-{i}".encode(), [("trace", f"t-{i}".encode())])
        for i, (value, _) in enumerate(kinds)
    ]
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        send(broker.bootstrap, topic, [(event(now), None, [])])  # sets the watermark
        daemon.wait_metric("driftmon_events_accepted_total", 1, timeout=60, model="m")
        send(broker.bootstrap, topic, records)
        total = 1 + len(records)
        daemon.wait_metric("driftmon_records_consumed_total", total, timeout=60, topic=topic)
        after = daemon.wait_metric(
            "driftmon_dead_letter_failures_total", 1, timeout=30, reason="too_large"
        )
        arrived = consume_all(broker.bootstrap, dlq, len(records) - 1)
        assert daemon.stop() == 0
    assert after.total("driftmon_dead_letter_failures_total") == 1
    by_offset = {dict(r.headers)["driftmon-offset"]: r for r in arrived}
    assert len(arrived) == len(records) - 1 == len(by_offset)
    for i, (value, reason) in enumerate(kinds):
        if reason == "too_large":
            assert str(1 + i).encode() not in by_offset
            continue
        record = by_offset[str(1 + i).encode()]
        headers = dict(record.headers)
        assert record.key == f"k-{i}".encode()
        assert headers["trace"] == f"t-{i}".encode()
        assert headers["driftmon-reason"] == reason.encode(), (i, headers)
        assert headers["driftmon-topic"] == topic.encode()
        assert headers["driftmon-partition"] == b"0"
        assert record.value == (b"" if value is None else value)
        assert ("driftmon-tombstone" in headers) == (value is None)

"""The reference registry on the real broker: RegistryLog and the `driftmon reference` commands."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from kafka import KafkaProducer

from monitor import kafka_records
from monitor.errors import RegistryRejectReason
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import ReferenceProfile, fit_profile, profile_to_json
from monitor.registry import ChunkRecord, RegistryTable, encode_profile
from monitor.registry_log import RegistryLog
from tests.support.broker import TansuBroker, free_port
from tests.support.daemon_harness import daemon_config, model_entry, run_cli, write_config


def _profile(model: str, shift: float, n_numeric: int = 2, version: str = "") -> ReferenceProfile:
    rng = np.random.default_rng(11)
    specs = [FeatureSpec(f"f{i:04d}", FeatureKind.NUMERIC) for i in range(n_numeric)]
    specs.append(FeatureSpec("country", FeatureKind.CATEGORICAL))
    numeric = {s.name: rng.normal(shift, 1.0, 1_000) for s in specs[:-1]}
    categorical = {"country": list(rng.choice(["GB", "DE", "FR", "US"], 1_000))}
    return fit_profile(model, specs, numeric, categorical, model_version=version)


def _registry_topic() -> str:
    return f"refs-{uuid.uuid4().hex[:10]}"


def _config(tmp_path: Path, bootstrap: str, topic: str, timeout: str = "10s") -> Path:
    config = daemon_config(
        bootstrap=bootstrap,
        topics=["features"],
        models=[model_entry("fraud", [("f0000", "numeric")], {"mode": "warmup"})],
        state_dir=tmp_path / "state",
    )
    config["references"] = {"topic": topic, "timeout": timeout}
    return write_config(tmp_path / "driftmon.yaml", config)


def test_wide_profile_round_trips_through_chunks_on_the_broker(broker: TansuBroker) -> None:
    """A 2,200-feature profile larger than one message is pushed in chunks and read back whole."""
    log = RegistryLog({"bootstrap_servers": broker.bootstrap}, _registry_topic())
    try:
        assert log.ensure_topic()
        assert not log.ensure_topic()
        profile = _profile("wide", 0.0, n_numeric=2_199)
        records = encode_profile(profile, pushed_at=1.0, pushed_by="t", chunk_bytes=256 * 1024)
        assert len(records) > 2, "the profile must need more than one chunk"
        assert sum(len(v) for _, v in records) > 1_048_576
        log.publish(records)
        table = RegistryTable()
        assert log.read_to_end(table) == []
        registered = table.profiles[profile.reference_id]
        assert profile_to_json(registered.profile) == profile_to_json(profile)
        assert len(registered.profile.features) == 2_200
    finally:
        log.close()


def test_tampered_chunk_on_the_broker_is_refused_and_the_old_reference_stays(
    broker: TansuBroker,
) -> None:
    """A tampered chunk is counted as a hash mismatch; the earlier activation is untouched."""
    log = RegistryLog({"bootstrap_servers": broker.bootstrap}, _registry_topic())
    try:
        log.ensure_topic()
        good, bad = _profile("fraud", 0.0), _profile("fraud", 2.0)
        log.publish(encode_profile(good, pushed_at=1.0, pushed_by="t"))
        records = encode_profile(bad, pushed_at=2.0, pushed_by="t", chunk_bytes=1024)
        chunk = msgspec.msgpack.decode(records[0][1], type=ChunkRecord)
        chunk.data = chunk.data[:-1] + bytes([chunk.data[-1] ^ 0xFF])
        records[0] = (records[0][0], msgspec.msgpack.encode(chunk))
        log.publish([*records, (b"junk", b"\x00garbage"), (b"tomb", b"")])
        table = RegistryTable()
        refused = log.read_to_end(table)
        assert [r.reason for r in refused] == [
            RegistryRejectReason.HASH_MISMATCH,
            RegistryRejectReason.UNDECODABLE,
            RegistryRejectReason.UNDECODABLE,
        ]
        assert set(table.profiles) == {good.reference_id}
    finally:
        log.close()


def test_reference_commands_push_activate_list_show_and_roll_back(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """The CLI registers, activates, lists, shows and rolls back, one step each time."""
    config = _config(tmp_path, broker.bootstrap, _registry_topic())
    files = []
    for i, shift in enumerate((0.0, 1.0, 2.0)):
        path = tmp_path / f"ref{i}.json"
        path.write_text(profile_to_json(_profile("fraud", shift, version=f"v{i}")))
        files.append(path)
    ids = []
    for i, path in enumerate(files):
        done = run_cli(
            "reference", "push", str(path), "--activate", "--reason", f"r{i}", "-c", str(config)
        )
        assert done.returncode == 0, done.stderr
        assert "registered sha256:" in done.stdout and "active" in done.stdout
        ids.append(done.stdout.split()[1])
    again = run_cli("reference", "push", str(files[0]), "-c", str(config))
    assert again.returncode == 0 and "already registered" in again.stdout

    listing = run_cli("reference", "list", "--model", "fraud", "-c", str(config))
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "MODEL", "VERSION"]
    assert [line.split()[0] for line in lines[1:]] == ids
    assert "yes" in lines[3] and "yes" not in lines[1] + lines[2]

    for expected in (ids[1], ids[0]):
        back = run_cli(
            "reference", "rollback", "--model", "fraud", "--reason", "bad", "-c", str(config)
        )
        assert back.returncode == 0, back.stderr
        assert f"{expected} active" in back.stdout
    none_left = run_cli("reference", "rollback", "--model", "fraud", "-c", str(config))
    assert none_left.returncode == 2 and "no earlier activation" in none_left.stderr

    forward = run_cli("reference", "activate", "--model", "fraud", ids[2][7:15], "-c", str(config))
    assert forward.returncode == 0 and f"{ids[2]} active" in forward.stdout
    shown = run_cli("reference", "show", ids[2], "-c", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "model_version  v2" in shown.stdout
    history = [line for line in shown.stdout.splitlines() if line.startswith("  ")]
    tokens = [next(t for t in line.split() if t.startswith("sha256:")) for line in history]
    assert tokens == [ids[2], ids[0], ids[1], ids[2], ids[1], ids[0]]


def test_reference_commands_refuse_bad_requests_clearly(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Unknown ids and foreign models exit 2, a bad file and a dead registry exit 1."""
    config = _config(tmp_path, broker.bootstrap, _registry_topic())
    other = tmp_path / "churn.json"
    other.write_text(profile_to_json(_profile("churn", 0.0)))
    assert run_cli("reference", "push", str(other), "-c", str(config)).returncode == 0
    cases = [
        (("activate", "--model", "fraud", "sha256:ffff"), 2, "no registered reference"),
        (
            ("activate", "--model", "fraud", other.name and _profile("churn", 0.0).reference_id),
            2,
            "not 'fraud'",
        ),
        (("show", "nothing"), 2, "no registered reference"),
        (("rollback", "--model", "fraud"), 2, "no active reference"),
    ]
    for args, code, message in cases:
        done = run_cli("reference", *args, "-c", str(config))
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    done = run_cli("reference", "push", str(garbage), "-c", str(config))
    assert done.returncode == 1 and "not valid JSON" in done.stderr
    huge = tmp_path / "huge.json"  # sparse: refused by its size, unread
    with huge.open("wb") as sparse:
        sparse.truncate(64 * 1024 * 1024 + 1)
    done = run_cli("reference", "push", str(huge), "-c", str(config))
    assert done.returncode == 1 and "more than the 67108864 a profile may have" in done.stderr
    dead = _config(tmp_path / "dead", f"127.0.0.1:{free_port()}", _registry_topic(), timeout="2s")
    done = run_cli("reference", "list", "-c", str(dead), timeout=60)
    assert done.returncode == 1, done.stderr
    assert "cannot reach Kafka" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("action", ["push", "list", "show", "activate", "rollback"])
def test_reference_commands_need_a_config(action: str) -> None:
    """Each registry command without --config is a usage error (exit 2)."""
    done = run_cli("reference", action)
    assert done.returncode == 2


def _send_one(
    broker: TansuBroker, topic: str, producer_kwargs: dict[str, Any], **record: Any
) -> None:
    """One record written to `topic` by a plain kafka-python producer (not driftmon's)."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **producer_kwargs)
    try:
        producer.send(topic, **record)
        producer.flush()
    finally:
        producer.close()


class _NotUtf8(str):
    """A header key that a client writes as bytes that are not UTF-8."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"\xff\xfe"


def test_a_registry_record_with_a_header_key_that_is_not_utf8_does_not_hang_the_reader(
    broker: TansuBroker,
) -> None:
    """The registry is read to its end past such a record (kafka-python raised, then spun)."""
    topic = _registry_topic()
    log = RegistryLog({"bootstrap_servers": broker.bootstrap}, topic)
    try:
        log.ensure_topic()
        _send_one(broker, topic, {}, key=b"junk", value=b"\x00", headers=[(_NotUtf8("k"), b"v")])
        good = _profile("fraud", 0.0)
        log.publish(encode_profile(good, pushed_at=1.0, pushed_by="t"))
        table = RegistryTable()
        refused: list[Any] = []
        reader = threading.Thread(target=lambda: refused.extend(log.read_to_end(table)))
        reader.daemon = True
        reader.start()
        reader.join(60.0)
        assert not reader.is_alive(), "read_to_end did not return"
        assert [r.reason for r in refused] == [RegistryRejectReason.UNDECODABLE]
        assert set(table.profiles) == {good.reference_id}
    finally:
        log.close()


def test_a_registry_batch_skipped_unread_is_refused_as_undecodable(
    broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip batch beyond the inflate bound is skipped, counted as one undecodable refusal
    (the metric and the log see it), and the profile after it registers."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    topic = _registry_topic()
    log = RegistryLog({"bootstrap_servers": broker.bootstrap}, topic)
    try:
        log.ensure_topic()
        gzip = {"compression_type": "gzip", "max_request_size": 4 << 20}
        _send_one(broker, topic, gzip, key=b"bomb", value=bytes(2 << 20))
        good = _profile("fraud", 0.0)
        log.publish(encode_profile(good, pushed_at=1.0, pushed_by="t"))
        table = RegistryTable()
        refused = log.read_to_end(table)
        assert [r.reason for r in refused] == [RegistryRejectReason.UNDECODABLE]
        assert "skipped unread (too_large" in refused[0].detail
        assert set(table.profiles) == {good.reference_id}
    finally:
        log.close()

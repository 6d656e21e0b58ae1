"""The roles of docs/security.md against a real Apache Kafka with SCRAM and ACLs.

Every `kafka-acls.sh` command of the document is run as written (only `$B` and
`admin.properties` filled in) through Kafka's own AclCommand; then the daemon role must be
able to do its job with exactly those grants (a real `driftmon run` logging in with
SCRAM-SHA-512) and nothing more, and the operator role likewise.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from tests.support.apache_kafka import USERS, ApacheKafka
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry, write_config
from tests.support.security_doc import SECURITY_DOC, acl_commands

SOURCE, GROUP = "features", "driftmon"
AUTH_FAILED = "Authentication failed during authentication due to invalid credentials"
"""kafka-python's log line for a refused SCRAM password."""
DEAD_LETTERS, REGISTRY, STATE = "driftmon.dead-letters", "driftmon.references", "driftmon.state"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """Apache Kafka with the document's topics and every one of its ACL commands applied."""
    with ApacheKafka(tmp_path_factory.mktemp("apache-kafka")) as broker:
        admin = KafkaAdminClient(**broker.client_kwargs("admin"))
        try:
            admin.create_topics(
                {t: {"num_partitions": 1, "replication_factor": 1} for t in (SOURCE, DEAD_LETTERS)}
                | {t: {"num_partitions": 1, "replication_factor": 1} for t in (REGISTRY, STATE)}
            )
        finally:
            admin.close()
        for argv in acl_commands(SECURITY_DOC.read_text()):
            assert argv[0] == "kafka-acls.sh"
            args = [
                broker.bootstrap
                if a == "$B"
                else str(broker.admin_properties)
                if a == "admin.properties"
                else a
                for a in argv[1:]
            ]
            assert "--bootstrap-server" in args and "--command-config" in args
            broker.run_java("org.apache.kafka.tools.AclCommand", args)
        yield broker


def produce(kafka: ApacheKafka, user: str, topic: str, values: list[bytes]) -> None:
    """Send as `user` and wait for every acknowledgement (raises on refusal)."""
    producer = KafkaProducer(
        **kafka.client_kwargs(user), max_block_ms=15_000, bootstrap_timeout_ms=15_000
    )
    try:
        futures = [producer.send(topic, value=v) for v in values]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=15)
    finally:
        producer.close(timeout=5)


def consume_all(kafka: ApacheKafka, user: str, topic: str, group: str | None = None) -> list[bytes]:
    """Every record of `topic`, read as `user` (in `group` if given)."""
    consumer = KafkaConsumer(
        topic,
        **kafka.client_kwargs(user),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8_000,
    )
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def refused(action: Callable[[], object]) -> str:
    """Run `action()`; the name of the Kafka error it raised (AssertionError if it succeeded)."""
    try:
        action()
    except KafkaError as exc:
        return type(exc).__name__
    raise AssertionError("the broker allowed what the role must not do")


def test_acl_commands_created_the_documented_grants(kafka: ApacheKafka) -> None:
    """Kafka lists, per principal, exactly the grants the document's commands add."""
    daemon = kafka.acls("--list", "--principal", "User:driftmon")
    operator = kafka.acls("--list", "--principal", "User:driftmon-operator")
    for topic in (SOURCE, DEAD_LETTERS, REGISTRY, STATE):
        assert f"name={topic}," in daemon
    assert f"name={GROUP}," in daemon
    assert f"name={REGISTRY}," in operator
    assert f"name={SOURCE}," not in operator


def test_daemon_role_consumes_commits_and_writes_dead_letters(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    """`driftmon run` as User:driftmon (SCRAM-SHA-512) counts every event of the source topic,
    commits its offsets to group `driftmon` and copies the bad record to the dead letters."""
    start = time.time() - 400
    events = [
        json.dumps({"ts": start + i, "model": "m", "features": {"x": float(i % 37)}}).encode()
        for i in range(200)
    ]
    produce(kafka, "admin", SOURCE, [b"{broken", *events])
    config = daemon_config(
        bootstrap=kafka.bootstrap,
        topics=[SOURCE],
        group_id=GROUP,
        models=[model_entry("m", [("x", "numeric")], {"mode": "warmup", "warmup_events": 100})],
        state_dir=tmp_path / "state",
        evaluation={"interval": "1s", "min_samples": 100},
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "driftmon",
            "dead_letter_topic": DEAD_LETTERS,
        },
    )
    path = write_config(tmp_path / "driftmon.yaml", config)
    env = {"DRIFTMON_KAFKA__SASL_PASSWORD": USERS["driftmon"]}
    with DaemonProcess(path, tmp_path, env=env) as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_records_consumed_total", 201, timeout=90, topic=SOURCE)
        daemon.wait_metric("driftmon_events_accepted_total", 200, model="m")
        daemon.wait_ready(timeout=60)
        scraped = daemon.wait_metric(
            "driftmon_offset_commits_total", 0, timeout=5, result="failure"
        )
        assert scraped.value("driftmon_kafka_connected") == 1
        assert daemon.stop() == 0
        assert "AuthorizationFailed" not in daemon.log_path.read_text()
    assert consume_all(kafka, "admin", DEAD_LETTERS) == [b"{broken"]
    assert USERS["driftmon"] not in daemon.log_path.read_text()


def test_daemon_role_cannot_write_sources_or_references(kafka: ApacheKafka) -> None:
    """User:driftmon may not produce to the source topic nor to the reference registry."""
    for topic in (SOURCE, REGISTRY):
        name = refused(functools.partial(produce, kafka, "driftmon", topic, [b"x"]))
        assert "Authorization" in name, name


def test_operator_role_writes_and_reads_the_registry_only(
    kafka: ApacheKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """User:driftmon-operator (SCRAM-SHA-256 as well) writes and reads the registry, but may not
    read the source topic or write the dead letters."""
    produce(kafka, "driftmon-operator", REGISTRY, [b"activation"])
    assert b"activation" in consume_all(kafka, "driftmon-operator", REGISTRY)
    producer = KafkaProducer(
        **kafka.client_kwargs("driftmon-operator", "SCRAM-SHA-256"), max_block_ms=15_000
    )
    try:
        producer.send(REGISTRY, b"by scram-sha-256").get(timeout=15)
    finally:
        producer.close(timeout=5)
    name = refused(lambda: produce(kafka, "driftmon-operator", DEAD_LETTERS, [b"x"]))
    assert "Authorization" in name, name
    # kafka-python does not raise for a subscribed topic it may not read: it gets nothing,
    # while the admin reads the same topic (a record of its own: this test runs alone too),
    # and the refusal is logged.
    produce(kafka, "admin", SOURCE, [b"for the admin"])
    assert consume_all(kafka, "driftmon-operator", SOURCE) == []
    assert f"Topic {SOURCE} is not authorized" in caplog.text
    assert b"for the admin" in consume_all(kafka, "admin", SOURCE)


def test_wrong_password_is_refused(kafka: ApacheKafka) -> None:
    """A SCRAM login with the wrong password gets no connection at all."""
    kwargs = {**kafka.client_kwargs("driftmon"), "sasl_plain_password": "not-the-password"}
    name = refused(lambda: KafkaConsumer(SOURCE, **kwargs, bootstrap_timeout_ms=5_000))
    assert name in {"KafkaTimeoutError", "NoBrokersAvailable", "SaslAuthenticationFailedError"}


def test_daemon_with_a_wrong_password_stays_up_and_says_why(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    """A wrong SCRAM password: the daemon stays alive and not ready, retries, and its log names
    the failed authentication (kafka-python's line) without the password."""
    wrong = "Wrong-Pa55word-123"
    config = daemon_config(
        bootstrap=kafka.bootstrap,
        topics=[SOURCE],
        models=[model_entry("m", [("x", "numeric")], {"mode": "warmup", "warmup_events": 100})],
        state_dir=tmp_path / "state",
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "driftmon",
        },
    )
    path = write_config(tmp_path / "driftmon.yaml", config)
    with DaemonProcess(path, tmp_path, env={"DRIFTMON_KAFKA__SASL_PASSWORD": wrong}) as daemon:
        daemon.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # a loaded machine may time out before it fails
            assert daemon.running, daemon.tail()
            failures = [
                line
                for line in daemon.log_lines()
                if str(line.get("event", "")).startswith("kafka connect failed")
            ]
            if len(failures) >= 2 and AUTH_FAILED in daemon.log_path.read_text():
                break
            time.sleep(0.5)
        assert len(failures) >= 2, daemon.tail()
        assert daemon.live() and not daemon.ready()
        assert daemon.stop() == 0
    text = daemon.log_path.read_text()
    assert AUTH_FAILED in text
    assert wrong not in text
    assert "Traceback" not in text


def test_operator_pushes_and_activates_and_a_registry_daemon_follows_with_read_only(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    """With the document's grants, the operator pushes and activates a profile (the topic
    exists, the operator may not create topics) and a `reference.mode: registry` daemon
    logged in as User:driftmon, which may only read the registry, uses it."""
    import numpy as np

    from monitor.model import FeatureKind, FeatureSpec
    from monitor.reference import fit_profile, profile_to_json
    from tests.support.daemon_harness import run_cli

    rng = np.random.default_rng(4)
    profile = fit_profile(
        "m", [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": rng.normal(size=500)}, {}
    )
    profile_file = tmp_path / "m.json"
    profile_file.write_text(profile_to_json(profile))
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"}

    def config(user: str, name: str) -> Path:
        body = daemon_config(
            bootstrap=kafka.bootstrap,
            topics=[SOURCE],
            group_id=GROUP,
            models=[model_entry("m", [("x", "numeric")], {"mode": "registry"})],
            state_dir=tmp_path / name / "state",
            kafka={**sasl, "sasl_username": user},
        )
        body["references"] = {"topic": REGISTRY, "timeout": "15s"}
        return write_config(tmp_path / name / "driftmon.yaml", body)

    operator_env = {"DRIFTMON_KAFKA__SASL_PASSWORD": USERS["driftmon-operator"]}
    pushed = run_cli(
        "reference",
        "push",
        str(profile_file),
        "--activate",
        "-c",
        str(config("driftmon-operator", "op")),
        env=operator_env,
    )
    assert pushed.returncode == 0, pushed.stderr
    env = {"DRIFTMON_KAFKA__SASL_PASSWORD": USERS["driftmon"]}
    with DaemonProcess(config("driftmon", "daemon"), tmp_path / "run", env=env) as daemon:
        daemon.start()
        scraped = daemon.wait_metric(
            "driftmon_reference_info",
            1,
            timeout=90,
            model="m",
            reference_id=profile.reference_id,
            mode="registry",
            model_version="",
        )
        assert (
            scraped.value("driftmon_reference_activations_total", model="m", cause="operator") == 1
        )
        assert daemon.stop() == 0
    assert "AuthorizationFailed" not in daemon.log_path.read_text()

"""A real Apache Kafka 4.1 (single node, KRaft) with SASL/SCRAM and the ACL authorizer.

tansu has no SASL and no authorization, so the ACLs of docs/security.md and a real SCRAM login
are checked against Apache Kafka itself, assembled from Maven Central: `mvn
dependency:build-classpath` on tests/support/apache-kafka/pom.xml (jars cached in ~/.m2; Java
and Maven come from `make system-packages`), `kafka.tools.StorageTool format` with the SCRAM
users, then `kafka.Kafka`. Everything on 127.0.0.1, free ports, data in a temp directory,
stopped by PID.

Listeners: `SASL_PLAINTEXT` (`.bootstrap`, SCRAM-SHA-256/512; every client must log in and
is subject to ACLs), a PLAINTEXT listener for the broker's own traffic and the controller.
`allow.everyone.if.no.acl.found=false`: a principal may do only what an ACL grants;
`User:admin` is the super user.
"""

from __future__ import annotations

import fcntl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.dev.broker import LoggedProcess, free_port, port_open
from tests.support.ops_services import REPO_ROOT, find_tool

POM = REPO_ROOT / "tests" / "support" / "apache-kafka" / "pom.xml"
USERS = {
    "admin": "admin-secret",
    "driftmon": "driftmon-Secret-1",
    "driftmon-operator": "operator-Secret-2",
}
_START_TIMEOUT_S = 90.0
_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def kafka_classpath(workdir: Path) -> str:
    """The class path of the pom's jars (downloaded into ~/.m2 on the first call). One
    resolution at a time on the machine (pytest workers share ~/.m2, and Maven's local
    repository is not safe for concurrent downloads of one artifact)."""
    out = workdir / "classpath.txt"
    with (Path(tempfile.gettempdir()) / "driftmon-mvn-resolve.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _resolve(out)


def _resolve(out: Path) -> str:
    """Run `mvn dependency:build-classpath` into `out`; the class path it wrote."""
    proc = subprocess.run(
        [
            find_tool("mvn"),
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"mvn could not resolve Apache Kafka:\n{proc.stdout}\n{proc.stderr}")
    return out.read_text().strip()


def server_properties(data: Path, port: int, internal: int, controller: int) -> str:
    """The broker config: SCRAM on the SASL listener, StandardAuthorizer, admin super user."""
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller}",
        f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},"
        f"CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=INTERNAL",
        f"sasl.enabled.mechanisms={','.join(_MECHANISMS)}",
        *(f"listener.name.sasl_plaintext.{m.lower()}.sasl.jaas.config={jaas}" for m in _MECHANISMS),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # ANONYMOUS: the broker's own PLAINTEXT listeners (inter-broker, controller) only.
        "super.users=User:admin;User:ANONYMOUS",
        "allow.everyone.if.no.acl.found=false",
        f"log.dirs={data}",
        "num.partitions=1",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
    ]
    return "\n".join(lines) + "\n"


class ApacheKafka(LoggedProcess):
    """One Kafka broker+controller JVM; `.bootstrap` is its SASL_PLAINTEXT listener."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir / "kafka.log")
        self.workdir = workdir
        self.port, self.internal_port, self.controller_port = free_port(), free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.java = find_tool("java")
        self.classpath = ""
        self.admin_properties = workdir / "admin.properties"
        self.admin_properties.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{USERS["admin"]}";\n'
        )

    def run_java(self, main: str, args: Sequence[str], timeout: float = 120.0) -> str:
        """Run a Kafka tool class to completion; its stdout (AssertionError on failure)."""
        proc = subprocess.run(
            [self.java, "-Xmx256m", "-cp", self.classpath, main, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"{main} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        """Resolve the jars, format the storage with the SCRAM users, start, wait for the port."""
        self.classpath = kafka_classpath(self.workdir)
        data = self.workdir / "data"
        config = self.workdir / "server.properties"
        config.write_text(
            server_properties(data, self.port, self.internal_port, self.controller_port)
        )
        cluster_id = self.run_java("kafka.tools.StorageTool", ["random-uuid"]).strip()
        scram = [
            arg
            for user, password in USERS.items()
            for mechanism in _MECHANISMS
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
        ]
        self.run_java(
            "kafka.tools.StorageTool", ["format", "-t", cluster_id, "-c", str(config), *scram]
        )
        self._launch()

    def _launch(self) -> None:
        """Spawn the broker JVM on the formatted storage and wait for its port."""
        config = self.workdir / "server.properties"
        self._spawn(
            [
                self.java,
                "-Xmx512m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                self.classpath,
                "kafka.Kafka",
                str(config),
            ]
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not port_open(self.port):
            if not self.running or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise AssertionError(f"Apache Kafka did not start:\n{tail}")
            time.sleep(0.2)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the broker, stay down `down_s` seconds (an outage), start it on the same data."""
        self.stop()
        time.sleep(down_s)
        self._launch()

    def acls(self, *args: str) -> str:
        """`kafka-acls.sh --bootstrap-server B --command-config admin.properties ARGS`."""
        return self.run_java(
            "org.apache.kafka.tools.AclCommand",
            [
                "--bootstrap-server",
                self.bootstrap,
                "--command-config",
                str(self.admin_properties),
                *args,
            ],
        )

    def client_kwargs(self, user: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, object]:
        """kafka-python kwargs that log in as `user` with its password."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": USERS[user],
        }

    def create_topic(self, topic: str, partitions: int, timeout: float = 30.0) -> None:
        """Create `topic` and wait until a fresh client's metadata has a leader for each of its
        partitions.

        Tests start their consumers on a topic every broker already serves, so a produce or
        a first fetch never races the topic's creation.
        """
        from kafka import KafkaAdminClient, KafkaConsumer
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(**self.client_kwargs("admin"))
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            admin.close()
        deadline = time.monotonic() + timeout
        while True:
            consumer = KafkaConsumer(**self.client_kwargs("admin"))
            try:
                found = consumer.partitions_for_topic(topic) or set()
            finally:
                consumer.close()
            if len(found) == partitions:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic}: {len(found)} of {partitions} partitions")
            time.sleep(0.2)

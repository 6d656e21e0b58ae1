"""A fleet of `driftmon run` processes in one consumer group, for integration tests.

`Fleet(config, workdir, topic=..., partitions=...)` runs replicas of one daemon config, each a
real `DaemonProcess` with its own work directory, log files and HTTP port (127.0.0.1, port 0,
read from its log). With the file backend (`state.backend` absent or `file`) each replica
gets its own `state.dir`, so their checkpoints never collide; with `state.backend: kafka` the
config is used as it is. What a test does to the fleet:

- `start(n)` / `add()`: start replicas (`r1`, `r2`, ... in order; a name is never reused);
- `kill(r)` (kill -9), `restart(r)`, `pause(r)` / `resume(r)` (SIGSTOP / SIGCONT: a paused
  replica past the session timeout is a zombie), `terminate(r)` (SIGTERM, the exit code);
- per replica: `metrics(r)`, `status(r)`, `partitions(r)` (the source partitions it owns,
  from its `partitions assigned` / `partitions revoked` log lines), `consumed(r)`;
- waits: `wait_ready`, `wait_split` (the live replicas own disjoint, non-empty shares that
  cover every partition), `wait_until` (any predicate over the fleet, with every live
  replica's log tail on timeout).

Leaving the `with` block resumes and kills every replica still running (nothing outlives a
test). `produce_round_robin` sends events evenly over the partitions with kafka-python.

For tests that drive bare `DaemonProcess` replicas: `replica_set` (a context manager: `n`
replicas of one config, started in order, every one closed on exit) and `stop_all`.
"""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from kafka import KafkaProducer

from tests.support.daemon_harness import DaemonProcess, Metrics, write_config
from tests.support.waiting import GiveUpError, wait_until

T = TypeVar("T")

CONSUMED = "driftmon_records_consumed_total"


@dataclass
class Replica:
    """One member of the fleet: its name, process and whether it is paused (SIGSTOP)."""

    name: str
    process: DaemonProcess
    paused: bool = field(default=False)

    @property
    def running(self) -> bool:
        """True while the process is alive (paused or not)."""
        return self.process.running

    @property
    def live(self) -> bool:
        """True while the process is alive and not paused: it answers HTTP."""
        return self.running and not self.paused

    @property
    def pid(self) -> int:
        """The process id of the current run."""
        proc = self.process.proc
        if proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return proc.pid


class Fleet:
    """Replicas of one `driftmon run` config in one consumer group (see the module doc)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        topic: str,
        partitions: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`config`: a daemon config (tests.support.daemon_harness.daemon_config); `topic` and
        `partitions`: the source topic whose partitions the replicas share."""
        self.config = copy.deepcopy(dict(config))
        self.workdir = workdir
        self.topic = topic
        self.partition_count = partitions
        self.env = dict(env or {})
        self.replicas: list[Replica] = []

    # -- membership --------------------------------------------------------------------------

    @property
    def file_backend(self) -> bool:
        """True when the replicas checkpoint to files (each then needs its own state.dir)."""
        return str(self.config.get("state", {}).get("backend", "file")) == "file"

    def add(self, *, start: bool = True, wait_http: float = 30.0) -> Replica:
        """A new replica `r<N>` with its own directory and config; started unless told not."""
        name = f"r{len(self.replicas) + 1}"
        home = self.workdir / name
        config = copy.deepcopy(self.config)
        if self.file_backend:
            config.setdefault("state", {})["dir"] = str(home / "state")
        path = write_config(home / "driftmon.yaml", config)
        replica = Replica(name, DaemonProcess(path, home, env=self.env))
        self.replicas.append(replica)
        if start:
            replica.process.start(wait_http=wait_http)
        return replica

    def start(self, n: int, *, wait_http: float = 30.0) -> list[Replica]:
        """Add and start `n` replicas; returns them."""
        return [self.add(wait_http=wait_http) for _ in range(n)]

    @property
    def live(self) -> list[Replica]:
        """The replicas alive and not paused, in order of creation."""
        return [r for r in self.replicas if r.live]

    # -- what happens to a replica -----------------------------------------------------------

    def kill(self, replica: Replica) -> None:
        """kill -9 (a paused replica is killed as it is) and reap."""
        replica.process.kill()
        replica.paused = False

    def restart(self, replica: Replica, *, wait_http: float = 30.0) -> None:
        """Start a stopped or killed replica again, same name, directory and config."""
        replica.process.start(wait_http=wait_http)

    def pause(self, replica: Replica) -> None:
        """SIGSTOP: the process keeps its sockets but runs nothing (no heartbeat)."""
        os.kill(replica.pid, signal.SIGSTOP)
        replica.paused = True

    def resume(self, replica: Replica) -> None:
        """SIGCONT: a paused replica carries on where it stopped (a zombie, if its partitions
        moved meanwhile)."""
        os.kill(replica.pid, signal.SIGCONT)
        replica.paused = False

    def terminate(self, replica: Replica, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit; returns the exit code."""
        if replica.paused:
            self.resume(replica)
        return replica.process.stop(timeout)

    def close(self) -> None:
        """Resume paused replicas and kill every replica still running (idempotent)."""
        for replica in self.replicas:
            if replica.paused and replica.running:
                self.resume(replica)
            replica.process.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a replica says -----------------------------------------------------------------

    def metrics(self, replica: Replica, *names: str) -> Metrics:
        """Scrape the replica's /metrics (only the families `names`, when given)."""
        return replica.process.metrics(*names)

    def status(self, replica: Replica) -> dict[str, Any]:
        """The replica's /status document."""
        return replica.process.status()

    def partitions(self, replica: Replica) -> frozenset[int]:
        """The partitions of the fleet's topic the replica owns now: those of its last
        `partitions assigned` log line, none after a `partitions revoked` one (kafka-python
        assigns and revokes whole assignments)."""
        owned: frozenset[int] = frozenset()
        for line in replica.process.log_lines():
            event = line.get("event")
            if event not in ("partitions assigned", "partitions revoked"):
                continue
            tps = line.get("partitions") or []
            mine = frozenset(int(p) for topic, p in tps if topic == self.topic)
            owned = mine if event == "partitions assigned" else owned - mine
        return owned

    def consumed(self, replica: Replica) -> float:
        """Messages of the fleet's topic the replica consumed in its current run."""
        return self.metrics(replica).value(CONSUMED, topic=self.topic)

    def shares(self) -> dict[str, frozenset[int]]:
        """The partitions each live replica owns, by replica name."""
        return {r.name: self.partitions(r) for r in self.live}

    # -- waiting -----------------------------------------------------------------------------

    def tails(self, chars: int = 1500) -> str:
        """The log tail of every replica that ran, for failure messages."""
        return "\n".join(
            f"[{r.name}{' paused' if r.paused else ''}] {r.process.tail(chars)}"
            for r in self.replicas
            if r.process.runs
        )

    def wait_until(self, predicate: Callable[[], T | None], timeout: float, message: str) -> T:
        """Poll `predicate` until truthy; fails early when a live replica's process died."""

        def check() -> T | None:
            for r in self.replicas:
                if not r.paused and r.process.proc is not None and not r.running:
                    code = r.process.proc.returncode
                    if code not in (0, -signal.SIGKILL):
                        raise GiveUpError(f"{r.name} exited with {code}:\n{r.process.tail()}")
            return predicate()

        return wait_until(check, timeout, interval=0.2, message=message, on_timeout=self.tails)

    def wait_ready(self, replicas: Sequence[Replica] | None = None, timeout: float = 60.0) -> None:
        """Wait until every given replica (default: every live one) answers /readyz 200."""
        group = list(replicas) if replicas is not None else self.live
        self.wait_until(
            lambda: all(r.process.ready() for r in group),
            timeout,
            f"/readyz of {[r.name for r in group]}",
        )

    def split(self) -> dict[str, frozenset[int]] | None:
        """The live replicas' shares if they partition the topic (disjoint, each non-empty,
        covering every partition), else None."""
        shares = self.shares()
        owned = [p for share in shares.values() for p in share]
        complete = sorted(owned) == list(range(self.partition_count))
        return shares if complete and all(shares.values()) else None

    def wait_split(self, timeout: float = 90.0) -> dict[str, frozenset[int]]:
        """Wait until the live replicas split the topic's partitions; returns the shares."""
        return self.wait_until(
            self.split, timeout, f"the live replicas to split {self.partition_count} partitions"
        )


def produce_round_robin(
    client: Mapping[str, Any],
    topic: str,
    values: Iterable[bytes],
    partitions: int,
    *,
    first: int = 0,
) -> int:
    """Send the values to partitions first, first+1, ... in turn, flush, check every delivery;
    returns how many were sent. `client`: kafka-python connection kwargs."""
    producer = KafkaProducer(**dict(client), linger_ms=5)
    try:
        futures = [
            producer.send(topic, value=v, partition=(first + i) % partitions)
            for i, v in enumerate(values)
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(futures)


@contextmanager
def replica_set(
    config: Path, workdir: Path, n: int = 2, *, prefix: str = "r"
) -> Iterator[list[DaemonProcess]]:
    """`n` replicas of `config` in `workdir/<prefix>i`, started in order; all closed on exit."""
    with ExitStack() as stack:
        processes = [
            stack.enter_context(DaemonProcess(config, workdir / f"{prefix}{i}")) for i in range(n)
        ]
        for process in processes:
            process.start()
        yield processes


def stop_all(replicas: Iterable[DaemonProcess]) -> None:
    """SIGTERM each replica in turn and assert that it exits with code 0."""
    for replica in replicas:
        code = replica.stop()
        assert code == 0, f"{replica.workdir.name} exited with {code}:\n{replica.tail()}"


OWNED = "driftmon_partitions_owned"


def partitions_owned(process: DaemonProcess) -> float:
    """The source partitions a fleet replica has claimed (0 while it is not serving)."""
    try:
        return process.metrics(OWNED).value(OWNED)
    except Exception:  # starting, restarting or paused past the request timeout
        return 0.0


def wait_shared(processes: Sequence[DaemonProcess], partitions: int, timeout: float = 60.0) -> None:
    """Wait until every replica owns some of the `partitions` and together they own all."""

    def shared() -> bool:
        owned = [partitions_owned(p) for p in processes]
        return sum(owned) == partitions and all(o > 0 for o in owned)

    wait_until(shared, timeout, interval=0.5, message="every replica to own partitions")


def send_to(
    producer: KafkaProducer, topic: str, events: list[dict[str, Any]], to: list[int]
) -> None:
    """Send `events` (JSON) round-robin over the partitions `to` and wait until all are
    written."""
    for i, event in enumerate(events):
        producer.send(topic, msgspec.json.encode(event), partition=to[i % len(to)])
    producer.flush(timeout=60)


def split_leader(
    replicas: Sequence[DaemonProcess], topic: str, partitions: int
) -> tuple[list[int], list[int]]:
    """The source partitions of the leader (the owner of partition 0) and the others'."""
    leader = next(r for r in replicas if 0 in owned_partitions(r, topic))
    leading = owned_partitions(leader, topic)
    return sorted(leading), sorted(set(range(partitions)) - leading)


def owned_partitions(replica: DaemonProcess, topic: str) -> set[int]:
    """The source partitions a replica owns: those of its last `partitions assigned` line."""
    owned: set[int] = set()
    for line in replica.log_lines():
        if line.get("event") == "partitions assigned":
            owned = {int(p) for t, p in line.get("partitions") or [] if t == topic}
    return owned

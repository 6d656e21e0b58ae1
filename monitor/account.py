"""The account of one polled batch: every per-topic, per-reason and per-model count (stdlib only).

One `BatchAccount` travels with a batch from decoding (`monitor.decode`) through the model
runtimes (`monitor.runtime`) to the metrics and the dead-letter topic (`monitor.daemon`); it
is the only place a batch's counts are kept. Its contract:

- `consumed[topic]`: Kafka messages of the batch from the topic.
- Every record (event) of those messages is either accepted into a model's window
  (`events_accepted[model]`) or counted once in `rejected[(topic, reason)]`. A record the
  decoder accepted (`decoded[topic]`) that a window then drops (`too_late`, `too_early`,
  `outside_window`, `no_reference`) moves from accepted to rejected: `decoded[t]` =
  accepted-into-window records of t + the window drops of t.
- `dead_letters`: each message with at least one rejected record, once, with the reason of
  its first rejected record, in the order rejections were found. Nothing is capped: the batch
  holds at most `kafka.max_poll_records` messages.
- `samples`: at most `max_samples` `RejectSample`s (the first rejections found), each with
  position, reason and a detail text that holds no payload content unless the decoder was
  configured with `payload_preview`.
- `invalid[(model, feature)]`: feature values of the wrong type counted in accepted events.
- `newest_event[topic]`: the newest event time accepted into a window, per topic.

The counts grow in O(1) per message or per (topic, reason), never per record: the decoder
and the runtimes add counts computed with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.errors import RejectReason
from monitor.model import RawMessage

__all__ = ["BatchAccount", "RejectSample"]


@dataclass(frozen=True, slots=True)
class RejectSample:
    """One rejected record for the log: where it was, why, and a PII-free detail text."""

    topic: str
    partition: int
    offset: int
    reason: RejectReason
    detail: str


@dataclass(slots=True)
class BatchAccount:
    """Every count of one batch (see the module docstring for the contract)."""

    max_samples: int = 20
    consumed: dict[str, int] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)
    rejected: dict[tuple[str, RejectReason], int] = field(default_factory=dict)
    events_accepted: dict[str, int] = field(default_factory=dict)
    invalid: dict[tuple[str, str], int] = field(default_factory=dict)
    newest_event: dict[str, float] = field(default_factory=dict)
    dead_letters: dict[tuple[str, int, int], tuple[RawMessage, RejectReason]] = field(
        default_factory=dict
    )
    samples: list[RejectSample] = field(default_factory=list)

    def consume(self, topic: str, n: int) -> None:
        """Count `n` messages consumed from `topic`."""
        if n:
            self.consumed[topic] = self.consumed.get(topic, 0) + n

    def decode(self, topic: str, n: int) -> None:
        """Count `n` records of `topic` that passed decoding."""
        if n:
            self.decoded[topic] = self.decoded.get(topic, 0) + n

    def reject(self, topic: str, reason: RejectReason, n: int = 1) -> None:
        """Count `n` records of `topic` rejected whole for `reason`."""
        if n:
            key = (topic, reason)
            self.rejected[key] = self.rejected.get(key, 0) + n

    def dead_letter(self, message: RawMessage, reason: RejectReason) -> None:
        """Mark `message` for the dead-letter topic; the first reason given for it is kept."""
        key = (message.topic, message.partition, message.offset)
        if key not in self.dead_letters:
            self.dead_letters[key] = (message, reason)

    def wants_sample(self) -> bool:
        """True while fewer than `max_samples` samples were taken."""
        return len(self.samples) < self.max_samples

    def sample(self, message: RawMessage, reason: RejectReason, detail: str) -> None:
        """Keep one rejected record for the log, if the sample budget allows."""
        if self.wants_sample():
            self.samples.append(
                RejectSample(message.topic, message.partition, message.offset, reason, detail)
            )

    def accept_events(self, model: str, n: int) -> None:
        """Count `n` events of `model` accepted into its window."""
        if n:
            self.events_accepted[model] = self.events_accepted.get(model, 0) + n

    def add_invalid(self, model: str, feature: str, n: int) -> None:
        """Count `n` invalid values of a configured feature in accepted events."""
        if n:
            key = (model, feature)
            self.invalid[key] = self.invalid.get(key, 0) + n

    def event_time(self, topic: str, seconds: float) -> None:
        """Fold an accepted event time into the newest one of `topic`."""
        if seconds > self.newest_event.get(topic, float("-inf")):
            self.newest_event[topic] = seconds

    @property
    def total_rejected(self) -> int:
        """Rejected records over all topics and reasons."""
        return sum(self.rejected.values())

    @property
    def total_decoded(self) -> int:
        """Records that passed decoding, over all topics."""
        return sum(self.decoded.values())

    def rejected_by_reason(self) -> dict[RejectReason, int]:
        """Rejected records per reason, over all topics."""
        out: dict[RejectReason, int] = {}
        for (_, reason), n in self.rejected.items():
            out[reason] = out.get(reason, 0) + n
        return out

"""Deterministic sampling of Kafka messages by their coordinates (per model `sample_rate`).

Every message gets a number u in [0, 1) from its (topic, partition, offset) alone:

    x = h(topic) + partition * 0xD1B54A32D192ED03 + offset * 0x9E3779B97F4A7C15   (mod 2^64)
    u = splitmix64(x) >> 11, divided by 2^53

with h(topic) the first 8 bytes of BLAKE2b(topic) and splitmix64 the finaliser of Steele,
Lea and Flood's SplitMix64 (a bijection of 64-bit words that mixes every input bit into
every output bit). A model with rate r keeps the events of the messages with u < r. So a
replay of the same records (after a restart, a rebalance or a reset of the group) chooses
exactly the same events, the kept share is r up to binomial noise whatever the keys or
values, and the samples of a smaller rate are a subset of those of a larger one. The daemon
decodes only the messages some model keeps (u below the largest rate), so at rate 0.1 about
nine messages in ten are never parsed.

The statistics see the sampled counts: n_cur is the number of sampled events, so p-values
stay calibrated for the sample (docs/statistics.md); the rate only changes how much of the
stream a window holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.decode import ModelColumns
from monitor.model import RawMessage

FloatArray = npt.NDArray[np.float64]

_PARTITION_MIX = np.uint64(0xD1B54A32D192ED03)
_OFFSET_MIX = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def topic_hash(topic: str) -> int:
    """h(topic): the first 8 bytes of BLAKE2b of the UTF-8 topic name, as an integer."""
    return int.from_bytes(hashlib.blake2b(topic.encode(), digest_size=8).digest(), "little")


def splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 of each word (wrapping 64-bit arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(messages: Sequence[RawMessage]) -> FloatArray:
    """u in [0, 1) of every message (see the module docstring)."""
    n = len(messages)
    hashes = {topic: topic_hash(topic) for topic in {m.topic for m in messages}}
    return coordinate_uniforms(
        np.fromiter((hashes[m.topic] for m in messages), dtype=np.uint64, count=n),
        np.fromiter((m.partition for m in messages), dtype=np.int64, count=n),
        np.fromiter((m.offset for m in messages), dtype=np.int64, count=n),
    )


def coordinate_uniforms(
    topic_hashes: npt.NDArray[np.uint64],
    partitions: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
) -> FloatArray:
    """u in [0, 1) from arrays of h(topic), partition and offset (one entry per message)."""
    with np.errstate(over="ignore"):
        x = (
            topic_hashes.astype(np.uint64)
            + partitions.astype(np.uint64) * _PARTITION_MIX
            + offsets.astype(np.uint64) * _OFFSET_MIX
        )
    return (splitmix64(x) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def sample_messages(
    messages: Sequence[RawMessage], rate: float
) -> tuple[list[RawMessage], list[RawMessage], FloatArray]:
    """(kept, skipped, u of each kept message): the messages with u < rate, in order."""
    u = uniforms(messages)
    keep = u < rate
    kept = [m for m, k in zip(messages, keep.tolist(), strict=True) if k]
    skipped = [m for m, k in zip(messages, keep.tolist(), strict=True) if not k]
    return kept, skipped, u[keep]


def thin(columns: ModelColumns, u: FloatArray, rate: float) -> ModelColumns:
    """The events of `columns` whose message (`columns.messages` indexes `u`) has u < rate."""
    keep = u[columns.messages] < rate
    if bool(keep.all()):
        return columns
    return columns.select(keep)

"""monitor.sampling: the per-message hash behind `sample_rate` (determinism, share, subsets)."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from monitor.model import RawMessage
from monitor.sampling import coordinate_uniforms, sample_messages, topic_hash, uniforms


def _messages(topic: str, partition: int, offsets: range, value: bytes = b"{}") -> list[RawMessage]:
    return [RawMessage(topic, partition, o, 1, value) for o in offsets]


def test_a_replay_chooses_the_same_messages_whatever_their_content() -> None:
    """Same coordinates, other values, keys and timestamps: the same messages are kept."""
    first = _messages("t", 3, range(5_000, 9_000))
    replay = [
        RawMessage(m.topic, m.partition, m.offset, 99, b'{"other": 1}', key=b"k") for m in first
    ]
    kept, skipped, u = sample_messages(first, 0.1)
    again, _, u_again = sample_messages(replay, 0.1)
    assert [m.offset for m in kept] == [m.offset for m in again]
    np.testing.assert_array_equal(u, u_again)
    assert len(kept) + len(skipped) == len(first)
    assert [m.offset for m in sample_messages(first[1234:], 0.1)[0]] == [
        m.offset for m in kept if m.offset >= first[1234].offset
    ], "a replay from a later offset keeps the same tail"


def test_smaller_rates_keep_subsets_of_larger_ones() -> None:
    """The messages kept at 0.05 are among those kept at 0.1, which are among those at 0.5."""
    messages = _messages("t", 0, range(20_000))
    kept = [{m.offset for m in sample_messages(messages, r)[0]} for r in (0.05, 0.1, 0.5, 1.0)]
    assert kept[0] <= kept[1] <= kept[2] <= kept[3]
    assert len(kept[3]) == len(messages)


def test_kept_share_is_the_rate_on_consecutive_offsets_of_several_partitions() -> None:
    """Over 8 partitions x 25,000 offsets the share kept at 0.1 is 0.1 within 4 sd."""
    n, rate = 25_000, 0.1
    kept = 0
    for partition in range(8):
        u = coordinate_uniforms(
            np.full(n, topic_hash("events"), dtype=np.uint64),
            np.full(n, partition, dtype=np.int64),
            np.arange(n, dtype=np.int64),
        )
        kept += int(np.count_nonzero(u < rate))
    total = 8 * n
    assert abs(kept / total - rate) <= 4 * np.sqrt(rate * (1 - rate) / total)


def test_u_is_uniform_and_independent_of_neighbouring_offsets() -> None:
    """KS against U(0, 1) and the lag-1 correlation of u over consecutive offsets."""
    n = 100_000
    u = coordinate_uniforms(
        np.full(n, topic_hash("a"), dtype=np.uint64),
        np.zeros(n, dtype=np.int64),
        np.arange(10**12, 10**12 + n, dtype=np.int64),
    )
    assert sps.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 4 / np.sqrt(n)
    assert u.min() >= 0.0 and u.max() < 1.0


def test_topics_and_partitions_are_sampled_independently() -> None:
    """The same offsets in another topic or partition keep a different set of messages."""
    offsets = range(10_000)
    base = uniforms(_messages("a", 0, offsets)) < 0.1
    other_topic = uniforms(_messages("b", 0, offsets)) < 0.1
    other_partition = uniforms(_messages("a", 1, offsets)) < 0.1
    for other in (other_topic, other_partition):
        both = int(np.count_nonzero(base & other))
        assert both < 0.02 * len(offsets), "overlap near 0.01 expected, not the same set"

"""Record headers kept in their wire form (`PackedHeaders`) and what a dead letter gets of them."""

from __future__ import annotations

import pickle

from monitor.daemon import MAX_DEAD_LETTER_HEADERS, dead_letter_headers
from monitor.errors import RejectReason
from monitor.kafka_records import PackedHeaders
from monitor.model import RawMessage
from tests.support.record_headers import pack_headers as pack

PAIRS: list[tuple[bytes, bytes | None]] = [
    (b"traceparent", b"00-abc-01"),
    (b"", b""),
    (b"null", None),
    (b"\xc3\xa9t\xc3\xa9", b"\x00\xff" * 300),  # a length of 600: a two-byte varint
    (b"\xff\xfe", b"v"),  # not UTF-8
    (b"k" * 70, None),
]
WANT = (
    ("traceparent", b"00-abc-01"),
    ("", b""),
    ("null", None),
    ("\u00e9t\u00e9", b"\x00\xff" * 300),
    ("\ufffd\ufffd", b"v"),
    ("k" * 70, None),
)


def test_packed_headers_read_as_the_tuple_of_their_pairs() -> None:
    """Iterating gives (text, bytes or None) pairs; length, equality, membership and hash are
    the tuple's; a bad UTF-8 key reads with U+FFFD."""
    packed = pack(PAIRS)
    assert tuple(packed) == WANT and len(packed) == 6
    assert packed == WANT and packed == list(WANT)
    assert WANT == packed  # noqa: SIM300  # the tuple on the left: the reflected comparison
    assert packed != WANT[:-1] and packed != "not headers"
    assert ("null", None) in packed and ("null", b"") not in packed
    assert hash(packed) == hash(WANT)
    assert pack([]) == () and not pack([])


def test_packed_headers_survive_pickling_and_never_show_their_contents() -> None:
    """A pickled copy is equal (batches cross to the decode worker pickled), and the repr gives
    sizes only (a header may carry payload)."""
    packed = pack(PAIRS)
    assert pickle.loads(pickle.dumps(packed, protocol=5)) == packed
    assert repr(packed) == f"PackedHeaders(6 headers, {len(packed.raw)} bytes)"
    assert "traceparent" not in repr(packed)


def _message(headers: PackedHeaders) -> RawMessage:
    return RawMessage("events", 3, 42, 1_700_000_000_000, b"not json", b"key", headers)


def test_a_dead_letter_copies_up_to_the_bound_of_headers_and_says_when_it_dropped_them() -> None:
    """1,000 headers are copied (a null value sent empty) before driftmon's own; 1,001 are
    not, and `driftmon-headers-dropped` gives their number."""
    at_bound = pack([(b"h%d" % i, None if i % 2 else b"v") for i in range(MAX_DEAD_LETTER_HEADERS)])
    got = dead_letter_headers(_message(at_bound), RejectReason.INVALID_JSON)
    assert len(got) == MAX_DEAD_LETTER_HEADERS + 4
    assert got[:2] == [("h0", b"v"), ("h1", b"")]
    assert got[-4:] == [
        ("driftmon-reason", b"invalid_json"),
        ("driftmon-topic", b"events"),
        ("driftmon-partition", b"3"),
        ("driftmon-offset", b"42"),
    ]
    over = pack([(b"", None)] * (MAX_DEAD_LETTER_HEADERS + 1))
    got = dead_letter_headers(_message(over), RejectReason.INVALID_JSON)
    assert got[0] == ("driftmon-headers-dropped", b"1001") and len(got) == 5

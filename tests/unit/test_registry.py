"""The reference registry's record codec and table fold (monitor.registry), without Kafka."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import reference_files, registry
from monitor.errors import ReferenceDataError, RegistryRejectReason
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import MAX_PROFILE_BYTES, ReferenceProfile, fit_profile, profile_to_json
from monitor.registry import (
    HISTORY_LENGTH,
    MAX_BY_CHARS,
    MAX_REASON_CHARS,
    RECORD_VERSION,
    ActivationEntry,
    ActivationRecord,
    ChunkRecord,
    ProfileManifest,
    RegistryTable,
    Rejected,
    activate,
    decode_record,
    encode_activation,
    encode_profile,
    rollback,
)

R = RegistryRejectReason


def _profile(model: str = "fraud", shift: float = 0.0, n_features: int = 3) -> ReferenceProfile:
    rng = np.random.default_rng(7)
    specs = [FeatureSpec(f"x{i}", FeatureKind.NUMERIC) for i in range(n_features)]
    specs.append(FeatureSpec("country", FeatureKind.CATEGORICAL))
    numeric = {s.name: rng.normal(shift, 1.0, 2_000) for s in specs[:-1]}
    categorical = {"country": list(rng.choice(["GB", "DE", "FR"], 2_000))}
    return fit_profile(model, specs, numeric, categorical, model_version=f"v{shift:g}")


def _register(table: RegistryTable, profile: ReferenceProfile, chunk_bytes: int = 512) -> None:
    for _, value in encode_profile(profile, pushed_at=1.0, pushed_by="t", chunk_bytes=chunk_bytes):
        assert table.apply(value) is None


def test_profile_round_trips_through_chunks() -> None:
    """A profile split into many chunks is registered with the same id and content."""
    profile = _profile()
    records = encode_profile(profile, pushed_at=5.0, pushed_by="ops", chunk_bytes=256)
    assert len(records) > 3
    assert records[-1][0] == f"profile:{profile.reference_id}".encode()
    table = RegistryTable()
    for _, value in records:
        assert table.apply(value) is None
    registered = table.profiles[profile.reference_id]
    assert profile_to_json(registered.profile) == profile_to_json(profile)
    assert registered.manifest.pushed_by == "ops"
    assert registered.manifest.chunks == len(records) - 1


def test_tampered_chunk_is_refused_and_counted() -> None:
    """A chunk whose bytes changed fails the manifest digest; the profile is not registered."""
    profile = _profile()
    records = encode_profile(profile, pushed_at=1.0, pushed_by="t", chunk_bytes=256)
    chunk = msgspec.msgpack.decode(records[1][1], type=ChunkRecord)
    chunk.data = bytes([chunk.data[0] ^ 1]) + chunk.data[1:]
    records[1] = (records[1][0], msgspec.msgpack.encode(chunk))
    table = RegistryTable()
    outcomes = [table.apply(value) for _, value in records]
    assert isinstance(outcomes[-1], Rejected)
    assert outcomes[-1].reason is R.HASH_MISMATCH
    assert profile.reference_id not in table.profiles
    assert table.rejected == {R.HASH_MISMATCH: 1}


def test_missing_chunk_is_refused() -> None:
    """A manifest that arrives with a chunk missing registers nothing."""
    profile = _profile()
    records = encode_profile(profile, pushed_at=1.0, pushed_by="t", chunk_bytes=256)
    del records[2]
    table = RegistryTable()
    outcome = [table.apply(value) for _, value in records][-1]
    assert isinstance(outcome, Rejected) and outcome.reason is R.MISSING_CHUNK
    assert not table.profiles


def test_manifest_lying_about_the_content_hash_is_refused() -> None:
    """Chunks of one profile under another profile's id are a hash mismatch."""
    real, other = _profile(shift=0.0), _profile(shift=1.0)
    records = encode_profile(real, pushed_at=1.0, pushed_by="t")
    manifest = msgspec.msgpack.decode(records[-1][1], type=ProfileManifest)
    chunk = msgspec.msgpack.decode(records[0][1], type=ChunkRecord)
    chunk.reference_id = manifest.reference_id = other.reference_id
    table = RegistryTable()
    assert table.apply(msgspec.msgpack.encode(chunk)) is None
    outcome = table.apply(msgspec.msgpack.encode(manifest))
    assert isinstance(outcome, Rejected) and outcome.reason is R.HASH_MISMATCH


def test_compressed_bomb_is_refused_without_inflating_it() -> None:
    """A manifest over a huge zero-filled stream is refused as an invalid profile."""
    chunk, manifest = _manifest_over(zlib.compress(b"0" * (20 * 1024 * 1024), 9))
    table = RegistryTable(max_profile_bytes=1024 * 1024)
    assert table.apply(chunk) is None
    outcome = table.apply(manifest)
    assert isinstance(outcome, Rejected) and outcome.reason is R.INVALID_PROFILE


def _manifest_over(blob: bytes) -> list[bytes]:
    """The chunk and manifest records of one compressed blob (any content)."""
    reference_id = "sha256:0000000000000000"
    chunk = ChunkRecord(RECORD_VERSION, reference_id, 0, 1, blob)
    manifest = ProfileManifest(
        v=RECORD_VERSION,
        reference_id=reference_id,
        model="m",
        model_version="",
        created_at="",
        features=1,
        events=1,
        chunks=1,
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        pushed_at=0.0,
        pushed_by="x",
    )
    return [msgspec.msgpack.encode(chunk), msgspec.msgpack.encode(manifest)]


def test_the_registry_refuses_a_profile_larger_than_a_reference_file_may_be() -> None:
    """A registry profile inflating beyond the 64 MiB bound of a file reference is refused."""
    assert MAX_PROFILE_BYTES == reference_files.MAX_PROFILE_BYTES == 64 * 1024 * 1024
    # valid JSON (whitespace around an object) one byte beyond the bound, and at the bound
    over = zlib.compress(b" " * (MAX_PROFILE_BYTES - 1) + b"{}", 9)
    at = zlib.compress(b" " * (MAX_PROFILE_BYTES - 2) + b"{}", 9)
    table = RegistryTable()
    chunk, manifest = _manifest_over(over)
    assert table.apply(chunk) is None
    outcome = table.apply(manifest)
    assert isinstance(outcome, Rejected) and outcome.reason is R.INVALID_PROFILE
    assert "too large" in outcome.detail
    chunk, manifest = _manifest_over(at)
    assert table.apply(chunk) is None
    outcome = table.apply(manifest)  # inflated and parsed: then refused as not a profile
    assert isinstance(outcome, Rejected) and "not a driftmon reference profile" in outcome.detail


def test_a_profile_the_registry_would_refuse_is_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """encode_profile refuses a profile whose JSON exceeds the registry's bound."""
    profile = _profile()
    size = len(profile_to_json(profile).encode())
    monkeypatch.setattr(registry, "MAX_PROFILE_BYTES", size - 1)
    with pytest.raises(ReferenceDataError, match="more than the"):
        encode_profile(profile, pushed_at=1.0, pushed_by="t")
    monkeypatch.setattr(registry, "MAX_PROFILE_BYTES", size)
    assert encode_profile(profile, pushed_at=1.0, pushed_by="t")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, R.TOMBSTONE),
        (b"", R.UNDECODABLE),
        (b"\xff\xfe garbage", R.UNDECODABLE),
        (b'{"v": 1, "kind": "profile"}', R.UNDECODABLE),
        (msgspec.msgpack.encode({"v": 2, "kind": "chunk"}), R.UNKNOWN_VERSION),
        (msgspec.msgpack.encode({"v": 1, "kind": "teleport"}), R.UNDECODABLE),
        (msgspec.msgpack.encode({"v": 1, "kind": "chunk", "reference_id": 5}), R.UNDECODABLE),
    ],
)
def test_bad_records_are_refused_with_their_reason(value: bytes | None, reason: R) -> None:
    """Each kind of garbage is refused with its own closed reason."""
    outcome = decode_record(value)
    assert isinstance(outcome, Rejected) and outcome.reason is reason
    table = RegistryTable()
    table.apply(value)
    assert table.rejected == {reason: 1}


def test_activation_of_an_unknown_or_foreign_reference_is_refused() -> None:
    """An activation must name a registered profile of the same model."""
    table = RegistryTable()
    profile = _profile(model="fraud")
    record = activate(table, "fraud", profile.reference_id, at=1.0, by="ops", reason="r")
    outcome = table.apply(encode_activation(record)[1])
    assert isinstance(outcome, Rejected) and outcome.reason is R.UNKNOWN_REFERENCE
    _register(table, profile)
    foreign = activate(table, "churn", profile.reference_id, at=2.0, by="ops", reason="r")
    outcome = table.apply(encode_activation(foreign)[1])
    assert isinstance(outcome, Rejected) and outcome.reason is R.MODEL_MISMATCH
    assert table.apply(encode_activation(record)[1]) is None
    active = table.active("fraud")
    assert active is not None and active.profile.reference_id == profile.reference_id


def test_rollback_goes_back_one_step_each_time() -> None:
    """A → B → C, then rollback twice: B, then A; a third rollback has nowhere to go."""
    table = RegistryTable()
    profiles = [_profile(shift=s) for s in (0.0, 1.0, 2.0)]
    for i, profile in enumerate(profiles):
        _register(table, profile)
        record = activate(table, "fraud", profile.reference_id, at=i, by="ops", reason=f"r{i}")
        assert table.apply(encode_activation(record)[1]) is None
    ids = [p.reference_id for p in profiles]
    for expected in (ids[1], ids[0]):
        record = rollback(table, "fraud", at=9.0, by="ops", reason="bad")
        assert record.cause == "rollback"
        assert table.apply(encode_activation(record)[1]) is None
        assert table.activations["fraud"].reference_id == expected
    with pytest.raises(KeyError, match="no earlier activation"):
        rollback(table, "fraud", at=10.0, by="ops", reason="bad")
    log = [e.reference_id for e in table.activations["fraud"].log]
    assert log == [ids[1], ids[2], ids[1], ids[0]]


def test_history_is_bounded() -> None:
    """The rollback stack and the log keep at most HISTORY_LENGTH entries."""
    table = RegistryTable()
    profiles = [_profile(shift=s / 10, n_features=1) for s in range(HISTORY_LENGTH + 5)]
    for i, profile in enumerate(profiles):
        _register(table, profile, chunk_bytes=1 << 20)
        record = activate(table, "fraud", profile.reference_id, at=i, by="o", reason="")
        assert table.apply(encode_activation(record)[1]) is None
    current = table.activations["fraud"]
    assert len(current.previous) == len(current.log) == HISTORY_LENGTH


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "r" * (MAX_REASON_CHARS + 1)),
        ("by", "b" * (MAX_BY_CHARS + 1)),
        ("cause", "c" * 65),
        ("log", [ActivationEntry("sha256:ab", 1.0, "o", "", "operator")] * 101),
    ],
)
def test_an_activation_over_its_text_or_history_bounds_is_refused(field: str, value: Any) -> None:
    """A 1.5 MiB reason (logged whole before) or 101 history entries: refused as undecodable;
    the bounds themselves decode."""
    fields = {"v": RECORD_VERSION, "kind": "activation", "model": "m", "reference_id": "x"}
    fields |= {"at": 1.0, "by": "o", "reason": "", "cause": "operator", field: value}
    refused = decode_record(msgspec.msgpack.encode(fields))
    assert isinstance(refused, Rejected) and refused.reason is R.UNDECODABLE
    fields[field] = value[:-1]
    assert isinstance(decode_record(msgspec.msgpack.encode(fields)), ActivationRecord)


def test_find_accepts_unique_prefixes() -> None:
    """`find` resolves a full id, a prefix with or without `sha256:`, and refuses others."""
    table = RegistryTable()
    profile = _profile()
    _register(table, profile)
    digest = profile.reference_id.removeprefix("sha256:")
    for query in (profile.reference_id, digest[:6], "sha256:" + digest[:6]):
        assert table.find(query).profile.reference_id == profile.reference_id
    with pytest.raises(KeyError, match="no registered reference"):
        table.find("zzzz")


def test_activation_record_round_trips() -> None:
    """An encoded activation decodes to an equal record."""
    record = ActivationRecord(RECORD_VERSION, "m", "sha256:ab", 1.5, "me", "why", "operator")
    decoded = decode_record(encode_activation(record)[1])
    assert decoded == record


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    """The record decoder and the table fold refuse arbitrary bytes without raising."""
    table = RegistryTable()
    outcome = table.apply(value)
    assert outcome is None or isinstance(outcome, Rejected)
    assert not table.profiles and not table.activations


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "kind", "reference_id", "index", "total", "data", "model", "chunks", "x"]
        ),
        st.one_of(_LEAF, st.sampled_from([1, "chunk", "profile", "activation"])),
    )
)
def test_arbitrary_maps_never_raise(fields: dict[str, object]) -> None:
    """Well-formed msgpack maps with arbitrary registry-like fields never raise."""
    table = RegistryTable()
    outcome = table.apply(msgspec.msgpack.encode(fields))
    assert outcome is None or isinstance(outcome, Rejected)


def test_the_cli_refuses_a_reason_no_daemon_would_accept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--reason` of 1,001 characters is a usage error (exit 2); 1,000 parse."""
    from monitor.cli import build_parser

    base = ["reference", "activate", "sha256:ab", "--model", "m", "-c", "x.yaml", "--reason"]
    assert build_parser().parse_args([*base, "r" * MAX_REASON_CHARS]).reason == "r" * 1000
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*base, "r" * (MAX_REASON_CHARS + 1)])
    assert exited.value.code == 2 and "at most 1000 characters" in capsys.readouterr().err

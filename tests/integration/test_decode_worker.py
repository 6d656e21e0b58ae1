"""`event.decode_worker`: decoding in a real child process, alone and in the daemon loop.

The worker must be invisible in the results: the same slices, columns and account as
in-process decoding, batches applied in poll order, nothing lost or counted twice when its
child dies, and batches decoded under schemas that changed since decoded again in process.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitor import daemon as daemon_module
from monitor import decode_worker
from monitor.account import BatchAccount
from monitor.config import load_settings
from monitor.decode import DecodedBatch
from monitor.decode_worker import DecoderSpec, DecodeWorker, DecodeWorkerError, value_bytes
from monitor.model import RawMessage
from tests.integration.test_daemon_fake_source import (
    TP,
    Harness,
    build,
    events,
    file_model,
    reference_file,
    settings_for,
)
from tests.integration.test_daemon_reload import NEW, OLD, rows
from tests.integration.test_daemon_reload import build as build_reloading
from tests.integration.test_daemon_reload import config as reload_config
from tests.integration.test_daemon_reload import stream as reload_stream
from tests.support.daemon_harness import write_config

_NOW = int(time.time()) - 30
BAD = [
    b"not json",
    b"",
    b"\xff\xfe{",
    b'{"ts": 1, "model": "nobody", "features": {"amount": 1.0}}',
    b'{"model": "m", "features": {"amount": "abc", "country": 7}}',
    b'[{"model": "m", "features": {"amount": 1.5, "country": "DE"}}, 3]',
    b'{"model": "m", "features": [1, 2]}',
    # accepted (recent ts): every value missing; a quoted and a NUL-bearing unknown name next
    # to a duplicated known one
    b'{"ts": %d, "model": "m", "features": {"amount": null, "country": null}}' % _NOW,
    b'{"ts": %d, "model": "m", "features": {"am\\"ount": 1, "country\\u0000": "x", "amount": 2}}'
    % _NOW,
]


def _log(n: int, seed: int) -> list[bytes]:
    """`n` demo events of model m with a bad message every 97 (the BAD ones in turn)."""
    good = events("m", n, seed=seed)
    return [BAD[i // 97 % len(BAD)] if i % 97 == 50 else v for i, v in enumerate(good)]


def _messages(log: list[bytes], partition: int = 0) -> list[RawMessage]:
    return [RawMessage("t", partition, i, 1_700_000_000_000 + i, v) for i, v in enumerate(log)]


@pytest.fixture
def spec(tmp_path: Path) -> Iterator[DecoderSpec]:
    """The decoder spec of a daemon with model m (amount numeric, country categorical)."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    h = build(settings_for(tmp_path, [file_model("m", ref)]), {("t", 0): []})
    yield h.daemon._decoder_spec()
    h.daemon.shutdown()


@pytest.fixture
def worker(spec: DecoderSpec) -> Iterator[DecodeWorker]:
    """A started worker, closed after the test."""
    w = DecodeWorker(spec, timeout_s=30.0)
    w.start()
    yield w
    w.close()


def _in_process(spec: DecoderSpec, messages: list[RawMessage]) -> tuple[Any, BatchAccount]:
    account = BatchAccount(max_samples=spec.max_samples)
    return tuple(spec.build().slices(messages, account)), account


def _assert_same(
    got: tuple[DecodedBatch, ...] | None,
    got_account: BatchAccount,
    want: tuple[DecodedBatch, ...],
    want_account: BatchAccount,
) -> None:
    """Slice by slice: models, every column, partitions; then every count of the account."""
    assert got is not None
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.partitions == w.partitions
        assert list(g.models) == list(w.models)
        for name, gc in g.models.items():
            wc = w.models[name]
            np.testing.assert_array_equal(gc.times, wc.times)
            np.testing.assert_array_equal(gc.numeric, wc.numeric)
            assert [list(c) for c in gc.categorical] == [list(c) for c in wc.categorical]
            assert gc.model_version == wc.model_version
            np.testing.assert_array_equal(gc.sources, wc.sources)
            np.testing.assert_array_equal(gc.messages, wc.messages)
        assert g.account is got_account
    for name in ("consumed", "decoded", "rejected", "samples"):
        assert getattr(got_account, name) == getattr(want_account, name), name
    assert {k: r for k, (_, r) in got_account.dead_letters.items()} == {
        k: r for k, (_, r) in want_account.dead_letters.items()
    }


def test_worker_slices_and_account_equal_in_process_decoding(
    spec: DecoderSpec, worker: DecodeWorker
) -> None:
    """Good, invalid, unknown-model, wrong-type and array messages decode identically."""
    messages = _messages(_log(2_000, seed=2))
    worker.submit(messages)
    result = worker.collect()
    want, want_account = _in_process(spec, messages)
    assert sum(want_account.rejected.values()) >= len(BAD)
    _assert_same(result.slices, result.account, want, want_account)
    assert result.version == worker.version == 0


def test_a_result_carries_the_childs_seconds_on_its_batch(worker: DecodeWorker) -> None:
    """The child's time on a batch is positive and within the wall time from submit to collect."""
    messages = _messages(_log(2_000, seed=2))
    started = time.perf_counter()
    worker.submit(messages)
    result = worker.collect()
    assert 0.0 < result.decode_s <= time.perf_counter() - started


def _through_a_block(messages: Sequence[Any]) -> list[RawMessage]:
    """`messages` packed into a buffer as `submit` writes them and unpacked as the child does."""
    header, values, lengths = decode_worker._pack(messages)
    view = memoryview(bytearray(len(header) + int(lengths.sum()) + 7))
    decode_worker._write(view, header, values, lengths)
    return decode_worker._unpack(view, len(header), int(lengths.sum()) if values else -1)


def test_packed_batches_arrive_whole_without_keys_and_headers() -> None:
    """Topics, partitions, offsets, timestamps and values (empty, non-UTF-8, 1 MB) survive."""
    messages = [
        RawMessage("a", 0, 0, 1_700_000_000_000, b"", b"k", (("h", b"v"),)),
        RawMessage("b.topic", 7, 2**62, 0, b"\xff\x00{" * 3),
        RawMessage("a", 1, 5, -1, b"{" * 1_000_000, None, ()),
    ]
    assert _through_a_block(messages) == [m._replace(key=None, headers=()) for m in messages]


@pytest.mark.parametrize(
    "odd",
    [
        RawMessage("t", 0, 1, None, b"{}"),  # no timestamp
        RawMessage("t", 0, 1, 2, None),  # type: ignore[arg-type]  # a tombstone
        RawMessage("t", 0, 1, 2, bytearray(b"{}")),  # type: ignore[arg-type]
        RawMessage("t", True, 1, 2, b"{}"),
        RawMessage("t", 0, 2**63, 2, b"{}"),  # beyond int64
        ("not", "a", "message"),
    ],
)
def test_a_batch_the_packing_does_not_cover_travels_pickled_whole(odd: Any) -> None:
    """One odd message sends its whole batch pickled, keys and headers included."""
    batch = [RawMessage("t", 0, 0, 1, b"{}", b"key", (("h", b"v"),)), odd]
    assert decode_worker._pack(batch)[1] == ()
    assert _through_a_block(batch) == batch
    assert _through_a_block([]) == []


def test_dead_letters_carry_the_key_and_headers_of_the_submitted_message(
    worker: DecodeWorker,
) -> None:
    """The child decodes without keys and headers; the dead letters get them back."""
    messages = [
        m._replace(key=b"key-%d" % m.offset, headers=(("trace", b"%d" % m.offset),))
        for m in _messages(_log(300, seed=9))
    ]
    worker.submit(messages)
    result = worker.collect()
    letters = result.account.dead_letters
    assert len(letters) == 3
    for (_, _, offset), (message, _) in letters.items():
        assert message is messages[offset]


def test_two_batches_in_flight_come_back_in_submission_order(
    spec: DecoderSpec, worker: DecodeWorker
) -> None:
    """The oldest batch is collected first; a third waits until one is collected."""
    first, second = _messages(_log(300, seed=3)), _messages(_log(700, seed=4), partition=1)
    worker.submit(first)
    worker.submit(second)
    assert worker.pending == 2 and not worker.available()
    with pytest.raises(DecodeWorkerError, match="no free slot"):
        worker.submit(first)
    for batch in (first, second):
        result = worker.collect()
        _assert_same(result.slices, result.account, *_in_process(spec, batch))
    assert worker.pending == 0 and worker.available()


def test_a_killed_child_fails_its_batches_then_restarts_after_the_backoff(
    spec: DecoderSpec,
) -> None:
    """Killing the child raises for the batches it had not answered; after the backoff a new
    child works."""
    now = [0.0]
    w = DecodeWorker(spec, timeout_s=30.0, restart_backoff_s=10.0, monotonic=lambda: now[0])
    try:
        batch = _messages(_log(500, seed=5))
        w.submit(batch)
        w.collect()
        big = _messages(_log(20_000, seed=6))
        w.submit(big)
        w.submit(big)
        w._process.kill()
        with pytest.raises(DecodeWorkerError):  # an answer sent before the kill still counts
            for _ in range(2):
                result = w.collect()
                _assert_same(result.slices, result.account, *_in_process(spec, big))
        assert (w.failures, w.pending) == (1, 0)
        assert not w.available()
        now[0] = 10.5
        assert w.available()
        w.submit(batch)
        result = w.collect()
        _assert_same(result.slices, result.account, *_in_process(spec, batch))
    finally:
        w.close()


def test_an_error_in_the_child_is_reported_by_type_and_place_never_by_content(
    spec: DecoderSpec, worker: DecodeWorker
) -> None:
    """A batch the decoder cannot take fails as DecodeWorkerError naming no payload."""
    worker.submit([("secret-payload-4711",)])  # type: ignore[list-item]
    with pytest.raises(DecodeWorkerError, match=r"Error in the decoding child at \w+\.py:\d+") as e:
        worker.collect()
    assert "4711" not in str(e.value)
    assert (worker.failures, worker.pending) == (1, 0)


def test_a_batch_larger_than_the_shared_blocks_grows_them(
    spec: DecoderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 4 KiB blocks a 1,000-event batch still decodes exactly, twice over the same slot."""
    monkeypatch.setattr(decode_worker, "MIN_BLOCK_BYTES", 4096)
    w = DecodeWorker(spec, timeout_s=30.0)
    try:
        batch = _messages(_log(1_000, seed=6))
        want = _in_process(spec, batch)
        for _ in range(3):  # slot 0 (result through the pipe), slot 1, slot 0 grown
            started = time.perf_counter()
            w.submit(batch)
            result = w.collect()
            _assert_same(result.slices, result.account, *want)
            assert 0.0 < result.decode_s <= time.perf_counter() - started
        assert all(b is not None and b.size > 4096 for b in w._outputs)
    finally:
        w.close()


def _shm_blocks() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("psm_*")}


def test_a_full_dev_shm_fails_the_submit_cleanly_and_close_leaves_no_block(
    spec: DecoderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for a block: DecodeWorkerError at submit (no SIGBUS later), no block left over."""
    # only the blocks this worker creates are looked at: tests running in parallel (pytest -n)
    # create and remove blocks of their own in /dev/shm at the same time
    created: list[str] = []
    real = shared_memory.SharedMemory

    def recording(*args: Any, **kwargs: Any) -> Any:
        block = real(*args, **kwargs)
        if kwargs.get("create"):
            created.append(block.name)
        return block

    monkeypatch.setattr(shared_memory, "SharedMemory", recording)
    w = DecodeWorker(spec, timeout_s=30.0)
    batch = _messages(_log(200, seed=11))
    w.submit(batch)
    w.collect()
    assert len(created) == 2 and set(created) <= _shm_blocks()  # slot 0's input and output

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    with pytest.raises(DecodeWorkerError, match="No space left"):
        w.submit(batch)  # slot 1 needs new blocks
    assert (w.failures, w.pending) == (1, 0)
    assert len(created) == 3  # slot 1's input, removed when it found no room
    w.close()
    assert not set(created) & _shm_blocks()


def test_the_child_outlives_sigint_and_sigterm_and_ends_with_its_parent_pipe(
    spec: DecoderSpec, worker: DecodeWorker
) -> None:
    """Signals to the process group leave the running child to the parent; close() ends it."""
    batch = _messages(_log(300, seed=17))
    worker.submit(batch)
    worker.collect()  # the child is up and in its loop
    process = worker._process
    os.kill(process.pid, signal.SIGINT)
    os.kill(process.pid, signal.SIGTERM)
    worker.submit(batch)
    result = worker.collect()
    _assert_same(result.slices, result.account, *_in_process(spec, batch))
    assert worker.failures == 0 and process.is_alive()
    worker.close()
    assert not process.is_alive() and process.exitcode == 0


def test_an_empty_batch_decodes_to_nothing(spec: DecoderSpec, worker: DecodeWorker) -> None:
    """No messages: no slices, an empty account, no failure."""
    worker.submit([])
    result = worker.collect()
    assert result.slices == () and result.account.consumed == {}
    assert worker.failures == 0


def test_a_batch_over_the_value_bound_comes_back_undecoded_and_the_child_stays(
    spec: DecoderSpec,
) -> None:
    """Columns beyond max_result_values: slices None (decode in process), no failure, the
    next batch under the bound decodes in the same child."""
    w = DecodeWorker(spec, timeout_s=30.0, max_result_values=1_000)
    try:
        w.submit(_messages(_log(600, seed=13)))  # 600 events x 2 features > 1,000 values
        result = w.collect()
        assert result.slices is None and w.failures == 0
        pid = w._process.pid
        small = _messages(_log(400, seed=14))
        w.submit(small)
        result = w.collect()
        _assert_same(result.slices, result.account, *_in_process(spec, small))
        assert w._process.pid == pid
    finally:
        w.close()


def test_configure_changes_the_version_only_for_another_spec(spec: DecoderSpec) -> None:
    """An equal spec keeps the version; another schema set bumps it."""
    w = DecodeWorker(spec)
    w.configure(DecoderSpec(spec.fields, spec.schemas, spec.max_samples, spec.payload_preview))
    assert w.version == 0
    w.configure(DecoderSpec(spec.fields, spec.schemas[:0], spec.max_samples, False))
    assert w.version == 1
    w.close()


# -- in the daemon loop --------------------------------------------------------------------------


def _harness(tmp_path: Path, logs: dict[TP, list[bytes]], name: str, worker: bool) -> Harness:
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(
        tmp_path,
        [file_model("m", ref)],
        state_dir=tmp_path / f"state-{name}",
        kafka={"max_poll_records": 700},
        event={"decode_worker": worker},
    )
    return build(settings, logs)


METRICS = (
    ("driftmon_events_accepted_total", {"model": "m"}),
    ("driftmon_records_consumed_total", {"topic": "t"}),
)


def _assert_same_counts(got: Harness, want: Harness) -> None:
    """Windows bin by bin, offsets, rejects by reason and the event counters."""
    np.testing.assert_array_equal(got.current("m"), want.current("m"))
    assert got.daemon.offsets == want.daemon.offsets
    assert got.daemon.stats.reject_reasons == want.daemon.stats.reject_reasons
    assert got.daemon.stats.records == want.daemon.stats.records
    for name, labels in METRICS:
        assert got.value(name, **labels) == want.value(name, **labels), name


@contextmanager
def _plain_and_worker(
    tmp_path: Path, logs: dict[TP, list[bytes]]
) -> Iterator[tuple[Harness, Harness]]:
    """Two daemons over the same log, without and with the decode worker, shut down after."""
    plain = _harness(tmp_path, logs, "plain", worker=False)
    with_worker = _harness(tmp_path, logs, "worker", worker=True)
    try:
        yield plain, with_worker
    finally:
        plain.daemon.shutdown()
        with_worker.daemon.shutdown()


def _decoded_in_process(h: Harness, measure: Callable[[Sequence[RawMessage]], int]) -> list[int]:
    """Wrap the daemon's own decoder: the list gets `measure(batch)` of each batch it decodes."""
    seen: list[int] = []
    decoder = h.daemon.decoder

    class Counting:
        def slices(self, messages: Sequence[RawMessage], account: BatchAccount) -> Any:
            seen.append(measure(messages))
            return decoder.slices(messages, account)

    h.daemon.decoder = Counting()  # type: ignore[assignment]
    return seen


def _asides(h: Harness, monkeypatch: pytest.MonkeyPatch, *, answered: bool) -> list[int]:
    """Make the worker look answered (no batch is decoded aside) or never answered (a batch is
    decoded aside whenever the worker is full); the list gets the size of each aside batch."""
    worker = h.daemon.decode_worker
    assert worker is not None
    monkeypatch.setattr(worker, "answered", lambda: answered)
    sizes: list[int] = []
    decode_aside = h.daemon._decode_aside

    def counting(w: DecodeWorker, batch: Any) -> bool:
        done = decode_aside(w, batch)
        if done:
            sizes.append(len(batch.kept))
        return done

    monkeypatch.setattr(h.daemon, "_decode_aside", counting)
    return sizes


def test_the_daemon_counts_with_a_decode_worker_exactly_what_it_counts_in_process(
    tmp_path: Path,
) -> None:
    """Two partitions with bad messages: same windows, offsets, rejects, counters, checkpoint."""
    logs = {("t", 0): _log(5_000, seed=7), ("t", 1): _log(3_000, seed=8)}
    with _plain_and_worker(tmp_path, logs) as (plain, with_worker):
        assert with_worker.daemon.decode_worker is not None
        plain.drain()
        with_worker.drain()
        assert with_worker.daemon.stats.records < 8_000  # batches still in the worker
        _assert_same_counts(with_worker, plain)  # current() applies them first
        assert with_worker.daemon.stats.rejected > 0
        assert with_worker.daemon.checkpoint(commit=False)
        assert sum(with_worker.daemon.offsets.values()) == 8_000
        assert with_worker.value("driftmon_decode_worker_failures_total") == 0


def _kill_the_child_then_drain(h: Harness, plain: Harness) -> None:
    """Kill -9 of the child with two batches in flight, then apply everything: the counts
    equal the in-process run's and one failure is counted."""
    worker = h.daemon.decode_worker
    assert worker is not None and worker.pending == 2
    worker._process.kill()
    h.drain()
    _assert_same_counts(h, plain)
    assert h.value("driftmon_decode_worker_failures_total") == 1


def test_a_decode_worker_that_dies_mid_run_loses_and_doubles_no_event(tmp_path: Path) -> None:
    """Kill -9 of the child with batches in flight: they are decoded in process, in order."""
    logs = {("t", 0): _log(6_000, seed=9)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        plain.drain()
        for _ in range(4):
            h.daemon.step()
        _kill_the_child_then_drain(h, plain)


def test_a_submit_to_a_dead_child_decodes_the_batches_here_counted_once(tmp_path: Path) -> None:
    """The child died with one batch in flight: that batch and the next are decoded here."""
    logs = {("t", 0): _log(5_000, seed=12)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        plain.drain()
        h.daemon.step()
        worker = h.daemon.decode_worker
        assert worker is not None and worker.pending == 1
        worker._process.kill()
        worker._process.join(10)
        h.daemon.step()  # the submit fails: broken pipe
        assert worker.pending == 0 and not h.daemon._in_flight
        assert h.daemon.stats.records == 1_400
        h.drain()
        _assert_same_counts(h, plain)
        assert h.value("driftmon_decode_worker_failures_total") == 1


def test_batches_decoded_under_changed_schemas_are_decoded_again_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results of an older spec version are not applied: those batches are decoded here."""
    logs = {("t", 0): _log(4_000, seed=10)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        _asides(h, monkeypatch, answered=True)
        in_process = _decoded_in_process(h, len)
        plain.drain()
        for _ in range(3):
            h.daemon.step()
        worker = h.daemon.decode_worker
        assert worker is not None and worker.pending == 2
        current = h.daemon._decoder_spec()
        worker.configure(DecoderSpec(current.fields, (), current.max_samples, False))
        worker.configure(current)  # same schemas again, a newer version
        h.drain()
        _assert_same_counts(h, plain)
        assert in_process == [700, 700]  # the two batches in flight at the change


def test_a_batch_over_the_submit_bound_is_decoded_in_process_in_poll_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bound between the sizes of two batches, the larger ones never reach the child
    (the 64 MiB an inflated poll may hold stayed in flight twice over) and nothing changes."""
    logs = {("t", 0): _log(3_000, seed=13)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        sizes = sorted(value_bytes(_messages(logs["t", 0])[i : i + 700]) for i in (0, 700))
        bound = sum(sizes) // 2
        monkeypatch.setattr(daemon_module, "MAX_SUBMIT_BYTES", bound)
        _asides(h, monkeypatch, answered=True)
        in_process = _decoded_in_process(h, value_bytes)
        worker = h.daemon.decode_worker
        assert worker is not None
        submitted: list[int] = []
        submit = worker.submit

        def counting_submit(messages: Sequence[RawMessage]) -> None:
            submitted.append(value_bytes(messages))
            submit(messages)

        monkeypatch.setattr(worker, "submit", counting_submit)
        plain.drain()
        h.drain()
        _assert_same_counts(h, plain)
        assert in_process and all(n > bound for n in in_process)
        assert submitted and all(n <= bound for n in submitted)
        assert len(in_process) + len(submitted) == 5  # 3,000 events in polls of 700


def test_each_poll_counts_the_batches_in_flight_and_a_held_back_batch_releases_them(
    tmp_path: Path,
) -> None:
    """Every poll is told what the batches in flight hold (their values and packed copies);
    after a poll that held a compressed batch back for it, the next one holds nothing."""
    logs = {("t", 0): _log(5_000, seed=14)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        h.source.hold_back_at = frozenset({4})
        plain.drain()
        for _ in range(5):
            h.daemon.step()
        first = value_bytes(_messages(logs["t", 0])[:700])
        held = h.source.held
        assert held[0] == 0
        assert 2 * first < held[1] < 2 * first + 100_000  # one batch in flight
        assert held[2] > held[1] and held[3] > held[1]  # two
        assert held[4] == 0  # poll 4 held a batch back: both were applied after it
        h.drain()
        _assert_same_counts(h, plain)


def test_a_fleet_replica_may_run_the_decode_worker(tmp_path: Path) -> None:
    """state.backend kafka with event.decode_worker loads (the fleet's exactness with it:
    tests/integration/test_fleet_kafka.py)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
                "state": {"backend": "kafka"},
                "event": {"decode_worker": True},
                "models": [{"name": "m", "features": [{"name": "a", "kind": "numeric"}]}],
            }
        )
    )
    settings = load_settings(path, env={})
    assert settings.event.decode_worker and settings.state.backend == "kafka"


@pytest.mark.parametrize("aside", [False, True], ids=["waiting", "decoding-aside"])
def test_a_hostile_batch_of_array_messages_is_decoded_in_process_slice_by_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aside: bool
) -> None:
    """Array messages whose records exceed the child's bound: the loop decodes them itself
    (bounded slices), with the same counts as without the worker, and no failure; nor are
    they held decoded aside while the worker is busy (only the batches within the bound)."""
    record = b'{"ts": %d, "model": "m", "features": {"amount": 1.5, "country": "DE"}}' % int(
        time.time() - 50
    )
    hostile = [b"[" + b",".join([record] * 3_000) + b"]"] * 3
    logs = {("t", 0): _log(1_500, seed=15) + hostile + _log(1_500, seed=16)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        assert h.daemon.decode_worker is not None
        h.daemon.decode_worker.close()
        h.daemon.decode_worker = DecodeWorker(
            h.daemon._decoder_spec(), timeout_s=30.0, max_result_values=5_000
        )
        asides = _asides(h, monkeypatch, answered=not aside)
        in_process = _decoded_in_process(
            h, lambda batch: sum(len(m.value) > 100_000 for m in batch)
        )
        plain.drain()
        h.drain()
        _assert_same_counts(h, plain)
        assert h.value("driftmon_events_accepted_total", model="m") >= 9_000
        assert h.value("driftmon_decode_worker_failures_total") == 0
        if aside:  # every batch decoded here; the hostile ones again at their turn
            assert asides and sum(in_process) > len(hostile)
        else:
            assert not asides
            assert in_process and all(in_process)  # only the batches with a hostile message


def test_batches_decoded_aside_while_the_worker_is_busy_count_exactly_in_poll_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that never seems to have answered: every other poll is decoded in the loop and
    queued behind the worker's batches; windows, offsets, rejects and counters equal the
    in-process run's, with and without a kill -9 of the child midway."""
    logs = {("t", 0): _log(6_000, seed=15), ("t", 1): _log(2_000, seed=16)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        asides = _asides(h, monkeypatch, answered=False)
        plain.drain()
        for _ in range(7):  # polls 3 and 7 are decoded aside, 7 waits behind two in the worker
            h.daemon.step()
        assert len(asides) == 2
        assert any(isinstance(e, daemon_module._Aside) for e in h.daemon._in_flight)
        _kill_the_child_then_drain(h, plain)
    (tmp_path / "again").mkdir()
    with _plain_and_worker(tmp_path / "again", logs) as (plain, h):
        asides = _asides(h, monkeypatch, answered=False)
        plain.drain()
        h.drain()
        _assert_same_counts(h, plain)
        assert len(asides) >= 3 and sum(asides) < 8_000
        assert h.daemon.checkpoint(commit=False)
        assert h.value("driftmon_decode_worker_failures_total") == 0


def test_a_batch_decoded_aside_before_the_decoder_changed_is_decoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload replaces the daemon's decoder: a batch decoded aside with the old one is
    decoded again by the new one when its turn comes, and nothing changes in the counts."""
    logs = {("t", 0): _log(4_000, seed=17)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        asides = _asides(h, monkeypatch, answered=False)
        plain.drain()
        for _ in range(3):
            h.daemon.step()
        assert asides == [700]
        in_process = _decoded_in_process(h, len)  # a new decoder object
        monkeypatch.setattr(h.daemon.decode_worker, "answered", lambda: True)
        h.drain()
        _assert_same_counts(h, plain)
        assert in_process[:1] == [700]  # the aside batch, decoded again at its turn


def test_a_batch_over_the_aside_bound_waits_for_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bound below a poll's column values, no batch is held decoded aside (each is
    decoded, dropped and handed to the worker as before) and the counts stay exact."""
    logs = {("t", 0): _log(4_000, seed=19)}
    monkeypatch.setattr(daemon_module, "ASIDE_MAX_VALUES", 900)  # polls of 500-700 events x 2
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        asides = _asides(h, monkeypatch, answered=False)
        plain.drain()
        h.drain()
        _assert_same_counts(h, plain)
        assert asides == []


def test_each_poll_counts_what_a_batch_decoded_aside_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll after a batch was decoded aside is told twice its value bytes on top of what
    the worker's two batches hold."""
    logs = {("t", 0): _log(5_000, seed=18)}
    with _plain_and_worker(tmp_path, logs) as (plain, h):
        _asides(h, monkeypatch, answered=False)
        plain.drain()
        for _ in range(4):
            h.daemon.step()
        held = h.source.held
        batch = value_bytes(_messages(logs["t", 0])[1400:2100])
        assert held[3] - held[2] >= 2 * batch  # poll 3 was decoded aside
        h.drain()
        _assert_same_counts(h, plain)


def _slowly(messages: Sequence[RawMessage]) -> int:
    """Sleep 50 ms (a decode that takes that much longer); the batch's length."""
    time.sleep(0.05)
    return len(messages)


def test_the_batch_duration_adds_the_time_a_batch_was_decoded_in_the_child_or_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch the child decoded adds its seconds (made 100 s here), every batch the loop
    decoded aside its own (each made 50 ms longer) to driftmon_batch_duration_seconds."""
    logs = {("t", 0): _log(6_000, seed=20)}
    h = _harness(tmp_path, logs, "worker", worker=True)
    try:
        worker = h.daemon.decode_worker
        assert worker is not None
        collect = worker.collect
        from_child: list[int] = []

        def slow_child() -> Any:
            result = collect()
            from_child.append(len(result.slices or ()))
            return decode_worker.WorkerResult(
                result.slices, result.account, result.version, result.decode_s + 100.0
            )

        monkeypatch.setattr(worker, "collect", slow_child)
        asides = _asides(h, monkeypatch, answered=False)
        _decoded_in_process(h, _slowly)
        h.drain()
        h.daemon.drain()  # the batches still in flight
        assert sum(h.daemon.offsets.values()) == 6_000
        assert from_child and all(from_child) and asides
        total = h.value("driftmon_batch_duration_seconds_sum")
        assert total >= 100.0 * len(from_child) + 0.05 * len(asides)
        assert total < 100.0 * (len(from_child) + 1)
        assert h.value("driftmon_batch_duration_seconds_count") == len(from_child) + len(asides)
    finally:
        h.daemon.shutdown()


def test_a_reload_that_changes_features_counts_with_the_worker_what_it_counts_in_process(
    tmp_path: Path,
) -> None:
    """SIGHUP's reload (add 2, remove 1, re-kind 1) with two batches in the worker: every row
    equals the same reload's in process; the changed schema reaches the child."""
    before, after = reload_stream(2000, seed=1), reload_stream(2000, seed=2, age_as_text=True)
    log = {("t", 0): before + after}
    runs = []
    for worker_on in (True, False):
        path = write_config(
            tmp_path / f"driftmon-{worker_on}.yaml",
            reload_config(
                tmp_path,
                OLD,
                state_dir=tmp_path / f"state-{worker_on}",
                event={"decode_worker": worker_on},
            ),
        )
        runs.append((path, worker_on, build_reloading(path, log)))
    try:
        for path, worker_on, h in runs:
            for _ in range(8):  # 2,000 events polled (with the worker: the last two batches
                h.daemon.step()  # still in the child)
            assert h.daemon.decode_worker is None or h.daemon.decode_worker.pending == 2
            write_config(
                path,
                reload_config(
                    tmp_path,
                    NEW,
                    state_dir=tmp_path / f"state-{worker_on}",
                    event={"decode_worker": worker_on},
                ),
            )
            h.daemon.request_reload()
            h.drain()
            h.daemon.apply_pending()
            assert h.value("driftmon_config_reloads_total", result="success") == 1
        (_, _, with_worker), (_, _, plain) = runs
        assert with_worker.daemon.decode_worker is not None
        assert with_worker.daemon.decode_worker.version == 1
        mine, theirs = rows(with_worker.daemon.runtimes["m"]), rows(plain.daemon.runtimes["m"])
        assert set(mine) == {n for n, _ in NEW}
        assert mine == theirs
        assert with_worker.daemon.offsets == plain.daemon.offsets
        assert with_worker.value("driftmon_decode_worker_failures_total") == 0
    finally:
        for _, _, h in runs:
            h.daemon.shutdown()

"""Decoding in a child process (config `event.decode_worker`): the JSON parse off the loop's core.

At width the loop's own work is mostly decoding (msgspec's parse of a 200 + 20 feature event
is ~15 us, the columns ~10 us), on the same core as kafka-python's fetch. `DecodeWorker` runs
the same `BatchDecoder` in a spawned child process and keeps up to `DEPTH` batches in flight,
so the child decodes the next batches while the loop polls Kafka and bins the batch before.

Contract:

- `submit(messages)` hands one batch to the child; `collect()` returns the results of the
  oldest batch not yet collected (first in, first out): the `DecodedBatch` slices the
  in-process `BatchDecoder.slices` would yield, in the same order, with the same columns and
  the same `BatchAccount` (counts, dead letters, samples; `consumed` included). The caller
  applies them in submission order, so the loop's accounting stays exactly-once.
- A batch is decoded with the `DecoderSpec` of the last `configure` before its `submit`; its
  result carries that spec's `version`, so a caller whose schemas changed since (a reload, a
  discovery) decodes that batch again in process instead.
- Transport: per slot two shared-memory blocks (input and output). A batch goes into its
  input block packed (`_pack`): a small pickled header (topic names, and per message a topic
  code, partition, offset, timestamp and value length as int arrays) followed by the values
  back to back, so the loop copies each value once (pickling the list of messages cost
  5.8 us per 5.7 KB message, packing 1.1); a batch the packing does not cover (a value that
  is not bytes, a record without timestamp) is pickled whole. Keys and headers stay in the
  loop: the dead letters of a result are mapped back to the submitted messages by (topic,
  partition, offset). The child pickles its result with out-of-band buffers (the numeric
  matrices) into its output block; only slot numbers, block names and lengths cross the
  pipe, so a 5 MB batch does not crawl through a 64 KiB pipe buffer. A block grows (a new
  one replaces it) when a batch or result does not fit; a result larger than its block
  crosses the pipe once and the block is grown for the next one.
- Failure: a child that cannot start, dies, answers with an error or does not answer
  within `timeout_s` (30 s, half the daemon's liveness timeout) is stopped and
  `DecodeWorkerError` is raised for every batch in flight; the caller decodes those in
  process. `available()` is False for `restart_backoff_s` after a failure, then the next
  `submit` starts a new child.
- Memory: the blocks (>= 8 MiB each, 2 x DEPTH of them, reserved when created, so a full
  /dev/shm fails a submit instead of raising SIGBUS later), the child (~77 MiB) and the
  batches in flight in the caller (at most DEPTH polled batches, each of at most
  `MAX_SUBMIT_BYTES` of values: the caller decodes a larger one in process; `held_bytes`,
  which the caller counts against what its next poll may inflate). The child
  materialises at most `max_result_values` column values of a batch (the in-process decoder
  one slice at a time): a batch with more comes back with `slices=None` (`collect`), to be
  decoded in process, slice by slice, and the child stays up.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.account import BatchAccount
from monitor.decode import BatchDecoder, DecodedBatch, EventFields, ModelSchema
from monitor.model import RawMessage

__all__ = [
    "DEPTH",
    "MAX_SUBMIT_BYTES",
    "DecodeWorker",
    "DecodeWorkerError",
    "DecoderSpec",
    "WorkerResult",
    "value_bytes",
]

DEPTH = 2
"""Batches in flight: with two, the child always has the next batch queued while the loop
applies one (a prototype at 200 + 20 features, rates counted at the poll: 0.76-0.80 of raw
kafka-python with two, 0.60-0.68 with one; README, Wide models)."""
MIN_BLOCK_BYTES = 8 * 1024 * 1024
MAX_SUBMIT_BYTES = 16 * 1024 * 1024
"""The most value bytes of a batch the caller should `submit` (the default `fetch_max_bytes`:
what one uncompressed poll carries). A larger batch, which only compressed batches inflate
to (up to 64 MiB a poll, `monitor.kafka_records`), is decoded in process: shipped, it held
its values, its packed copy and its grown blocks at once for `DEPTH` polls (6 partitions of
gzip floods took the loop to 589 MiB of RSS, 352 MiB after)."""
MAX_RESULT_VALUES = 1 << 22
"""Column values (numeric and categorical) the child materialises for one batch: two of the
decoder's slices (`decode._SLICE_VALUES`, 2^21). A batch whose columns would exceed it (a
hostile batch of array messages, say) is handed back undecoded, and the loop decodes it in
process slice by slice, so the worker never holds more of a batch than that."""
_CONTEXT = multiprocessing.get_context("spawn")


def value_bytes(messages: Sequence[RawMessage]) -> int:
    """The bytes of the messages' values (a tombstone counts 0)."""
    return sum(len(m.value) for m in messages if m.value is not None)


IntArray = npt.NDArray[np.int64]


class DecodeWorkerError(RuntimeError):
    """The child failed (died, errored or timed out); the batch must be decoded in process."""


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    """Everything that builds a `BatchDecoder` (picklable: it is sent to the child)."""

    fields: EventFields
    schemas: tuple[ModelSchema, ...]
    max_samples: int
    payload_preview: bool

    def build(self) -> BatchDecoder:
        """The decoder of this spec."""
        return BatchDecoder(
            self.fields,
            list(self.schemas),
            max_samples=self.max_samples,
            payload_preview=self.payload_preview,
        )


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """The decoded slices of one batch, the batch's account (the one the slices share) and
    the spec version they were decoded with. `slices` is None (and `account` empty) when the
    batch's columns exceed the child's bound: decode it in process."""

    slices: tuple[DecodedBatch, ...] | None
    account: BatchAccount
    version: int
    decode_s: float = 0.0
    """The child's wall seconds for the batch: unpacking, decoding and writing the result."""


def _view(block: shared_memory.SharedMemory) -> memoryview:
    """The block's memory (None only after `close`, which this module never reads after)."""
    view = block.buf
    assert view is not None
    return view


def _grown(block: shared_memory.SharedMemory | None, need: int) -> shared_memory.SharedMemory:
    """`block` if it holds `need` bytes, else a new block of the next power of two (then the
    old one is unlinked). The new block's pages are reserved at once (`posix_fallocate`), so a
    full /dev/shm (a container's is 64 MiB by default) is an `OSError` here, never a SIGBUS
    when the pages are first written."""
    if block is not None and block.size >= need:
        return block
    size = MIN_BLOCK_BYTES
    while size < need:
        size *= 2
    grown = shared_memory.SharedMemory(create=True, size=size)
    try:
        os.posix_fallocate(grown._fd, 0, size)  # type: ignore[attr-defined]
    except OSError:
        grown.close()
        grown.unlink()
        raise  # `block` stays as it was
    if block is not None:
        block.close()
        block.unlink()
    return grown


class _Attached:
    """The child's view of the parent's blocks: per slot its (input, output) pair, attached
    by name; a slot whose block was replaced (grown) drops the old mapping."""

    def __init__(self) -> None:
        self._slots: dict[int, dict[str, shared_memory.SharedMemory]] = {}

    def pair(
        self, slot: int, in_name: str, out_name: str
    ) -> tuple[shared_memory.SharedMemory, shared_memory.SharedMemory]:
        held = self._slots.setdefault(slot, {})
        for name in [n for n in held if n not in (in_name, out_name)]:
            held.pop(name).close()
        for name in (in_name, out_name):
            if name not in held:
                held[name] = shared_memory.SharedMemory(name=name)
        return held[in_name], held[out_name]

    def close(self) -> None:
        for held in self._slots.values():
            for block in held.values():
                block.close()
        self._slots.clear()


_Header = tuple[tuple[str, ...], IntArray, IntArray, IntArray, IntArray, IntArray]
"""A packed batch's header: the topic names, then per message its topic code (index into
the names), partition, offset, timestamp (ms) and value length."""


def _pack(messages: Sequence[RawMessage]) -> tuple[bytes, tuple[bytes, ...], IntArray]:
    """(header, values, value lengths) of a batch (module docstring, Transport). An empty
    batch, one whose values are not all bytes, or one with a record without timestamp, is
    the pickled list of its messages with no values (the child tells the two apart by the
    values length)."""

    def whole() -> tuple[bytes, tuple[bytes, ...], IntArray]:
        return pickle.dumps(list(messages), protocol=5), (), np.zeros(0, dtype=np.int64)

    if set(map(type, messages)) != {RawMessage}:
        return whole()
    topics, partitions, offsets, stamps, values, _, _ = zip(*messages, strict=True)
    numbers = chain(map(type, partitions), map(type, offsets), map(type, stamps))
    if set(map(type, values)) != {bytes} or set(numbers) != {int}:  # a timestamp None, say
        return whole()
    n = len(values)
    codes = {topic: i for i, topic in enumerate(dict.fromkeys(topics))}
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    try:
        header: _Header = (
            tuple(codes),
            np.fromiter(map(codes.__getitem__, topics), dtype=np.int64, count=n),
            np.array(partitions, dtype=np.int64),
            np.array(offsets, dtype=np.int64),
            np.array(stamps, dtype=np.int64),
            lengths,
        )
    except OverflowError:  # an int beyond int64
        return whole()
    return pickle.dumps(header, protocol=5), values, lengths


def _write(view: memoryview, header: bytes, values: tuple[bytes, ...], lengths: IntArray) -> None:
    """The header, then each value right after the one before (one copy of each)."""
    position = len(header)
    view[:position] = header
    for value, length in zip(values, lengths.tolist(), strict=True):
        view[position : position + length] = value
        position += length


def _unpack(view: memoryview, header_length: int, values_length: int) -> list[RawMessage]:
    """The messages `_pack` wrote (keys and headers left out: the loop keeps them)."""
    loaded = pickle.loads(view[:header_length])
    if values_length < 0:  # a pickled list of messages
        return list(loaded)
    names, codes, partitions, offsets, stamps, lengths = loaded
    if int(lengths.sum()) != values_length:
        raise ValueError("the packed values do not match their lengths")
    ends = np.cumsum(lengths) + header_length
    starts = (ends - lengths).tolist()
    values = map(bytes, map(view.__getitem__, map(slice, starts, ends.tolist())))
    topics = map(names.__getitem__, codes.tolist())
    rows = zip(topics, partitions.tolist(), offsets.tolist(), stamps.tolist(), values, strict=True)
    return [RawMessage(*row) for row in rows]


def _with_originals(account: BatchAccount, messages: Sequence[RawMessage]) -> BatchAccount:
    """`account` with each dead letter's message replaced by the submitted one (the child's
    copy has no key and no headers)."""
    if account.dead_letters:
        by_key = {(m.topic, m.partition, m.offset): m for m in messages}
        for key, (message, reason) in list(account.dead_letters.items()):
            account.dead_letters[key] = (by_key.get(key, message), reason)
    return account


def column_values(batch: DecodedBatch) -> int:
    """Column values of one slice (numeric and categorical, every model)."""
    return sum(c.numeric.size + sum(x.size for x in c.categorical) for c in batch.models.values())


def _child_main(conn: Connection) -> None:
    """The child's loop: ("spec", version, spec, max values) | ("decode", version, slot, in,
    (header length, values length), out) | None.

    Answers each decode with ("shm", [payload length, buffer lengths...], seconds) when the
    result fits the output block, else ("pipe", pickled bytes, size, seconds), `seconds` being
    the wall time the child spent on the batch; ("large",) when the batch's columns
    exceed the bound (nothing more of it is decoded); an exception with ("error", its type
    and where it was raised: never its message, which could quote payload). SIGINT and
    SIGTERM are ignored (a terminal's Ctrl-C or systemd's stop reach the whole process group):
    the parent ends the child, with None or, when the parent is gone, the pipe's end.
    """
    import gc
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    decoders: dict[int, tuple[DecoderSpec, BatchDecoder, int]] = {}
    blocks = _Attached()
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            if message[0] == "spec":
                _, version, spec, max_values = message
                decoders = {version: (spec, spec.build(), max_values)}
                continue
            _, version, slot, in_name, lengths_in, out_name = message
            started = time.perf_counter()
            try:
                inp, out = blocks.pair(slot, in_name, out_name)
                messages = _unpack(_view(inp), *lengths_in)
                spec, decoder, max_values = decoders[version]
                account = BatchAccount(max_samples=spec.max_samples)
                slices: list[DecodedBatch] = []
                values = 0
                for decoded in decoder.slices(messages, account):
                    values += column_values(decoded)
                    if values > max_values:
                        break
                    slices.append(decoded)
                if values > max_values:  # the slices go, the loop decodes the batch itself
                    slices.clear()
                    conn.send(("large",))
                    continue
                result = (tuple(slices), account)
                buffers: list[pickle.PickleBuffer] = []
                payload = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
                raws = [b.raw() for b in buffers]
                lengths = [len(payload), *(r.nbytes for r in raws)]
                if sum(lengths) > out.size:
                    pickled = pickle.dumps(result, protocol=5)
                    conn.send(("pipe", pickled, sum(lengths), time.perf_counter() - started))
                    continue
                position = 0
                for chunk, length in zip([memoryview(payload), *raws], lengths, strict=True):
                    _view(out)[position : position + length] = chunk
                    position += length
                del raws, buffers
                conn.send(("shm", lengths, time.perf_counter() - started))
            except Exception as exc:  # reported to the parent, which decodes in process
                conn.send(("error", _where(exc)))
    except (EOFError, OSError, KeyboardInterrupt):
        return
    finally:
        blocks.close()


def _where(exc: BaseException) -> str:
    """The exception's type and innermost frame (file:line), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__} in the decoding child{place}"


class DecodeWorker:
    """Decodes batches in a child process, `DEPTH` in flight (see the module docstring)."""

    def __init__(
        self,
        spec: DecoderSpec,
        *,
        timeout_s: float = 30.0,
        restart_backoff_s: float = 30.0,
        max_result_values: int = MAX_RESULT_VALUES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._max_result_values = max_result_values
        self._version = 0
        self._sent_version = -1
        self._timeout_s = timeout_s
        self._restart_backoff_s = restart_backoff_s
        self._monotonic = monotonic
        self._process: Any = None
        self._conn: Connection | None = None
        self._inputs: list[shared_memory.SharedMemory | None] = [None] * DEPTH
        self._outputs: list[shared_memory.SharedMemory | None] = [None] * DEPTH
        # (slot, spec version, the batch as submitted: its dead letters are mapped back to it,
        # the bytes the caller holds for it: its packed copy and the values it came from)
        self._in_flight: deque[tuple[int, int, Sequence[RawMessage], int]] = deque()
        self._next_slot = 0
        self._retry_at = float("-inf")
        self.failures = 0

    @property
    def version(self) -> int:
        """The version of the current spec (it grows with each `configure`)."""
        return self._version

    @property
    def max_result_values(self) -> int:
        """The most column values the child materialises for one batch."""
        return self._max_result_values

    @property
    def pending(self) -> int:
        """Batches submitted and not collected."""
        return len(self._in_flight)

    @property
    def held_bytes(self) -> int:
        """What the batches in flight hold in the caller: each one's packed copy in its input
        block and the values it was packed from (twice the packed size)."""
        return sum(held for _, _, _, held in self._in_flight)

    def configure(self, spec: DecoderSpec) -> None:
        """Decode the batches submitted from now on with `spec`."""
        if spec != self._spec:
            self._spec = spec
            self._version += 1

    def answered(self) -> bool:
        """Whether the child's answer for the oldest batch in flight is waiting (no wait)."""
        conn = self._conn
        try:
            return bool(self._in_flight) and conn is not None and conn.poll(0)
        except (EOFError, OSError):
            return True  # collect() reports the failure

    def available(self) -> bool:
        """A batch can be submitted now (a slot is free and no failure backoff runs)."""
        return len(self._in_flight) < DEPTH and self._monotonic() >= self._retry_at

    def start(self) -> None:
        """Start the child (also done by the first `submit` after a failure); a child that
        cannot be started is a failure (`DecodeWorkerError`, backoff)."""
        if self._process is not None:
            return
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_child_main, args=(child,), name="driftmon-decode", daemon=True
        )
        try:
            process.start()
        except OSError as exc:
            parent.close()
            child.close()
            self._fail(f"the child could not be started: {exc}")
        child.close()
        self._process, self._conn = process, parent
        self._sent_version = -1

    def submit(self, messages: Sequence[RawMessage]) -> None:
        """Hand one batch to the child; raises `DecodeWorkerError` if it cannot take it."""
        if not self.available():
            raise DecodeWorkerError("no free slot or a restart backoff is running")
        self.start()
        conn = self._conn
        assert conn is not None
        slot = self._next_slot
        try:
            header, values, lengths = _pack(messages)
            size = len(header) + int(lengths.sum())
            block = self._inputs[slot] = _grown(self._inputs[slot], size)
            _write(_view(block), header, values, lengths)
            out = self._outputs[slot] = _grown(self._outputs[slot], 0)
            if self._sent_version != self._version:
                conn.send(("spec", self._version, self._spec, self._max_result_values))
                self._sent_version = self._version
            sizes = (len(header), size - len(header) if values else -1)
            conn.send(("decode", self._version, slot, block.name, sizes, out.name))
        except (OSError, ValueError, pickle.PicklingError) as exc:
            self._fail(f"submit failed: {exc}")
        self._in_flight.append((slot, self._version, messages, 2 * size))
        self._next_slot = (slot + 1) % DEPTH

    def collect(self) -> WorkerResult:
        """The slices of the oldest batch in flight; raises `DecodeWorkerError` (and stops the
        child, dropping every batch in flight) when the child fails."""
        if not self._in_flight:
            raise DecodeWorkerError("no batch in flight")
        slot, version, messages, _ = self._in_flight[0]
        conn = self._conn
        try:
            if conn is None or not conn.poll(self._timeout_s):
                self._fail(f"no answer within {self._timeout_s:g} s")
            assert conn is not None
            answer = conn.recv()
        except (EOFError, OSError) as exc:
            self._fail(f"the child exited ({exc})")
        self._in_flight.popleft()
        kind = answer[0]
        if kind == "error":
            self._fail(answer[1])
        if kind == "large":
            return WorkerResult(None, BatchAccount(), version)
        if kind == "pipe":
            slices, account = pickle.loads(answer[1])
            try:
                self._outputs[slot] = _grown(self._outputs[slot], answer[2])
            except OSError:  # this result is good; the next submit into the slot may fail
                self._outputs[slot] = None
            return WorkerResult(slices, _with_originals(account, messages), version, answer[3])
        lengths: list[int] = answer[1]
        out = self._outputs[slot]
        assert out is not None
        position = lengths[0]
        buffers = []
        for length in lengths[1:]:  # copied out: the block is reused two batches later
            buffers.append(bytearray(_view(out)[position : position + length]))
            position += length
        slices, account = pickle.loads(_view(out)[: lengths[0]], buffers=buffers)
        return WorkerResult(slices, _with_originals(account, messages), version, answer[2])

    def _fail(self, why: str) -> Any:
        """Stop the child, forget the batches in flight, start the backoff, raise."""
        self.failures += 1
        self._in_flight.clear()
        self._stop_child(kill=True)
        self._retry_at = self._monotonic() + self._restart_backoff_s
        raise DecodeWorkerError(why)

    def _stop_child(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            if not kill:
                with contextlib.suppress(OSError):
                    conn.send(None)
            conn.close()
        if process is not None:
            if kill:
                process.kill()
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)

    def close(self) -> None:
        """Stop the child and free the shared memory (batches in flight are dropped)."""
        self._in_flight.clear()
        self._stop_child(kill=False)
        for blocks in (self._inputs, self._outputs):
            for i, block in enumerate(blocks):
                if block is not None:
                    block.close()
                    block.unlink()
                    blocks[i] = None

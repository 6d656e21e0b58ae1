"""Record unpacking: `monitor.kafka_records` vs kafka-python's own, in process and through Kafka.

    .venv/bin/python -m bench.record_unpack [--reps 15] [--broker-reps 5]

In process: a 1 MiB fetch (the daemon's partition fetch size) of the end-to-end benchmark's
events (`bench.e2e.encode_events`) at 20 + 2, 200 + 20 and 2000 + 200 features, in 16 KiB
record batches (the producer's default batch size), unpacked by kafka-python's
`PartitionRecords` and turned into `RawMessage`s as `KafkaSource` did (`source.raw_message`),
and by `LeanPartitionRecords`, alternately, `--reps` times each; medians of CPU µs per
record, and the two outputs checked equal. Then the same at 200 + 20 for each codec a producer
may compress with (16 KiB of records per batch before compression, 1 MiB of compressed
batches): the inflating is part of the time.

Through Kafka (skipped with `--broker-reps 0`): the embedded broker holds 30,000 200 + 20
events in one partition; a `KafkaSource` (the daemon's Kafka adapter, default fetch
settings) reads them all with the lean class and with kafka-python's (`kafka_records.install`
answering False), alternately, `--broker-reps` times each, each run a fresh group; medians
of events/s and of the process's CPU µs per event (both from the end of the first poll to
the last record, as `bench.e2e_worker` counts).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

from bench import workload
from bench.e2e import encode_events, produce
from bench.report import load_average, machine_info
from monitor import kafka_records
from monitor.kafka_records import LeanPartitionRecords
from monitor.source import KafkaSource, raw_message

FETCH_BYTES = 1 << 20
BATCH_BYTES = 16_384
WIDTHS = ((20, 2), (200, 20), (2000, 200))
BROKER_EVENTS = 30_000
TP = TopicPartition("bench", 0)
CODECS = {
    "none": DefaultRecordBatch.CODEC_NONE,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
}


def _events(numeric: int, categorical: int, n: int) -> list[bytes]:
    """`n` end-to-end benchmark events of this width."""
    batch = workload.draw(
        workload.stream_rng(4, numeric), n, n_numeric=numeric, n_categorical=categorical
    )
    return encode_events(batch, time.time() - 1800.0, 1800.0)


def _fetch(values: Sequence[bytes], codec: int = 0) -> bytes:
    """`values` in record batches of at most BATCH_BYTES of records (one record at least),
    compressed by `codec`, up to 1 MiB."""
    out = bytearray()
    offset = 0
    while offset < len(values) and len(out) < FETCH_BYTES:
        builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, BATCH_BYTES)
        delta = 0
        while offset + delta < len(values):
            stamp = 1_700_000_000_000 + offset + delta
            if builder.append(delta, stamp, None, values[offset + delta], []) is None:
                break
            delta += 1
        batch = builder.build()
        batch[0:8] = struct.pack(">q", offset)
        out += batch
        offset += delta
    return bytes(out)


def _stock(data: bytes) -> list[Any]:
    records = Fetcher.PartitionRecords(0, TP, MemoryRecords(data)).take(None)
    return [raw_message(record) for record in records]


def _lean(data: bytes) -> list[Any]:
    records: list[Any] = LeanPartitionRecords(0, TP, MemoryRecords(data)).take(None)
    return records


def _medians(data: bytes, reps: int) -> tuple[int, float, float]:
    """(records, kafka-python's and the lean class's median CPU µs per record) of one fetch,
    unpacked alternately `reps` times each; the two outputs checked equal."""
    expected = _stock(data)
    if _lean(data) != expected:
        raise AssertionError("lean and kafka-python records differ")
    times: dict[Callable[[bytes], list[Any]], list[float]] = {_stock: [], _lean: []}
    for _ in range(reps):
        for unpack, samples in times.items():
            start = time.process_time()
            unpack(data)
            samples.append((time.process_time() - start) / len(expected) * 1e6)
    stock, lean = (statistics.median(samples) for samples in times.values())
    return len(expected), stock, lean


def _in_process(reps: int) -> None:
    print(
        "| features / event | bytes / event | records / 1 MiB fetch | kafka-python µs/record "
        "| lean µs/record | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for numeric, categorical in WIDTHS:
        values = _events(numeric, categorical, max(20, FETCH_BYTES // (27 * numeric) + 20))
        records, stock, lean = _medians(_fetch(values), reps)
        size = sum(map(len, values[:records])) // records
        print(
            f"| {numeric} + {categorical} | {size:,} | {records:,} | {stock:.2f} "
            f"| {lean:.2f} | {lean / stock:.2f} |"
        )


def _codecs(reps: int) -> None:
    print()
    print(
        "| 200 + 20, codec | compressed bytes / event | records / 1 MiB fetch "
        "| kafka-python µs/record | lean µs/record | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    values = _events(200, 20, 2_000)
    for name, codec in CODECS.items():
        data = _fetch(values, codec)
        records, stock, lean = _medians(data, reps)
        print(
            f"| {name} | {len(data) // records:,} | {records:,} | {stock:.2f} | {lean:.2f} "
            f"| {lean / stock:.2f} |"
        )


def _consume(bootstrap: str, topic: str) -> tuple[float, float, bool]:
    """(events/s, CPU µs/event, lean installed) of one KafkaSource reading the whole topic."""
    kwargs = {
        "bootstrap_servers": bootstrap,
        "group_id": f"unpack-{uuid.uuid4().hex[:8]}",
        "auto_offset_reset": "earliest",
        "max_poll_records": 5000,
    }
    source = KafkaSource(kwargs, [topic], lambda partitions: {}, lambda partitions: None)
    try:
        source.connect()
        seen = 0
        first: tuple[float, float, int] | None = None
        deadline = time.monotonic() + 120.0
        while seen < BROKER_EVENTS and time.monotonic() < deadline:
            got = len(source.poll(1.0, 5000))
            if got and first is None:
                first = (time.perf_counter(), time.process_time(), got)
            seen += got
        if first is None or seen < BROKER_EVENTS:
            raise RuntimeError(f"read {seen} of {BROKER_EVENTS} events")
        events = seen - first[2]
        wall = time.perf_counter() - first[0]
        cpu = time.process_time() - first[1]
        return events / wall, cpu / events * 1e6, source.lean_records
    finally:
        source.close()


def _through_kafka(reps: int) -> None:
    from monitor.dev.broker import EmbeddedBroker  # development dependency

    with tempfile.TemporaryDirectory() as scratch:
        broker = EmbeddedBroker(log_path=Path(scratch) / "broker.log")
        broker.start()
        try:
            produce(broker.bootstrap, "bench-unpack", _events(200, 20, BROKER_EVENTS))
            install = kafka_records.install
            rates: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(reps):
                for lean in (True, False):
                    kafka_records.install = install if lean else (lambda consumer: None)
                    try:
                        rate, cpu, installed = _consume(broker.bootstrap, "bench-unpack")
                    finally:
                        kafka_records.install = install
                    if installed != lean:
                        raise AssertionError("the lean class was not (un)installed as asked")
                    rates[lean].append((rate, cpu))
        finally:
            broker.stop()
    print()
    print("| KafkaSource, 200 + 20, 30,000 events | events/s | CPU µs/event |")
    print("|---|---:|---:|")
    for lean, label in ((False, "kafka-python's records"), (True, "lean records")):
        rate = statistics.median(r for r, _ in rates[lean])
        cpu = statistics.median(c for _, c in rates[lean])
        print(f"| {label} | {rate:,.0f} | {cpu:.1f} |")


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--broker-reps", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine_info()}; load average before: {load_average()}")
    print()
    _in_process(args.reps)
    _codecs(args.reps)
    if args.broker_reps:
        _through_kafka(args.broker_reps)


if __name__ == "__main__":
    main()

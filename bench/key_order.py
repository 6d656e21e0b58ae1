"""Decoding when the producer's key order is not the configured order (in process, no broker).

    .venv/bin/python -m bench.key_order [--events 1000] [--repeat 3]

msgspec finds the Struct field of each JSON key by comparing it with the fields from the one
after the last match onwards: keys in the Struct's order cost one comparison each, keys in
another order or not configured at all cost a scan of the fields each. `BatchDecoder` lays
its record types out in the key order it sees (`monitor.decode._Layout`). This benchmark
decodes the same events, at 200 + 20 and 2000 + 200 features, with their features object in
the configured order, reversed, shuffled, and sorted by name in reverse, and with only every
tenth key configured (a model watching part of a wide event), each with the decoder as
shipped and with one that keeps the configured order (the behaviour before the layout
followed the producer), in batches the size of a 1 MiB fetch (937 and 94 events). Figures:
CPU us per event (`time.process_time`) after nine warm-up batches per decoder, the best of
`--repeat` runs, interleaved.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from monitor.account import BatchAccount
from monitor.decode import _ORDER_CHECK_EVERY as ORDER_CHECK_EVERY
from monitor.decode import BatchDecoder, EventFields, ModelSchema
from monitor.model import RawMessage


class ConfiguredOrder(BatchDecoder):
    """A decoder whose record types keep the configured key order (the behaviour before)."""

    __slots__ = ()

    def _follow_key_order(self, values: Sequence[Any]) -> None:
        return


def _messages(names: Sequence[str], n: int, seed: int) -> list[RawMessage]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features = {
            name: (f"v{rng.randrange(30)}" if name.startswith("c") else round(rng.gauss(0, 1), 6))
            for name in names
        }
        value = msgspec.json.encode({"ts": 1.7e9 + i, "model": "m", "features": features})
        out.append(RawMessage("t", 0, i, 1, value))
    return out


def _cpu_us(decoder: BatchDecoder, messages: list[RawMessage], per_batch: int) -> float:
    batches = [messages[i : i + per_batch] for i in range(0, len(messages), per_batch)]
    started = time.process_time()
    for batch in batches:
        for _ in decoder.slices(batch, BatchAccount()):
            pass
    return (time.process_time() - started) / len(messages) * 1e6


def main() -> None:
    """Print one table row per (width, key order)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| features | keys sent | as shipped, CPU us/event | configured order only | ratio |")
    print("|---|---|---:|---:|---:|")
    for numeric, per_batch in ((200, 937), (2000, 94)):
        categorical = numeric // 10
        names = [f"n{i:04d}" for i in range(numeric)] + [f"c{i:03d}" for i in range(categorical)]
        rng = random.Random(7)
        shuffled = rng.sample(names, len(names))
        cases: list[tuple[str, list[str], Sequence[str]]] = [
            ("configured order", names, names),
            ("reversed", names[::-1], names),
            ("shuffled", shuffled, names),
            ("sorted, descending", sorted(names, reverse=True), names),
            ("every key, 1 in 10 configured", names, names[::10]),
        ]
        for label, sent, configured in cases:
            messages = _messages(sent, args.events, seed=numeric)
            schema = ModelSchema(
                "m",
                tuple(n for n in configured if n.startswith("n")),
                tuple(n for n in configured if n.startswith("c")),
            )
            runs: dict[str, list[float]] = {"shipped": [], "configured": []}
            kinds: dict[str, type[BatchDecoder]] = {
                "shipped": BatchDecoder,
                "configured": ConfiguredOrder,
            }
            for _ in range(args.repeat):
                for key, kind in kinds.items():
                    decoder = kind(EventFields(), [schema])
                    for _ in range(ORDER_CHECK_EVERY + 1):  # its layout, learned (two looks)
                        _cpu_us(decoder, messages[:per_batch], per_batch)
                    runs[key].append(_cpu_us(decoder, messages, per_batch))
            shipped, before = min(runs["shipped"]), min(runs["configured"])
            width = f"{len(schema.numeric)} + {len(schema.categorical)}"
            ratio = before / shipped
            print(f"| {width} | {label} | {shipped:,.1f} | {before:,.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()

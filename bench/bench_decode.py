"""Micro-benchmark of `BatchDecoder.decode`: Kafka message bytes -> per-model numpy columns.

    .venv/bin/python -m bench.bench_decode [--messages 10000] [--repeat 7]

The workload (drawn here, in the shapes of `bench/workload.py`'s base width): one JSON
object per message with 20 numeric features (normal, lognormal, heavy-tailed with outliers,
and one with 5 % nulls) and 2 categorical features (10 and 1000 Zipf-distributed levels),
shortest float repr, ~550 B.
Two layouts are timed: the default `{"ts", "model", "model_version", "features": {...}}` and
the flat one (`features_path=""`), plus the default layout with 1 % of the messages holding a
string in a numeric feature (those messages are decoded alone by the looser decoders, and the
numeric columns of their chunk are type-checked value by value). For scale, plain
`msgspec.json.Decoder().decode` of every message (no columns) is timed in the same run. Each
figure is the median of `--repeat` runs, interleaved, on one core, with the best run alongside
(the least disturbed by other processes on a shared machine); nothing else (no Kafka) is in
the loop.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable

import msgspec
import numpy as np

from monitor.decode import BatchDecoder, EventFields, ModelSchema
from monitor.model import RawMessage

NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = ("c10", "c1000")


def _numeric_block(rng: np.random.Generator, n: int) -> np.ndarray:
    """float64 [n, 20] drawn like workload.py's base distribution (NaN = missing)."""
    x = np.empty((n, 20))
    for i in range(8):
        x[:, i] = rng.normal(10.0 * i, 1.0 + i / 2, n)
    for j in range(6):
        x[:, 8 + j] = rng.lognormal(j / 2, 0.4 + 0.1 * j, n)
    for k in range(5):
        col = rng.standard_t(2, n) * (1.0 + k)
        out = rng.random(n) < 0.01
        col[out] = rng.uniform(50, 500, out.sum()) * (1.0 + k) * rng.choice([-1, 1], out.sum())
        x[:, 14 + k] = col
    col = rng.normal(0.0, 1.0, n)
    col[rng.random(n) < 0.05] = np.nan
    x[:, 19] = col
    return x


def _zipf(rng: np.random.Generator, levels: int, power: float, n: int) -> np.ndarray:
    """Category codes with p ~ 1/rank^power."""
    p = 1.0 / np.arange(1, levels + 1) ** power
    return rng.choice(levels, n, p=p / p.sum())


def make_messages(n: int, *, flat: bool, seed: int = 20240601) -> list[RawMessage]:
    """`n` single-event messages in the nested (default) or flat layout."""
    rng = np.random.default_rng(seed)
    x = _numeric_block(rng, n).tolist()
    c10 = _zipf(rng, 10, 1.0, n).tolist()
    c1000 = _zipf(rng, 1000, 1.1, n).tolist()
    messages = []
    for r in range(n):
        features: dict[str, object] = {
            name: (None if math.isnan(v) else v) for name, v in zip(NUMERIC, x[r], strict=True)
        }
        features["c10"] = f"a{c10[r]}"
        features["c1000"] = f"b{c1000[r]:03d}"
        head = {"ts": 1_764_180_000.0 + r * 0.01, "model": "fraud", "model_version": "v7"}
        event = {**head, **features} if flat else {**head, "features": features}
        value = json.dumps(event, separators=(",", ":")).encode()
        messages.append(RawMessage("features", r % 3, r, 1_764_180_000_000 + r, value))
    return messages


def _time(fn: Callable[[], object]) -> float:
    """Seconds for one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print events/s per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    schema = ModelSchema("fraud", NUMERIC, CATEGORICAL)
    nested = make_messages(args.messages, flat=False)
    flat = make_messages(args.messages, flat=True)
    dirty = [
        m._replace(value=m.value.replace(b'"f03":', b'"f03":"bad","x":', 1)) if i % 100 == 0 else m
        for i, m in enumerate(nested)
    ]
    nested_decoder = BatchDecoder(EventFields(), [schema])
    flat_decoder = BatchDecoder(EventFields(features_path=""), [schema])
    raw = msgspec.json.Decoder()

    def parse_only() -> None:
        """Parse every message to Python objects and drop them (the floor)."""
        for m in nested:
            raw.decode(m.value)

    variants: dict[str, Callable[[], object]] = {
        "msgspec decode only (no columns)": parse_only,
        "BatchDecoder, nested features": lambda: nested_decoder.decode(nested),
        "BatchDecoder, flat (features_path='')": lambda: flat_decoder.decode(flat),
        "BatchDecoder, nested, 1% wrong-typed": lambda: nested_decoder.decode(dirty),
    }
    check = nested_decoder.decode(nested)
    assert check.total_accepted == args.messages, check.rejected
    mean_bytes = sum(len(m.value) for m in nested) / len(nested)

    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            timings[name].append(_time(fn))

    print(
        f"{args.messages} messages, mean {mean_bytes:.0f} B, 20 numeric + 2 categorical, "
        f"median of {args.repeat}"
    )
    print(f"{'variant':<40} {'ms/batch':>9} {'us/event':>9} {'events/s':>11} {'best ev/s':>11}")
    for name, seconds in timings.items():
        median = statistics.median(seconds)
        print(
            f"{name:<40} {median * 1e3:>9.2f} {median / args.messages * 1e6:>9.2f} "
            f"{args.messages / median:>11,.0f} {args.messages / min(seconds):>11,.0f}"
        )


if __name__ == "__main__":
    main()

"""Feature discovery (`features: auto`): which names a model's events carry, and their kinds.

A model configured with `features: auto` starts without features. `FeatureDiscovery` watches
the feature objects of its first `events_needed` events (the discovery phase) and counts, per
name, how many values were numbers (int or float, not bool), strings or bools, and anything
else (null, objects, arrays). Then `choose` freezes the feature list:

- a name is a candidate when it could be configured (`usable_name`: at most 256
  characters, no double quote, backslash or control character), holds a number, string or
  bool in at least
  `max(MIN_EVENTS, MIN_SHARE x events)` of the discovery events (one-off names are not
  features) and matches none of the `exclude` patterns (shell globs, `fnmatch`);
- its kind is the majority kind of its values: numbers -> numeric, strings and bools ->
  categorical (a tie is categorical); the minority values are later counted as invalid
  values of that feature, like any value of the wrong type;
- the `max_features` most frequent candidates are monitored (ties by name), numeric first
  in the returned order.

The decided specs are the model's features from then on: its warm-up reference is fitted from
the events after discovery (monitor.runtime), and the specs are persisted in the checkpoint
with it, so a restart does not discover again.

Memory is bounded whatever the stream: at most `max_names` names are counted during
discovery (when the table is full, a new name evicts one name with the smallest count, the
newest first among equal counts, so a flood of one-off names cannot push out a name that is
in most events; the names sit in a heap keyed by their count when last looked at, so an
eviction costs O(log n), not a scan of the table), and `UnmonitoredNames`
remembers at most `cap` distinct names seen after discovery that are not monitored (a
64-bit keyed hash each) and lists at most `LISTED` of them (non-printable characters
escaped); beyond `cap` the count stays at `cap`
and is reported as saturated. The count is a metric value, never a label.

`feature_objects` pulls the feature objects out of raw message values with the event
contract's rules (one object or an array of objects, `features_path`, the model field and
`default_model`); anything the decoder would reject is skipped here (the decoder counts it).
"""

from __future__ import annotations

import fnmatch
import heapq
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from monitor.model import FeatureKind, FeatureSpec

MIN_SHARE: Final = 0.01
"""A discovered feature holds a usable value in at least this share of the discovery events."""
MIN_EVENTS: Final = 2
"""... and in at least this many of them (a name seen once is never a feature)."""
LISTED: Final = 20
"""Unmonitored names listed in /status per model."""
DEFAULT_NAME_CAP: Final = 100_000
"""Distinct unmonitored names counted exactly per model."""
MAX_NAME_CHARS: Final = 256
"""The longest feature name (as for a configured feature)."""
_UNMATCHABLE: Final = re.compile(r'["\\\x00-\x1f\x7f]')


def usable_name(name: str) -> bool:
    """True when `name` could be a configured feature name: 1 to 256 characters, none of
    them a double quote, a backslash or a control character (the decoder cannot match those
    as JSON keys). Other names are never discovered, only counted as unmonitored."""
    return 0 < len(name) <= MAX_NAME_CHARS and _UNMATCHABLE.search(name) is None


@dataclass(slots=True)
class NameCounts:
    """What one name held over the discovery events: numbers, strings/bools, other values."""

    numeric: int = 0
    categorical: int = 0
    other: int = 0

    @property
    def usable(self) -> int:
        """Events in which the name held a number, a string or a bool."""
        return self.numeric + self.categorical

    @property
    def total(self) -> int:
        """Events in which the name appeared."""
        return self.numeric + self.categorical + self.other


def value_kind(value: object) -> FeatureKind | None:
    """NUMERIC for an int or float (not bool), CATEGORICAL for a str or bool, else None."""
    if isinstance(value, bool | str):
        return FeatureKind.CATEGORICAL
    if isinstance(value, int | float):
        return FeatureKind.NUMERIC
    return None


def excluded(name: str, patterns: Sequence[str]) -> bool:
    """True when `name` matches one of the shell-glob `patterns` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class FeatureDiscovery:
    """Counts names and value kinds over a model's discovery events (see the module doc)."""

    def __init__(
        self,
        events_needed: int,
        max_features: int,
        exclude: Sequence[str] = (),
        *,
        max_names: int | None = None,
    ) -> None:
        self.events_needed = int(events_needed)
        self.max_features = int(max_features)
        self.exclude = tuple(exclude)
        self.max_names = int(max_names or max(10 * max_features, 10_000))
        self.events = 0
        self.names: dict[str, NameCounts] = {}
        self._heap: list[tuple[int, int, str]] = []
        """(total when last looked at, -insertion number, name): one entry per name held."""
        self.inserted = 0
        """Names added to the table so far (a name evicted and seen again counts twice)."""
        self.evicted = 0

    @property
    def done(self) -> bool:
        """True once `events_needed` events were observed."""
        return self.events >= self.events_needed

    def observe(self, features: Iterable[Mapping[str, Any]]) -> int:
        """Count the feature objects of events until `events_needed`; returns how many it took."""
        taken = 0
        for obj in features:
            if self.done:
                break
            self.events += 1
            taken += 1
            for name, value in obj.items():
                counts = self.names.get(name)
                if counts is None:
                    if not usable_name(name):
                        continue
                    if len(self.names) >= self.max_names:
                        self._evict()
                    counts = self.names[name] = NameCounts()
                    self.inserted += 1
                    heapq.heappush(self._heap, (1, -self.inserted, name))
                kind = value_kind(value)
                if kind is FeatureKind.NUMERIC:
                    counts.numeric += 1
                elif kind is FeatureKind.CATEGORICAL:
                    counts.categorical += 1
                else:
                    counts.other += 1
        return taken

    def _evict(self) -> None:
        """Forget one name with the smallest count, the most recently added among equals.

        Counts only grow, so a heap entry's count is at most the name's: the top entry is
        re-pushed with the name's count while that is larger, and evicted once equal (then no
        name has a smaller count). Each name has exactly one entry; a re-push follows growth.
        """
        while True:
            seen, order, name = heapq.heappop(self._heap)
            total = self.names[name].total
            if total > seen:
                heapq.heappush(self._heap, (total, order, name))
                continue
            del self.names[name]
            self.evicted += 1
            return

    def choose(self) -> tuple[FeatureSpec, ...]:
        """The discovered features: numeric ones, then categorical, each by name."""
        floor = max(MIN_EVENTS, MIN_SHARE * self.events)
        candidates = [
            (name, counts)
            for name, counts in self.names.items()
            if counts.usable >= floor and not excluded(name, self.exclude)
        ]
        candidates.sort(key=lambda item: (-item[1].usable, item[0]))
        chosen = [
            FeatureSpec(
                name,
                FeatureKind.NUMERIC
                if counts.numeric > counts.categorical
                else FeatureKind.CATEGORICAL,
            )
            for name, counts in candidates[: self.max_features]
        ]
        numeric = sorted((s for s in chosen if s.kind is FeatureKind.NUMERIC), key=_name)
        categorical = sorted((s for s in chosen if s.kind is FeatureKind.CATEGORICAL), key=_name)
        return (*numeric, *categorical)


def _name(spec: FeatureSpec) -> str:
    return spec.name


class UnmonitoredNames:
    """Distinct names seen that are not monitored: a bounded set of hashes and a short list."""

    def __init__(self, cap: int = DEFAULT_NAME_CAP, listed: int = LISTED) -> None:
        self.cap = int(cap)
        self.listed_cap = int(listed)
        self._hashes: set[int] = set()
        self.listed: list[str] = []

    @property
    def count(self) -> int:
        """Distinct unmonitored names seen (at most `cap`)."""
        return len(self._hashes)

    @property
    def saturated(self) -> bool:
        """True once `cap` names were counted: the true number may be larger."""
        return len(self._hashes) >= self.cap

    def discard(self, names: Iterable[str]) -> None:
        """Forget `names` (they became monitored features); they leave the list too."""
        gone = set(names)
        for name in gone:
            self._hashes.discard(_hash(name))
        shown = {printable(n[:MAX_NAME_CHARS]) for n in gone}
        self.listed = [n for n in self.listed if n not in shown]

    def add(self, names: Iterable[str]) -> None:
        """Count the names not seen before (until `cap`); list the first `listed`."""
        for name in names:
            if len(self._hashes) >= self.cap:
                return
            key = _hash(name)
            if key in self._hashes:
                continue
            self._hashes.add(key)
            if len(self.listed) < self.listed_cap:
                self.listed.append(printable(name[:MAX_NAME_CHARS]))


def printable(name: str) -> str:
    """`name` with every non-printable character written as a `\\xNN`/`\\uNNNN` escape, so a
    listed name can never drive a terminal or break a page."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _hash(name: str) -> int:
    """Python's keyed (SipHash) string hash: 64 bits, per process, hard to collide on purpose."""
    return hash(name)


_decode = msgspec.json.Decoder().decode


def feature_objects(
    values: Iterable[bytes | None],
    *,
    model_field: str,
    features_path: str,
    reserved: frozenset[str],
    default_model: str | None,
    wanted: frozenset[str],
    max_array_elements: int,
    max_message_bytes: int,
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(model, feature object) of every event of `values` whose model is in `wanted`.

    Messages and records the decoder rejects (too large, invalid JSON, not an object, unknown
    model, no feature object) are skipped silently: the decoder counts them. With
    `features_path=""` the event's own keys are its features, minus the `reserved` envelope
    fields.
    """
    path = features_path.split(".") if features_path else []
    for value in values:
        if value is None or len(value) > max_message_bytes:
            continue
        try:
            parsed = _decode(value)
        except (msgspec.DecodeError, ValueError, RecursionError):
            continue
        records = parsed[:max_array_elements] if isinstance(parsed, list) else (parsed,)
        for record in records:
            if not isinstance(record, dict):
                continue
            model = record.get(model_field)
            if model is None:
                model = default_model
            if not isinstance(model, str) or model not in wanted:
                continue
            obj: Any = record
            for part in path:
                obj = obj.get(part) if isinstance(obj, dict) else None
            if not isinstance(obj, dict):
                continue
            if not path:
                obj = {k: v for k, v in obj.items() if k not in reserved}
            yield model, obj

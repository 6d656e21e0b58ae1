"""Chunks of blobs whose closing manifest has not been read yet, bounded in bytes and blobs.

The state topic (`monitor.fleet`) and the reference registry (`monitor.registry`) both cut a
large blob into chunk records written before the manifest that closes it. Anyone who can
write to those topics can also write chunks that no manifest ever closes, so the store keeps:

- at most `max_bytes` bytes of chunk data, where every chunk counts at least
  `MIN_CHUNK_COST` bytes (so empty chunks cannot pile up for free);
- at most `max_blobs` blobs.

Over either bound the oldest blobs are forgotten first, the one just added included when it
alone is over (its manifest then finds chunks missing and is refused, which is what a
writer of a blob above the bound gets anyway). Every operation costs O(1) amortised: the
byte total is kept, never summed again (16,000 empty chunks took 49 s to fold before).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

MIN_CHUNK_COST: Final = 256
"""Bytes a chunk counts against `max_bytes` at least (its key, id and bookkeeping)."""
DEFAULT_MAX_BLOBS: Final = 1024
"""Blobs waiting for their manifest at most."""


@dataclass(slots=True)
class Pending:
    """The chunks of one blob read so far: `pieces[index]` of `total`."""

    total: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    cost: int = 0
    """Bytes counted against the store's bound (`_cost` of each piece)."""


def _cost(data: bytes) -> int:
    return max(len(data), MIN_CHUNK_COST)


class PendingChunks:
    """Blob id -> `Pending`, oldest first, within `max_bytes` and `max_blobs` (module doc)."""

    def __init__(self, max_bytes: int, max_blobs: int = DEFAULT_MAX_BLOBS) -> None:
        self.max_bytes = int(max_bytes)
        self.max_blobs = int(max_blobs)
        self._blobs: dict[str, Pending] = {}
        self._bytes = 0

    def add(self, blob_id: str, index: int, total: int, data: bytes) -> None:
        """Keep chunk `index` of `total` of `blob_id` (a different `total` starts the blob
        over), then forget the oldest blobs while a bound is exceeded."""
        pending = self._blobs.get(blob_id)
        if pending is None or pending.total != total:
            if pending is not None:
                self._bytes -= pending.cost
            pending = self._blobs[blob_id] = Pending(total)
        old = pending.pieces.get(index)
        if old is not None:
            pending.cost -= _cost(old)
            self._bytes -= _cost(old)
        pending.pieces[index] = data
        pending.cost += _cost(data)
        self._bytes += _cost(data)
        while self._blobs and (self._bytes > self.max_bytes or len(self._blobs) > self.max_blobs):
            self._bytes -= self._blobs.pop(next(iter(self._blobs))).cost

    def pop(self, blob_id: str) -> Pending | None:
        """Take a blob's chunks out of the store (None when none were kept)."""
        pending = self._blobs.pop(blob_id, None)
        if pending is not None:
            self._bytes -= pending.cost
        return pending

    def clear(self) -> None:
        """Forget every blob."""
        self._blobs.clear()
        self._bytes = 0

    def items(self) -> Iterator[tuple[str, Pending]]:
        """(blob id, its chunks), oldest first."""
        return iter(list(self._blobs.items()))

    @property
    def nbytes(self) -> int:
        """Bytes counted against `max_bytes` now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._blobs)

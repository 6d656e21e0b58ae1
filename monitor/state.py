"""Checkpoint store: one file per daemon, written atomically.

A checkpoint holds everything needed to resume counting exactly once: the per-partition
next offsets, and per model its arrays (window ring, bucket ids, reference counts, warm-up
buffers...) plus JSON metadata (reference profile, fingerprints). It is a NumPy `.npz`
archive (no pickles) written to `<dir>/checkpoint.npz.tmp`, fsynced, then renamed over
`<dir>/checkpoint.npz`, so a crash leaves either the old or the new checkpoint, never a
torn one. A checkpoint that cannot be read, or whose format version or fingerprint does
not match the running configuration, is reported as a StateError and moved aside to
`checkpoint.npz.rejected-<UTC time>` so it is neither mixed in nor retried forever.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.errors import StateError

FORMAT_VERSION = 1
FILE_NAME = "checkpoint.npz"

ArrayMap = dict[str, npt.NDArray[Any]]


@dataclass(slots=True)
class ModelState:
    """One model's checkpointed state: arrays plus JSON-able metadata."""

    fingerprint: str
    arrays: ArrayMap = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Checkpoint:
    """Offsets (next offset to read per (topic, partition)) and every model's state."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    models: dict[str, ModelState] = field(default_factory=dict)
    created_at: float = 0.0


class CheckpointStore:
    """Reads and writes the checkpoint file in a state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME

    def save(self, checkpoint: Checkpoint) -> int:
        """Write atomically (temp file, fsync, rename, fsync dir); returns the bytes written.

        OSError (e.g. ENOSPC) leaves the previous checkpoint as it was and removes the
        partial temp file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        header = {
            "format_version": FORMAT_VERSION,
            "created_at": checkpoint.created_at or time.time(),
            "offsets": [[t, p, o] for (t, p), o in sorted(checkpoint.offsets.items())],
            "models": {
                name: {
                    "fingerprint": state.fingerprint,
                    "meta": state.meta,
                    "arrays": sorted(state.arrays),
                }
                for name, state in checkpoint.models.items()
            },
        }
        arrays: dict[str, npt.NDArray[Any]] = {"__header__": np.asarray(json.dumps(header))}
        for name, state in checkpoint.models.items():
            for key, value in state.arrays.items():
                arrays[f"{_key(name)}/{key}"] = np.asarray(value)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        data = buffer.getvalue()
        tmp = self.path.with_suffix(".npz.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            # A full disk: the partial file would hold what space is left (the logs need it)
            # until the next attempt; the last good checkpoint is untouched either way.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.replace(tmp, self.path)
        _fsync_dir(self.directory)
        return len(data)

    def load(self) -> Checkpoint | None:
        """The stored checkpoint, None if there is none; StateError if it cannot be read."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                header = json.loads(str(archive["__header__"]))
                if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
                    raise StateError(
                        f"checkpoint {self.path} has format version "
                        f"{header.get('format_version') if isinstance(header, dict) else '?'}, "
                        f"this driftmon reads version {FORMAT_VERSION}"
                    )
                offsets = {(str(t), int(p)): int(o) for t, p, o in header["offsets"]}
                models: dict[str, ModelState] = {}
                for name, info in header["models"].items():
                    arrays = {key: archive[f"{_key(name)}/{key}"] for key in info["arrays"]}
                    models[name] = ModelState(str(info["fingerprint"]), arrays, dict(info["meta"]))
                return Checkpoint(offsets, models, float(header["created_at"]))
        except StateError:
            raise
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
            raise StateError(f"checkpoint {self.path} is unreadable: {exc}") from exc

    def set_aside(self, reason: str) -> Path | None:
        """Move an unusable checkpoint out of the way (keeps it for inspection).

        OSError when it cannot be moved (e.g. a read-only state directory); the reason file
        next to it is best effort.
        """
        if not self.path.exists():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{FILE_NAME}.rejected-{stamp}")
        os.replace(self.path, target)
        try:
            note = target.with_name(target.name + ".reason.txt")
            note.write_text(reason + "\n", encoding="utf-8")
        except OSError:
            pass
        return target


def _key(model: str) -> str:
    return "m:" + model.replace("/", "_")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Reference profile files on disk: watch a `file` reference, persist a warm-up profile.

The daemon's only filesystem contact besides the checkpoint store. A `ReferenceFile` is read
again only when its modification time changes; a file larger than `max_bytes` is refused
unread. Profiles are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from monitor.errors import ReferenceDataError
from monitor.reference import MAX_PROFILE_BYTES, ReferenceProfile, profile_to_json

__all__ = ["MAX_PROFILE_BYTES", "ReferenceFile", "ReferenceFileError", "persist_profile"]


class ReferenceFileError(ReferenceDataError):
    """The reference file cannot be stat'ed or read (missing, no permission)."""


class ReferenceFile:
    """One profile file, watched by modification time."""

    def __init__(self, path: Path, max_bytes: int = MAX_PROFILE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._mtime: float | None = None

    def changed(self) -> bytes | None:
        """The file's bytes if it changed since the last call (always on the first), else None.

        Raises ReferenceDataError when the file cannot be read, is not a regular file (a FIFO
        blocked the reader for good, /dev/zero grew it without bound) or is larger than
        `max_bytes` (a changed file that is refused is not offered again until it changes
        once more).
        """
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise ReferenceFileError(f"cannot read reference {self.path}: {exc.strerror}") from exc
        if self._mtime is not None and info.st_mtime == self._mtime:
            return None
        self._mtime = info.st_mtime
        if not stat.S_ISREG(info.st_mode):
            raise ReferenceFileError(f"reference {self.path} refused: not a regular file")
        if info.st_size > self.max_bytes:
            raise self._too_large(info.st_size)
        try:
            data = _read_at_most(self.path, self.max_bytes + 1)
        except OSError as exc:
            raise ReferenceFileError(f"cannot read reference {self.path}: {exc.strerror}") from exc
        if len(data) > self.max_bytes:  # it grew since the stat
            raise self._too_large(len(data))
        return data

    def _too_large(self, size: int) -> ReferenceDataError:
        return ReferenceDataError(
            f"reference {self.path} refused: {size} bytes, more than the "
            f"{self.max_bytes} a profile may have"
        )


def _read_at_most(path: Path, limit: int) -> bytes:
    """The first `limit` bytes of the regular file at `path` (opened without blocking, and
    refused if it is not a regular file by then: it may have been replaced since a stat)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return file.read(limit)


def persist_profile(directory: Path, model: str, profile: ReferenceProfile) -> Path:
    """Write `profile` to `<directory>/<model>.json` atomically; OSError when it cannot."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{model}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(profile_to_json(profile), encoding="utf-8")
    os.replace(tmp, target)
    return target

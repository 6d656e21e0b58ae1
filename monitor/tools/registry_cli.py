"""`driftmon reference push | list | show | activate | rollback`: operate the registry topic.

Each command reads the registry to its end into a `RegistryTable`, checks the request
against it, and appends the records that carry it out (see docs/registry.md). Kafka
connection and security settings come from the `kafka:` section of `--config`, the topic
from `references.topic`. Who may run the writing commands is decided by Kafka's ACLs on that
topic (docs/security.md).

Exit codes: 0 done; 1 the registry cannot be reached or written, or the file is not a
valid profile; 2 a bad request (unknown id, a model the profile is not for, nothing to roll
back to).
"""

from __future__ import annotations

import getpass
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from monitor.config import Settings
from monitor.errors import SourceError
from monitor.reference import profile_from_json
from monitor.reference_files import ReferenceFile
from monitor.registry import (
    ActivationRecord,
    RegisteredProfile,
    RegistryTable,
    activate,
    encode_activation,
    encode_prewarm,
    encode_profile,
    prewarm,
    rollback,
)
from monitor.registry_log import RegistryLog

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class RequestError(Exception):
    """The request cannot be carried out as asked (exit 2)."""


def operator_name() -> str:
    """`user@host` of whoever runs the command, recorded in activations."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class RegistryCommands:
    """The registry commands over one `RegistryLog`; output goes to `out`."""

    def __init__(
        self,
        log: RegistryLog,
        *,
        chunk_bytes: int,
        out: TextIO = sys.stdout,
        clock: Callable[[], float] = time.time,
        who: str | None = None,
    ) -> None:
        self.log = log
        self.chunk_bytes = chunk_bytes
        self.out = out
        self.clock = clock
        self.who = who or operator_name()

    @classmethod
    def from_settings(cls, settings: Settings, out: TextIO = sys.stdout) -> RegistryCommands:
        """Commands on the registry named by `settings` (kafka + references sections)."""
        log = RegistryLog(
            settings.kafka.client_kwargs(),
            settings.references.topic,
            timeout_s=settings.references.timeout,
        )
        return cls(log, chunk_bytes=settings.references.chunk_bytes, out=out)

    def _table(self) -> RegistryTable:
        self.log.ensure_topic()
        table = RegistryTable()
        self.log.read_to_end(table)
        return table

    def _activate(
        self, table: RegistryTable, record: ActivationRecord, previous: str | None
    ) -> None:
        self.log.publish([encode_activation(record)])
        before = previous or "nothing"
        self.out.write(
            f"model {record.model}: {record.reference_id} active (was {before}; "
            f"cause {record.cause})\n"
        )

    # -- commands --------------------------------------------------------------------

    def push(self, path: Path, *, activate_it: bool, reason: str, prewarm_it: bool = False) -> None:
        """Register the profile in `path` (once per content); optionally pre-warm it (the
        daemons count a shadow window in its bins) and/or activate it."""
        data = ReferenceFile(path).changed()  # refused unread beyond MAX_PROFILE_BYTES
        assert data is not None  # a first read always returns the bytes
        profile = profile_from_json(data)
        if not profile.model:
            raise RequestError(f"{path} records no model; refit it with --model")
        table = self._table()
        if profile.reference_id in table.profiles:
            self.out.write(f"{profile.reference_id} is already registered\n")
        else:
            records = encode_profile(
                profile, pushed_at=self.clock(), pushed_by=self.who, chunk_bytes=self.chunk_bytes
            )
            self.log.publish(records)
            self.log.read_to_end(table)
            if profile.reference_id not in table.profiles:
                raise SourceError(f"{profile.reference_id} was written but did not register")
            self.out.write(
                f"registered {profile.reference_id} for model {profile.model} "
                f"({len(profile.features)} features, {len(records) - 1} chunk(s))\n"
            )
        if prewarm_it:
            active = table.activations.get(profile.model)
            if active is not None and active.reference_id == profile.reference_id:
                self.out.write(f"{profile.reference_id} is active: nothing to pre-warm\n")
            else:
                record = prewarm(
                    table, profile.model, profile.reference_id, at=self.clock(), by=self.who
                )
                self.log.publish([encode_prewarm(record)])
                self.out.write(
                    f"model {profile.model}: pre-warming {', '.join(record.reference_ids)}\n"
                )
        if activate_it:
            self.activate(profile.model, profile.reference_id, reason=reason, table=table)

    def activate(
        self, model: str, query: str, *, reason: str, table: RegistryTable | None = None
    ) -> None:
        """Make the registered profile matching `query` the active reference of `model`."""
        table = table or self._table()
        try:
            registered = table.find(query)
        except KeyError as exc:
            raise RequestError(str(exc.args[0])) from exc
        if registered.profile.model != model:
            raise RequestError(
                f"reference {registered.profile.reference_id} was fitted for model "
                f"{registered.profile.model!r}, not {model!r}"
            )
        current = table.activations.get(model)
        if current is not None and current.reference_id == registered.profile.reference_id:
            self.out.write(f"model {model}: {current.reference_id} is already active\n")
            return
        record = activate(
            table,
            model,
            registered.profile.reference_id,
            at=self.clock(),
            by=self.who,
            reason=reason,
        )
        self._activate(table, record, None if current is None else current.reference_id)

    def rollback(self, model: str, *, reason: str) -> None:
        """Return `model` to the reference active before the current one."""
        table = self._table()
        try:
            record = rollback(table, model, at=self.clock(), by=self.who, reason=reason)
        except KeyError as exc:
            raise RequestError(str(exc.args[0])) from exc
        self._activate(table, record, table.activations[model].reference_id)

    def list_profiles(self, model: str | None) -> None:
        """A table of registered profiles, oldest push first, with the active one marked."""
        table = self._table()
        rows: list[tuple[str, ...]] = [
            ("ID", "MODEL", "VERSION", "FEATURES", "CREATED", "ACTIVE", "ACTIVATED BY", "WHEN")
        ]
        for registered in table.for_model(model):
            rows.append(self._row(table, registered))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            self.out.write("\n")
        if len(rows) == 1:
            self.out.write("(no registered reference)\n")

    @staticmethod
    def _row(table: RegistryTable, registered: RegisteredProfile) -> tuple[str, ...]:
        profile, manifest = registered.profile, registered.manifest
        activation = table.activations.get(profile.model)
        active = activation is not None and activation.reference_id == profile.reference_id
        by = when = ""
        if active and activation is not None:
            by, when = activation.by, _when(activation.at)
        return (
            profile.reference_id,
            profile.model,
            profile.model_version or "-",
            str(len(profile.features)),
            profile.created_at or _when(manifest.pushed_at),
            "yes" if active else "",
            by,
            when,
        )

    def show(self, query: str) -> None:
        """One profile: its metadata, its features and the model's activation history."""
        table = self._table()
        try:
            registered = table.find(query)
        except KeyError as exc:
            raise RequestError(str(exc.args[0])) from exc
        profile, manifest = registered.profile, registered.manifest
        lines = [
            f"reference_id   {profile.reference_id}",
            f"model          {profile.model}",
            f"model_version  {profile.model_version or '-'}",
            f"created        {profile.created_at or '-'}",
            f"source         {profile.source or '-'}",
            f"events         {profile.events}",
            f"pushed         {_when(manifest.pushed_at)} by {manifest.pushed_by}",
            f"stored         {manifest.chunks} chunk(s), {manifest.size} bytes compressed",
            f"features       {len(profile.features)}: "
            + ", ".join(f"{f.name} ({f.kind.value})" for f in profile.features[:20])
            + (" ..." if len(profile.features) > 20 else ""),
        ]
        activation = table.activations.get(profile.model)
        if activation is not None:
            lines.append(f"activations of model {profile.model} (newest first):")
            for entry in [activation.entry, *activation.log]:
                marker = "*" if entry.reference_id == profile.reference_id else " "
                lines.append(
                    f"  {marker} {_when(entry.at)}  {entry.reference_id}  {entry.cause:<13} "
                    f"{entry.by}  {entry.reason}".rstrip()
                )
        self.out.write("\n".join(lines) + "\n")

    def close(self) -> None:
        """Release the registry reader."""
        self.log.close()

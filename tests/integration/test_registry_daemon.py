"""`reference.mode: registry` with real daemons and the real broker (docs/registry.md).

Two `driftmon run` processes follow one registry topic; the `driftmon reference` commands
push, activate and roll back; bad records are written straight to the topic.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import ReferenceProfile, fit_profile, profile_to_json
from monitor.registry import (
    ActivationRecord,
    ChunkRecord,
    ProfileManifest,
    RegistryTable,
    encode_activation,
    encode_profile,
)
from monitor.registry_log import RegistryLog
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    Metrics,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)
from tests.support.waiting import wait_until

INTERVAL_S = 1.0
FEATURES = [("f0000", "numeric"), ("country", "categorical")]
REFERENCE_INFO = "driftmon_reference_info"
ACTIVATIONS = "driftmon_reference_activations_total"
REJECTED = "driftmon_registry_records_rejected_total"


def _profile(
    model: str, shift: float, *, version: str = "", n_numeric: int = 1, seed: int = 11
) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    specs = [FeatureSpec(f"f{i:04d}", FeatureKind.NUMERIC) for i in range(n_numeric)]
    specs.append(FeatureSpec("country", FeatureKind.CATEGORICAL))
    numeric = {s.name: rng.normal(shift, 1.0, 1_000) for s in specs[:-1]}
    categorical = {"country": list(rng.choice(["GB", "DE", "FR", "US"], 1_000))}
    return fit_profile(model, specs, numeric, categorical, model_version=version)


def _write(tmp_path: Path, name: str, profile: ReferenceProfile) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def _config(
    tmp_path: Path,
    name: str,
    bootstrap: str,
    events: str,
    registry: str,
    models: Sequence[dict[str, Any]] | None = None,
) -> Path:
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[events],
        models=models or [model_entry("fraud", FEATURES, {"mode": "registry"})],
        state_dir=tmp_path / name / "state",
        evaluation={"interval": f"{INTERVAL_S}s", "min_samples": 100},
    )
    config["references"] = {"topic": registry, "timeout": "10s"}
    return write_config(tmp_path / name / "driftmon.yaml", config)


def _cli(config: Path, *args: str) -> str:
    done = run_cli("reference", *args, "-c", str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _reference(metrics: Metrics, model: str = "fraud") -> str | None:
    found = metrics.find(REFERENCE_INFO, model=model)
    assert len(found) <= 1, f"more than one reference_info series: {found}"
    return found[0][0]["reference_id"] if found else None


def _events(n: int, *, version: str, shift: float = 0.0, seed: int = 3) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    now = time.time()
    for i in range(n):
        yield json.dumps(
            {
                "ts": now - 5 + i * 1e-3,
                "model": "fraud",
                "model_version": version,
                "features": {
                    "f0000": float(rng.normal(shift, 1.0)),
                    "country": str(rng.choice(["GB", "DE", "FR", "US"])),
                },
            }
        ).encode()


def _evaluated_reference(line: dict[str, Any], model: str = "fraud") -> str:
    return str(line["models"][model]["reference"])


def _wait_in_use(daemons: Sequence[DaemonProcess], reference_id: str, timeout: float) -> float:
    """Wait until every daemon exports `reference_id` (scrapes every 50 ms); the wall time."""
    pending = list(daemons)

    def check() -> bool:
        pending[:] = [d for d in pending if _reference(d.metrics()) != reference_id]
        return not pending

    wait_until(check, timeout, interval=0.05, message=f"{reference_id} in use everywhere")
    return time.time()


def _activated_at(bootstrap: str, registry: str, model: str = "fraud") -> float:
    """When the model's current activation was written (its `at`, the operator's clock)."""
    log = RegistryLog({"bootstrap_servers": bootstrap}, registry)
    try:
        table = RegistryTable()
        log.read_to_end(table)
    finally:
        log.close()
    return table.activations[model].at


def _evaluations_until(daemon: DaemonProcess, before: int, reference_id: str) -> int:
    """How many evaluations after the first `before` (counted when the command returned) ran
    until one used `reference_id` (0: one before it returned did; 1: the first after)."""
    lines = daemon.evaluations()
    if before and _evaluated_reference(lines[before - 1]) == reference_id:
        return 0  # already in use when the command returned
    for i, line in enumerate(lines[before:], start=1):
        if _evaluated_reference(line) == reference_id:
            return i
    raise AssertionError(f"no evaluation used {reference_id}:\n{daemon.tail()}")


@pytest.fixture
def topics(broker: TansuBroker) -> tuple[str, str]:
    """A fresh events topic and a fresh registry topic name."""
    events = f"events-{uuid.uuid4().hex[:10]}"
    broker.create_topic(events, partitions=1)
    return events, f"refs-{uuid.uuid4().hex[:10]}"


def test_two_daemons_follow_push_activate_and_rollback_and_a_restart_comes_up_rolled_back(
    broker: TansuBroker, tmp_path: Path, topics: tuple[str, str]
) -> None:
    """push --activate reaches both daemons within two evaluations; rollback returns both;
    list shows the history; a daemon down during a rollback restarts on the rolled-back one."""
    events, registry = topics
    configs = [_config(tmp_path, n, broker.bootstrap, events, registry) for n in ("a", "b")]
    first, second = _profile("fraud", 0.0, version="v1"), _profile("fraud", 1.0, version="v2")
    _cli(configs[0], "push", str(_write(tmp_path, "v1", first)), "--activate", "--reason", "v1")
    with ExitStack() as stack:
        daemons = [
            stack.enter_context(DaemonProcess(c, tmp_path / f"run-{i}"))
            for i, c in enumerate(configs)
        ]
        for daemon in daemons:
            daemon.start()
        produce(broker.bootstrap, events, _events(400, version="v1"))
        for daemon in daemons:
            daemon.wait_ready(60)
        assert _wait_in_use(daemons, first.reference_id, 30) >= 0
        for daemon in daemons:
            assert daemon.metrics().value(ACTIVATIONS, model="fraud", cause="operator") == 1

        _cli(configs[1], "push", str(_write(tmp_path, "v2", second)), "--activate")
        before = [len(d.evaluations()) for d in daemons]
        forward = _wait_in_use(daemons, second.reference_id, 30)
        forward -= _activated_at(broker.bootstrap, registry)
        for daemon, n in zip(daemons, before, strict=True):
            assert _evaluations_until(daemon, n, second.reference_id) <= 2
            assert daemon.metrics().value(ACTIVATIONS, model="fraud", cause="operator") == 2

        _cli(configs[0], "rollback", "--model", "fraud", "--reason", "v2 reverted")
        before = [len(d.evaluations()) for d in daemons]
        back = _wait_in_use(daemons, first.reference_id, 30)
        back -= _activated_at(broker.bootstrap, registry)
        for daemon, n in zip(daemons, before, strict=True):
            assert _evaluations_until(daemon, n, first.reference_id) <= 2
            assert daemon.metrics().value(ACTIVATIONS, model="fraud", cause="rollback") == 1
        # from the activation record's time to /metrics of both daemons showing it
        print(f"propagation: push --activate {forward:.2f} s, rollback {back:.2f} s")
        assert 0 < forward < 30 and 0 < back < 30

        listing = _cli(configs[0], "list", "--model", "fraud").splitlines()
        assert [line.split()[0] for line in listing[1:]] == [
            first.reference_id,
            second.reference_id,
        ]
        assert "yes" in listing[1] and "yes" not in listing[2]

        _cli(configs[0], "activate", "--model", "fraud", second.reference_id)
        _wait_in_use(daemons, second.reference_id, 30)
        assert daemons[0].stop() == 0
        _cli(configs[1], "rollback", "--model", "fraud")
        _wait_in_use(daemons[1:], first.reference_id, 30)
        daemons[0].start()
        daemons[0].wait_ready(60)
        restarted = daemons[0].metrics()
        assert _reference(restarted) == first.reference_id
        assert restarted.value(ACTIVATIONS, model="fraud", cause="rollback") == 1
        status = daemons[0].status()
        view = status["models"][0]["reference_view"]
        assert view["registry_active"] == first.reference_id
        assert view["activations"][0]["cause"] == "rollback"
        assert view["note"].startswith("no shadow window")
        for daemon in daemons:
            assert daemon.live()


def _tampered(profile: ReferenceProfile) -> list[tuple[bytes, bytes]]:
    records = encode_profile(profile, pushed_at=time.time(), pushed_by="t", chunk_bytes=1024)
    chunk = msgspec.msgpack.decode(records[0][1], type=ChunkRecord)
    chunk.data = chunk.data[:-1] + bytes([chunk.data[-1] ^ 0xFF])
    records[0] = (records[0][0], msgspec.msgpack.encode(chunk))
    return records


def test_bad_registry_records_are_counted_and_change_nothing_and_a_wide_profile_loads(
    broker: TansuBroker, tmp_path: Path, topics: tuple[str, str]
) -> None:
    """Garbage, an unknown version, a hash mismatch, a missing chunk and an unknown id are
    refused and counted per reason; a 2,200-feature profile loads through chunks, a tampered
    one does not, and the daemon keeps its reference and stays up."""
    events, registry = topics
    config = _config(tmp_path, "a", broker.bootstrap, events, registry)
    wide = _profile("fraud", 0.5, version="wide", n_numeric=2_199)
    _cli(config, "push", str(_write(tmp_path, "wide", wide)), "--activate")
    other = _profile("fraud", 3.0, version="other", n_numeric=2_199, seed=5)
    log = RegistryLog({"bootstrap_servers": broker.bootstrap}, registry)
    with DaemonProcess(config, tmp_path / "run") as daemon:
        daemon.start()
        produce(broker.bootstrap, events, _events(300, version="v1"))
        daemon.wait_ready(60)
        _wait_in_use([daemon], wide.reference_id, 30)
        missing = encode_profile(_profile("fraud", 2.0, seed=7), pushed_at=1.0, pushed_by="t")
        manifest = msgspec.msgpack.decode(missing[-1][1], type=ProfileManifest)
        unknown = ActivationRecord(
            v=1,
            model="fraud",
            reference_id="sha256:" + "0" * 64,
            at=1.0,
            by="t",
            reason="",
            cause="operator",
        )
        future = msgspec.msgpack.encode({"v": 99, "kind": "activation", "model": "fraud"})
        try:
            log.publish(
                [
                    (b"junk", b"\x00\xffgarbage"),
                    (b"future", future),
                    *_tampered(other),
                    missing[-1],  # the manifest without its chunks
                    encode_activation(unknown),
                ]
            )
        finally:
            log.close()
        expected = {
            "undecodable": 1,
            "unknown_version": 1,
            "hash_mismatch": 1,
            "missing_chunk": 1,
            "unknown_reference": 1,
        }

        def counted() -> Metrics | None:
            scraped = daemon.metrics()
            seen = {r: scraped.value(REJECTED, reason=r) for r in expected}
            return scraped if seen == expected else None

        scraped = wait_until(counted, 30, message="every refusal counted", on_timeout=daemon.tail)
        assert scraped is not None
        assert _reference(scraped) == wide.reference_id
        assert manifest.reference_id not in scraped.text
        daemon.wait_evaluations(2)
        assert daemon.ready() and daemon.live(), daemon.get("/readyz")
        refused = [
            line for line in daemon.log_lines() if line["event"] == "registry record refused"
        ]
        assert {line["reason"] for line in refused} == set(expected)


def _accepted(daemon: DaemonProcess, model: str, n: int) -> None:
    daemon.wait_metric("driftmon_events_accepted_total", float(n), 60, model=model)


def _model_status(daemon: DaemonProcess, model: str = "fraud") -> dict[str, Any]:
    return next(m for m in daemon.status()["models"] if m["model"] == model)


def test_a_prewarmed_profile_is_activated_with_a_full_window(
    broker: TansuBroker, tmp_path: Path, topics: tuple[str, str]
) -> None:
    """push --prewarm gets a shadow window; after activation the first evaluation has
    statistics for every feature over every event the shadow counted."""
    events, registry = topics
    config = _config(tmp_path, "a", broker.bootstrap, events, registry)
    old, new = _profile("fraud", 0.0, version="v1"), _profile("fraud", 1.0, version="v2")
    _cli(config, "push", str(_write(tmp_path, "v1", old)), "--activate")
    with DaemonProcess(config, tmp_path / "run") as daemon:
        daemon.start()
        produce(broker.bootstrap, events, _events(200, version="v1"))
        daemon.wait_ready(60)
        new_file = _write(tmp_path, "v2", new)
        assert "pre-warming" in _cli(config, "push", str(new_file), "--prewarm")

        def shadowed() -> bool:
            view = _model_status(daemon)["reference_view"]
            return [s["reference_id"] for s in view["shadows"]] == [new.reference_id]

        wait_until(shadowed, 30, message="a shadow window for v2", on_timeout=daemon.tail)
        produce(broker.bootstrap, events, _events(600, version="v2", shift=1.0, seed=4))
        _accepted(daemon, "fraud", 800)
        daemon.wait_evaluations(1)
        shadow = _model_status(daemon)["reference_view"]["shadows"][0]
        assert shadow["events"] == 600 and shadow["reason"] == "prewarm"

        _cli(config, "activate", "--model", "fraud", new.reference_id)
        _wait_in_use([daemon], new.reference_id, 30)
        first = next(
            line for line in daemon.evaluations() if _evaluated_reference(line) == new.reference_id
        )
        assert first["models"]["fraud"]["current_samples"] == 600
        model = _model_status(daemon)
        assert model["reference_id"] == new.reference_id
        for feature in model["features"]:
            assert feature["current_samples"] == 600, feature
            assert feature["evaluated"] and feature["reference_ready"], feature
        numeric, categorical = model["features"]
        assert numeric["ks_statistic"] is not None and categorical["chi2_pvalue"] is not None
        view = model["reference_view"]
        assert view["activations"][0]["gapless"] is True and view["shadows"] == []
        assert view["note"].startswith("no shadow window")


def test_following_model_versions_switches_and_returns_and_leaves_other_models(
    broker: TansuBroker, tmp_path: Path, topics: tuple[str, str]
) -> None:
    """A stream moving from v1 to v2 moves the model to v2's profile once v2 carries half of
    the window, and back when v1 does again; a second model is not touched."""
    events, registry = topics
    models = [
        model_entry("fraud", FEATURES, {"mode": "registry", "follow_model_version": True}),
        model_entry("churn", FEATURES, {"mode": "registry"}),
    ]
    config = _config(tmp_path, "a", broker.bootstrap, events, registry, models)
    v1, v2 = _profile("fraud", 0.0, version="v1"), _profile("fraud", 1.0, version="v2")
    churn = _profile("churn", 0.0, version="v2", seed=9)
    _cli(config, "push", str(_write(tmp_path, "v1", v1)), "--activate")
    _cli(config, "push", str(_write(tmp_path, "v2", v2)))
    _cli(config, "push", str(_write(tmp_path, "churn", churn)), "--activate")
    with DaemonProcess(config, tmp_path / "run") as daemon:
        daemon.start()
        produce(broker.bootstrap, events, _events(600, version="v1"))
        daemon.wait_ready(60)
        _accepted(daemon, "fraud", 600)
        daemon.wait_evaluations(2)
        assert _reference(daemon.metrics()) == v1.reference_id

        produce(broker.bootstrap, events, _events(400, version="v2", shift=1.0, seed=4))
        _accepted(daemon, "fraud", 1000)
        daemon.wait_evaluations(2)
        assert _reference(daemon.metrics()) == v1.reference_id, "v2 holds 40 %: no switch"
        view = _model_status(daemon)["reference_view"]
        assert [s["reference_id"] for s in view["shadows"]] == [v2.reference_id]

        produce(broker.bootstrap, events, _events(400, version="v2", shift=1.0, seed=5))
        _wait_in_use([daemon], v2.reference_id, 30)
        scraped = daemon.metrics()
        assert scraped.value(ACTIVATIONS, model="fraud", cause="model_version") == 1
        view = _model_status(daemon)["reference_view"]
        assert view["activations"][0]["gapless"] is True
        assert _model_status(daemon)["features"][0]["current_samples"] == 800

        produce(broker.bootstrap, events, _events(1_200, version="v1", seed=6))
        _wait_in_use([daemon], v1.reference_id, 30)
        scraped = daemon.metrics()
        assert scraped.value(ACTIVATIONS, model="fraud", cause="model_version") == 2
        assert _reference(scraped, "churn") == churn.reference_id
        assert scraped.value(ACTIVATIONS, model="churn", cause="model_version") == 0
        assert scraped.value(ACTIVATIONS, model="churn", cause="operator") == 1

"""monitor.reference_files and the runtime's reload outcomes: mtime watch, size cap, persist."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import ReferenceDataError
from monitor.model import FeatureKind, FeatureSpec, ModelPlan, ReferenceMode, ReferencePlan
from monitor.reference import fit_profile, profile_from_json, profile_to_json
from monitor.reference_files import ReferenceFile, ReferenceFileError, persist_profile
from monitor.runtime import ModelRuntime

SPECS = (FeatureSpec("x", FeatureKind.NUMERIC),)


def _profile_json(shift: float) -> str:
    rng = np.random.default_rng(3)
    return profile_to_json(fit_profile("m", SPECS, {"x": rng.normal(shift, 1, 500)}, {}))


def _touch(path: Path, text: str, mtime: float) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_changed_offers_a_file_once_per_modification(tmp_path: Path) -> None:
    """First call and each new mtime return the bytes; an unchanged file returns None."""
    path = tmp_path / "ref.json"
    _touch(path, "one", 1_000.0)
    watched = ReferenceFile(path)
    assert watched.changed() == b"one"
    assert watched.changed() is None
    _touch(path, "two", 2_000.0)
    assert watched.changed() == b"two"


def test_missing_and_oversized_files_are_refused_unread(tmp_path: Path) -> None:
    """A missing file is unreadable; one over max_bytes is refused naming its size."""
    with pytest.raises(ReferenceFileError, match="cannot read reference"):
        ReferenceFile(tmp_path / "absent.json").changed()
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 2_000)
    with pytest.raises(ReferenceDataError, match="2000 bytes, more than the 1000"):
        ReferenceFile(big, max_bytes=1_000).changed()


def test_a_fifo_or_a_device_is_refused_without_blocking_or_reading(tmp_path: Path) -> None:
    """A FIFO (its read blocked the daemon's loop for good) and /dev/zero (stat size 0, an
    unbounded read) are refused as not regular files; a symlink to a profile is followed."""
    fifo = tmp_path / "ref.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReferenceFileError, match="not a regular file"):
        ReferenceFile(fifo).changed()
    with pytest.raises(ReferenceFileError, match="not a regular file"):
        ReferenceFile(Path("/dev/zero"), max_bytes=1_000).changed()
    (tmp_path / "real.json").write_text("one")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert ReferenceFile(tmp_path / "link.json").changed() == b"one"


def test_persist_profile_writes_a_loadable_profile_atomically(tmp_path: Path) -> None:
    """The persisted file parses back to the same profile and no temporary file is left."""
    text = _profile_json(0.0)
    target = persist_profile(tmp_path / "references", "m", profile_from_json(text))
    assert target == tmp_path / "references" / "m.json"
    assert (
        profile_from_json(target.read_bytes()).reference_id == profile_from_json(text).reference_id
    )
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]


def test_reload_outcomes_are_returned_not_collected(tmp_path: Path) -> None:
    """Load, no change, a refused file (old reference kept), then a valid swap."""
    path = tmp_path / "ref.json"
    _touch(path, _profile_json(0.0), 1_000.0)
    plan = ModelPlan("m", SPECS, ReferencePlan(ReferenceMode.FILE, path))
    runtime = ModelRuntime(plan, clock=lambda: 0.0, state_dir=tmp_path / "state")
    first = runtime.load_reference_file()
    assert first is not None and first.activated and first.detail == runtime.reference_id
    assert runtime.load_reference_file() is None
    active = runtime.reference_id
    _touch(path, "{not json", 2_000.0)
    refused = runtime.load_reference_file()
    assert refused is not None and not refused.activated and "refused" in refused.detail
    assert runtime.reference_id == active
    _touch(path, _profile_json(1.0), 3_000.0)
    swapped = runtime.load_reference_file()
    assert swapped is not None and swapped.activated and runtime.reference_id != active


def test_a_runtime_without_a_usable_file_raises_until_one_arrives(tmp_path: Path) -> None:
    """No active reference: an unreadable or invalid file raises, so the daemon says why."""
    path = tmp_path / "ref.json"
    plan = ModelPlan("m", SPECS, ReferencePlan(ReferenceMode.FILE, path))
    runtime = ModelRuntime(plan, clock=lambda: 0.0, state_dir=tmp_path / "state")
    with pytest.raises(ReferenceFileError):
        runtime.load_reference_file()
    _touch(path, "[]", 1_000.0)
    with pytest.raises(ReferenceDataError, match=r"ref\.json refused"):
        runtime.load_reference_file()
    assert not runtime.ready

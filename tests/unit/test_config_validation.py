"""Config values that used to pass check-config and then kill `driftmon run`: names the
decoder cannot match, impossible hosts, rolling references not made of whole hours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_settings
from monitor.errors import ConfigError
from tests.support.daemon_harness import run_cli

Config = dict[str, Any]


def _base() -> Config:
    return {
        "kafka": {"bootstrap_servers": "localhost:9092", "topics": ["features"]},
        "models": [
            {
                "name": "fraud",
                "reference": {"mode": "rolling", "warmup_events": 500, "lag": "24h"},
                "features": [{"name": "amount", "kind": "numeric"}],
            }
        ],
    }


def _set(path: str, value: object) -> Callable[[Config], None]:
    def mutate(cfg: Config) -> None:
        node: Any = cfg
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        node[keys[-1]] = value

    return mutate


INVALID = [
    ("quote in feature", _set("models.0.features.0.name", 'a"b'), "models.0.features.0.name"),
    ("backslash in feature", _set("models.0.features.0.name", "a\\b"), "features.0.name"),
    ("quote in model_field", _set("event.model_field", 'mo"del'), "event.model_field"),
    ("backslash in ts field", _set("event.timestamp_field", "t\\s"), "event.timestamp_field"),
    ("quote in version field", _set("event.model_version_field", '"'), "model_version_field"),
    ("quote in features_path", _set("event.features_path", 'a."b'), "event.features_path"),
    ("empty part in features_path", _set("event.features_path", "a..b"), "features_path"),
    ("impossible IPv4", _set("http.host", "999.1.1.1"), "http.host"),
    ("space in host", _set("http.host", "my host"), "http.host"),
    ("90m rolling length", _set("models.0.reference.length", "90m"), "reference.length"),
    ("90m rolling lag", _set("models.0.reference.lag", "25h30m"), "reference.lag"),
]


@pytest.mark.parametrize(
    ("mutate", "key"), [(m, k) for _, m, k in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_unusable_value_is_a_config_error_naming_the_key(
    tmp_path: Path, mutate: Callable[[Config], None], key: str
) -> None:
    """The config is refused with a message naming the dotted key."""
    cfg = _base()
    mutate(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert key in str(info.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::", "::1", "localhost", "a-b.example"])
def test_addresses_and_hostnames_are_accepted(tmp_path: Path, host: str) -> None:
    """IPv4, IPv6 and RFC 1123 hostnames stay valid listen hosts."""
    cfg = _base()
    cfg["http"] = {"host": host}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_settings(path, env={}).http.host == host


def test_check_config_exits_2_for_a_quote_in_a_feature_name(tmp_path: Path) -> None:
    """`driftmon check-config` refuses the name with exit 2 and no traceback."""
    cfg = _base()
    cfg["models"][0]["features"][0]["name"] = 'amount"'
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "models.0.features.0.name" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "mutate",
    [_set("models.0.features.0.name", 'a\\"b'), _set("models.0.reference.length", "90m")],
    ids=["quote in feature name", "rolling 90m"],
)
def test_run_refuses_the_config_with_exit_2_instead_of_dying(
    tmp_path: Path, mutate: Callable[[Config], None]
) -> None:
    """`driftmon run` stops at the config (exit 2, the key named), not in the decoder or ingest."""
    cfg = _base()
    mutate(cfg)
    cfg["state"] = {"dir": str(tmp_path / "state")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_cli("run", "--config", str(path), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "models.0." in result.stderr and "Traceback" not in result.stderr

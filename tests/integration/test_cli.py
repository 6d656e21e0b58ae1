"""The `driftmon` command line as a user runs it (acceptance criterion 6), as subprocesses.

- Every invalid configuration of a table gives exit code 2 and a message naming the offending
  key, both from `driftmon check-config` and from `driftmon run` (which must not start).
- `check-config` prints the effective configuration without any secret, from the file or the
  environment, and error messages never echo a secret either.
- `--help` of every (sub)command exits 0 and documents each of its flags.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import build_parser
from tests.support.daemon_harness import run_cli

SECRET = "s3cr3t-Pa55w0rd"


def valid_config() -> dict[str, Any]:
    """A small valid configuration (no broker is contacted by check-config)."""
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["features"]},
        "models": [
            {
                "name": "fraud",
                "reference": {"mode": "warmup", "warmup_events": 1000},
                "features": [
                    {"name": "amount", "kind": "numeric"},
                    {"name": "country", "kind": "categorical"},
                ],
            }
        ],
        "window": {"bucket": "1m", "length": "1h"},
        "http": {"host": "127.0.0.1", "port": 0},
    }


def _set(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `config` with the dotted key set (list indices as numbers)."""
    out = copy.deepcopy(config)
    node: Any = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _drop(config: dict[str, Any], dotted: str) -> dict[str, Any]:
    """A copy of `config` without the dotted key."""
    out = copy.deepcopy(config)
    node: Any = out
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return out


BASE = valid_config()
SASL = _set(BASE, "kafka.security_protocol", "SASL_SSL")
SECOND_MODEL = copy.deepcopy(BASE["models"][0])

# (case id, YAML text of the config file, extra environment, key the message must name)
INVALID: list[tuple[str, str, dict[str, str], str]] = [
    ("no-topics", yaml.safe_dump(_drop(BASE, "kafka.topics")), {}, "kafka.topics"),
    ("empty-topics", yaml.safe_dump(_set(BASE, "kafka.topics", [])), {}, "kafka.topics"),
    ("bad-topic-name", yaml.safe_dump(_set(BASE, "kafka.topics", ["a b"])), {}, "kafka.topics.0"),
    ("no-models", yaml.safe_dump(_set(BASE, "models", [])), {}, "models"),
    (
        "bad-kind",
        yaml.safe_dump(_set(BASE, "models.0.features.0.kind", "numerc")),
        {},
        "models.0.features.0.kind",
    ),
    (
        "psi-bands-reversed",
        yaml.safe_dump(_set(BASE, "models.0.features.0.psi_critical", 0.05)),
        {},
        "models.0.features.0.psi_critical",
    ),
    (
        "threshold-warning-above-critical",
        yaml.safe_dump(
            _set(BASE, "models.0.features.0.thresholds", {"psi": {"warning": 0.4, "critical": 0.3}})
        ),
        {},
        "models.0.features.0.thresholds.psi.warning",
    ),
    (
        "threshold-ratio-above-1",
        yaml.safe_dump(_set(BASE, "models.0.thresholds", {"out_of_range_ratio": {"warning": 5}})),
        {},
        "models.0.thresholds.out_of_range_ratio.warning",
    ),
    (
        "threshold-unknown-signal",
        yaml.safe_dump(_set(BASE, "models.0.features.1.thresholds", {"chi2": {"warning": 0.1}})),
        {},
        "models.0.features.1.thresholds.chi2",
    ),
    (
        "threshold-from-the-environment",
        yaml.safe_dump(BASE),
        {
            "DRIFTMON_MODELS": '[{"name": "m", "features": [{"name": "x", "kind": "numeric", '
            '"thresholds": {"ks": {"decision": -1}}}]}]'
        },
        "models.0.features.0.thresholds.ks.decision",
    ),
    (
        "file-reference-without-path",
        yaml.safe_dump(_set(BASE, "models.0.reference", {"mode": "file"})),
        {},
        "models.0.reference.path",
    ),
    (
        "duplicate-model",
        yaml.safe_dump(_set(BASE, "models", [SECOND_MODEL, SECOND_MODEL])),
        {},
        "models.1.name",
    ),
    ("bad-duration", yaml.safe_dump(_set(BASE, "window.bucket", "1x")), {}, "window.bucket"),
    (
        "length-not-multiple",
        yaml.safe_dump(_set(BASE, "window.bucket", "7s")),
        {},
        "window.length",
    ),
    (
        "negative-interval",
        yaml.safe_dump(_set(BASE, "evaluation.interval", -5)),
        {},
        "evaluation.interval",
    ),
    ("fdr-out-of-range", yaml.safe_dump(_set(BASE, "evaluation.fdr_q", 2)), {}, "evaluation.fdr_q"),
    ("port-out-of-range", yaml.safe_dump(_set(BASE, "http.port", 70000)), {}, "http.port"),
    ("unknown-section", yaml.safe_dump({**BASE, "kafak": {}}), {}, "kafak"),
    (
        "sasl-without-credentials",
        yaml.safe_dump(SASL),
        {},
        "kafka.sasl_mechanism",
    ),
    (
        "heartbeat-not-below-session",
        yaml.safe_dump(_set(BASE, "kafka.heartbeat_interval_ms", 20_000)),
        {},
        "kafka.heartbeat_interval_ms",
    ),
    (
        "missing-tls-file",
        yaml.safe_dump(_set(BASE, "kafka.ssl_cafile", "/nonexistent/ca.pem")),
        {},
        "kafka.ssl_cafile",
    ),
    ("bad-log-level", yaml.safe_dump(_set(BASE, "log.level", "verbose")), {}, "log.level"),
    ("env-override", yaml.safe_dump(BASE), {"DRIFTMON_HTTP__PORT": "not-a-port"}, "http.port"),
    ("top-level-list", "- kafka\n- models\n", {}, "top level"),
    ("yaml-syntax", "kafka: {topics: [features]\nmodels: []\n", {}, "line 2"),
]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config text into tmp_path and return its path."""

    def _write(text: str) -> Path:
        path = tmp_path / "driftmon.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.mark.parametrize(
    ("text", "env", "key"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_invalid_config_exits_2_naming_the_key(
    command: str,
    text: str,
    env: dict[str, str],
    key: str,
    write: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    """check-config and run refuse the config with exit code 2 and name the offending key."""
    path = write(text)
    result = run_cli(
        command, "--config", str(path), env={**env, "DRIFTMON_STATE__DIR": str(tmp_path)}
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert key in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if command == "run":
        assert not (tmp_path / "checkpoint.npz").exists()  # nothing started


def test_missing_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    """A config path that does not exist is a usage error naming the path."""
    missing = tmp_path / "nope.yaml"
    for command in ("check-config", "run"):
        result = run_cli(command, "--config", str(missing))
        assert result.returncode == 2 and str(missing) in result.stderr, result.stderr


def test_check_config_prints_the_effective_config_without_secrets(
    write: Callable[[str], Path],
) -> None:
    """Secrets from the file and from the environment are redacted; overrides are applied."""
    config = _set(SASL, "kafka.sasl_mechanism", "SCRAM-SHA-512")
    config = _set(config, "kafka.sasl_username", "monitor")
    config = _set(config, "kafka.sasl_password", SECRET)
    path = write(yaml.safe_dump(config))
    env = {"DRIFTMON_KAFKA__SSL_PASSWORD": SECRET + "-env", "DRIFTMON_EVALUATION__INTERVAL": "5s"}
    result = run_cli("check-config", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    effective = json.loads(result.stdout)
    assert effective["kafka"]["sasl_password"] == "**********"
    assert effective["kafka"]["ssl_password"] == "**********"
    assert effective["kafka"]["sasl_username"] == "monitor"
    assert effective["evaluation"]["interval"] == 5.0
    assert effective["window"]["length"] == 3600.0  # durations are printed as seconds
    assert effective["models"][0]["features"][1]["top_k"] == 20  # defaults are filled in


def test_check_config_prints_each_features_effective_thresholds(
    write: Callable[[str], Path],
) -> None:
    """A model default, a feature override and the deprecated PSI spelling all resolve."""
    config = _set(BASE, "models.0.thresholds", {"out_of_range_ratio": {"warning": 0.2}})
    config = _set(config, "models.0.features.0.psi_critical", 0.4)
    config = _set(config, "models.0.features.1.thresholds", {"tvd": {"decision": 0.1}})
    result = run_cli("check-config", "--config", str(write(yaml.safe_dump(config))))
    assert result.returncode == 0, result.stderr
    amount, country = json.loads(result.stdout)["models"][0]["features"]
    assert amount["thresholds"]["psi"] == {"warning": 0.1, "critical": 0.4, "decision": 0.02}
    assert amount["thresholds"]["out_of_range_ratio"] == {"warning": 0.2}
    assert country["thresholds"]["tvd"] == {"decision": 0.1}
    assert "out_of_range_ratio" not in country["thresholds"]  # numeric only


@pytest.mark.parametrize(
    "text",
    [
        yaml.safe_dump(_set(BASE, "kafka.sasl_password", {"nested": SECRET})),
        yaml.safe_dump(_set(_set(BASE, "kafka.sasl_password", SECRET), "kafka.port", 1)),
        f"kafka:\n  sasl_password: {SECRET}\n  topics: [features\nmodels: []\n",
    ],
    ids=["secret-of-wrong-type", "secret-next-to-an-error", "secret-on-a-yaml-error-line"],
)
def test_config_errors_never_echo_a_secret(text: str, write: Callable[[str], Path]) -> None:
    """Invalid configs holding a secret report the problem without the secret's value."""
    result = run_cli("check-config", "--config", str(write(text)))
    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "kafka" in result.stderr or "line" in result.stderr


def _subparsers(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command words, parser) pair, the top-level parser included."""
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_subparsers(sub, (*prefix, name)))
    return found


COMMANDS = _subparsers(build_parser())


@pytest.mark.parametrize(
    ("words", "parser"), COMMANDS, ids=[" ".join(w) or "driftmon" for w, _ in COMMANDS]
)
def test_help_of_every_command_exits_0_and_documents_each_flag(
    words: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    """`--help` exits 0 and shows every option with a help text (and the positionals)."""
    result = run_cli(*words, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: driftmon")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name in action.choices:
                assert name in text, name
            continue
        assert action.help, f"{words} {action.option_strings or action.dest} has no help"
        names = action.option_strings or [str(action.metavar or action.dest)]
        for name in names:
            assert str(name) in text, (words, name)


def test_reference_fit_then_check_config_accepts_the_file_reference(tmp_path: Path) -> None:
    """A profile from `reference fit` makes a file-reference config valid for check-config."""
    data = tmp_path / "train.csv"
    data.write_text("amount,country\n" + "".join(f"{i * 0.5},c{i % 3}\n" for i in range(300)))
    out = tmp_path / "refs" / "fraud.json"
    fit = run_cli(
        "reference",
        "fit",
        str(data),
        "--model",
        "fraud",
        "--features",
        "amount:numeric,country:categorical",
        "--no-progress",
        "-o",
        str(out),
    )
    assert fit.returncode == 0, fit.stderr
    assert json.loads(out.read_text())["reference_id"] in fit.stdout
    config = _set(BASE, "models.0.reference", {"mode": "file", "path": str(out)})
    path = tmp_path / "driftmon.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["models"][0]["reference"]["path"] == str(out)

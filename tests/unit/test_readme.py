"""The README documents the public API: every metric, config key, CLI command and flag."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from monitor.cli import build_parser
from monitor.config import Settings
from monitor.errors import RejectReason
from monitor.metrics import CATALOGUE

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys.extend(_config_keys(candidate, prefix + name + "."))
    return keys


@pytest.mark.parametrize("metric", [m.name for m in CATALOGUE])
def test_every_metric_is_documented(metric: str) -> None:
    """Each exported metric name appears in the README's metric table."""
    assert f"`{metric}`" in README


@pytest.mark.parametrize("key", _config_keys(Settings))
def test_every_config_key_is_documented(key: str) -> None:
    """Each configuration key (its last component) appears in the README."""
    leaf = key.rsplit(".", 1)[-1]
    assert re.search(rf"`{re.escape(leaf)}`|\b{re.escape(leaf)}\b", README), key


@pytest.mark.parametrize("reason", [r.value for r in RejectReason])
def test_every_reject_reason_is_documented(reason: str) -> None:
    """Each closed reject reason has a row in the README."""
    assert f"| `{reason}` |" in README


def _flags(parser: argparse.ArgumentParser, path: str = "driftmon") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((path, name))
                found.extend(_flags(sub, f"{path} {name}"))
        else:
            found.extend(
                (path, option)
                for option in action.option_strings
                if option.startswith("--") and option not in ("--help", "--version")
            )
    return found


@pytest.mark.parametrize(("command", "token"), _flags(build_parser()))
def test_every_command_and_flag_is_documented(command: str, token: str) -> None:
    """Each subcommand and long flag of the CLI appears in the README."""
    assert token in README, f"{command}: {token}"


def _modules(package: Path) -> set[str]:
    return {p.stem for p in package.glob("*.py") if p.stem not in {"__init__", "__main__"}}


def test_layout_paragraph_names_every_module_in_its_wing() -> None:
    """The README's layout paragraph names every module of the daemon, the tools and dev wings."""
    package = Path(__file__).resolve().parents[2] / "monitor"
    start = README.index("- Layout (")
    paragraph = README[start : README.index("\n- ", start + 1)]
    for wing in (package, package / "tools", package / "dev"):
        for module in _modules(wing):
            assert f"`{module}`" in paragraph, f"{wing.name}/{module}.py missing from the layout"
    assert "`monitor/tools/`" in paragraph
    assert "`monitor/dev/`" in paragraph
    assert "`tests/support/`" in paragraph


RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "driftmon.rules.yml"


def _rule_severities() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {
        rule["alert"]: rule["labels"]["severity"]
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }


def _readme_severities() -> dict[str, str]:
    rows = re.findall(r"^\| `(Driftmon\w+)` \| (\w+) \|", README, flags=re.MULTILINE)
    return dict(rows)


def test_alert_table_matches_the_rules() -> None:
    """Every alert of the rules file is in the README's alert table with the same severity."""
    assert _readme_severities() == _rule_severities()


def test_label_values_statement_names_the_payload_label() -> None:
    """The cardinality budget names model_version as the one bounded label from the payload."""
    start = README.index("**Cardinality budget.**")
    paragraph = README[start : README.index("\n\n", start)]
    assert "`model_version`" in paragraph
    assert "bounded" in paragraph
    assert "only configured names" not in paragraph


@pytest.mark.parametrize(
    "promise", ["mergeable", "add partitions and replicas", "over partitions and replicas"]
)
def test_readme_promises_no_replica_scale_out(promise: str) -> None:
    """Nothing merges replicas yet: the README promises one replica per consumer group."""
    assert promise not in README
    assert "One replica per consumer group" in README

"""A small model of Alertmanager's inhibition, to test `inhibit_rules` without a server.

`amtool` can test routes but not inhibition, so this module re-implements the semantics of
Alertmanager 0.25 (`inhibit/inhibit.go`, `Inhibitor.Mutes` and `InhibitRule.hasEqual`):

- A rule applies to a target alert when all its `target_matchers` match the target's labels.
- It mutes the target if some firing alert matches all `source_matchers` and has, for every
  label name in `equal`, the same value as the target. A missing label counts as the empty
  string, on both sides and in the matchers (so `feature=~".+"` requires a non-empty label).
- A source that matches the target matchers as well cannot inhibit a target that matches the
  source matchers (no mutual or self inhibition across one rule).
- Matchers are `name op value` with op `=`, `!=`, `=~`, `!~`; regexes are fully anchored.

tests/ops/test_prometheus_alertmanager_live.py runs the same scenarios against a real
Alertmanager to prove this model agrees with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Labels = Mapping[str, str]

_MATCHER = re.compile(
    r'^\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"]*?)\s*$'
)


@dataclass(frozen=True)
class Matcher:
    """One label matcher of Alertmanager's matcher syntax."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse `name="value"`, `name=~"re"`, `name!=value` etc. (ValueError if malformed)."""
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(f"bad matcher: {text!r}")
        raw = m.group("value")
        value = json.loads(raw) if raw.startswith('"') else raw
        return cls(m.group("name"), m.group("op"), value)

    def matches(self, labels: Labels) -> bool:
        """Whether the labels satisfy the matcher (a missing label has the value "")."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        full = re.fullmatch(f"(?:{self.value})", actual) is not None
        return full if self.op == "=~" else not full


def _all(matchers: Sequence[Matcher], labels: Labels) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class InhibitRule:
    """One entry of `inhibit_rules`."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, rule: Mapping[str, Any]) -> InhibitRule:
        """Build from a config entry; only the `*_matchers` and `equal` keys are supported."""
        unsupported = set(rule) - {"source_matchers", "target_matchers", "equal"}
        if unsupported:
            raise ValueError(f"unsupported inhibit_rules keys: {sorted(unsupported)}")
        return cls(
            source=tuple(Matcher.parse(t) for t in rule.get("source_matchers", [])),
            target=tuple(Matcher.parse(t) for t in rule.get("target_matchers", [])),
            equal=tuple(rule.get("equal", [])),
        )

    def sources_muting(self, target: Labels, firing: Iterable[Labels]) -> list[Labels]:
        """The firing alerts through which this rule mutes `target` (empty: it does not)."""
        if not _all(self.target, target):
            return []
        target_is_source = _all(self.source, target)
        found = []
        for alert in firing:
            if not _all(self.source, alert):
                continue
            if any(alert.get(n, "") != target.get(n, "") for n in self.equal):
                continue
            if target_is_source and _all(self.target, alert):
                continue
            found.append(alert)
        return found


def load_rules(config: Mapping[str, Any]) -> list[InhibitRule]:
    """The inhibit rules of a parsed alertmanager.yml."""
    return [InhibitRule.from_config(r) for r in config.get("inhibit_rules") or []]


def muted(rules: Sequence[InhibitRule], target: Labels, firing: Iterable[Labels]) -> bool:
    """Whether any rule mutes `target` while the alerts in `firing` fire."""
    firing = list(firing)
    return any(rule.sources_muting(target, firing) for rule in rules)

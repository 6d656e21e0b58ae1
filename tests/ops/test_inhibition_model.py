"""Unit tests of tests/ops/inhibition.py, the model of Alertmanager's inhibit semantics."""

from __future__ import annotations

import pytest

from .inhibition import InhibitRule, Matcher, muted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', Matcher("severity", "=", "critical")),
        ("severity=critical", Matcher("severity", "=", "critical")),
        ('feature=~".+"', Matcher("feature", "=~", ".+")),
        ('team!~"a|b"', Matcher("team", "!~", "a|b")),
        (' job != "x\\"y" ', Matcher("job", "!=", 'x"y')),
    ],
)
def test_matcher_parsing(text: str, expected: Matcher) -> None:
    """Quoted and unquoted values, all four operators and escapes parse as Alertmanager does."""
    assert Matcher.parse(text) == expected


def test_malformed_matcher_is_rejected() -> None:
    """A matcher without an operator raises ValueError."""
    with pytest.raises(ValueError, match="bad matcher"):
        Matcher.parse("severity")


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('feature=~".+"', {"feature": "amount"}, True),
        ('feature=~".+"', {}, False),
        ('feature=""', {}, True),
        ('category=~"drift|data_quality"', {"category": "data_quality"}, True),
        ('category=~"drift|data_quality"', {"category": "drift_x"}, False),
        ('severity!="warning"', {}, True),
        ('severity!~"warn.*"', {"severity": "warning"}, False),
    ],
)
def test_matcher_semantics(matcher: str, labels: dict[str, str], expected: bool) -> None:
    """Regexes are fully anchored and a missing label matches as the empty string."""
    assert Matcher.parse(matcher).matches(labels) is expected


def rule(source: list[str], target: list[str], equal: list[str]) -> InhibitRule:
    """An inhibit rule from matcher strings."""
    return InhibitRule.from_config(
        {"source_matchers": source, "target_matchers": target, "equal": equal}
    )


def test_equal_labels_must_match_and_missing_counts_as_empty() -> None:
    """`equal` compares values; two alerts both lacking a label are equal on it."""
    r = rule(['severity="critical"'], ['severity="warning"'], ["model"])
    warning = {"severity": "warning", "model": "fraud"}
    assert muted([r], warning, [{"severity": "critical", "model": "fraud"}])
    assert not muted([r], warning, [{"severity": "critical", "model": "churn"}])
    assert muted([r], {"severity": "warning"}, [{"severity": "critical"}])
    assert not muted([r], warning, [{"severity": "critical"}])


def test_an_alert_never_inhibits_itself() -> None:
    """An alert matching both sides of a rule is not muted by itself or by a twin."""
    r = rule(['team="a"'], ['team="a"'], ["team"])
    alert = {"team": "a", "alertname": "X"}
    twin = {"team": "a", "alertname": "Y"}
    assert not muted([r], alert, [alert])
    assert not muted([r], alert, [alert, twin])


def test_unsupported_rule_keys_are_rejected() -> None:
    """Deprecated `source_match` style keys are refused rather than silently ignored."""
    with pytest.raises(ValueError, match="unsupported"):
        InhibitRule.from_config({"source_match": {"severity": "critical"}})

"""The one frozen Settings tree: YAML file + `DRIFTMON_*` environment, validated.

This is the only module that imports pydantic / pydantic-settings. Everything downstream reads
plain attributes of the frozen models below, or the value types they convert to
(`monitor.model.FeatureSpec`, `monitor.model.DecisionPolicy`).

Sources and priority (highest first): keyword arguments to `Settings(...)`, environment
variables (`DRIFTMON_` prefix, `__` between nested keys, e.g.
`DRIFTMON_KAFKA__BOOTSTRAP_SERVERS`), the YAML file given to `load_settings`, the defaults.

Every mistake is a `ConfigError` from `load_settings` whose message lists each offending key as
a dotted path (`models.0.features.2.kind: Input should be 'numeric' or 'categorical'`). Secret
values (`SecretStr`) never appear in a message, a repr or `redacted_dump`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from monitor.errors import ConfigError
from monitor.model import (
    DEFAULT_MAX_BINS,
    DEFAULT_TOP_K,
    RECONSTRUCTION_FEATURE,
    THRESHOLD_KEYS,
    Correction,
    CorrelationPlan,
    DecisionPolicy,
    DiscoveryPlan,
    DistributionExport,
    DistributionPolicy,
    FeatureKind,
    FeatureSpec,
    ModelPlan,
    ReconstructionPlan,
    ReferenceMode,
    ReferencePlan,
    SegmentPlan,
    Thresholds,
    WindowPlan,
)
from monitor.segment_slices import DEFAULT_MAX_SEGMENTS, MAX_SEGMENTS
from monitor.yamlfile import read_yaml_mapping

__all__ = [
    "DEFAULT_TOP_K",
    "Duration",
    "EvaluationSettings",
    "EventSettings",
    "FeatureSettings",
    "HttpSettings",
    "KafkaSettings",
    "LogSettings",
    "ModelSettings",
    "NonNegativeDuration",
    "ReferenceSettings",
    "ReferencesSettings",
    "Settings",
    "StateSettings",
    "ThresholdSettings",
    "WindowSettings",
    "check_key_name",
    "check_topic",
    "kafka_settings",
    "load_settings",
    "model_plans",
    "parse_duration",
    "redacted_dump",
]

ENV_PREFIX = "DRIFTMON_"
HOUR = 3600.0
DEAD_LETTER_HEADROOM_BYTES = 65_536
REDACTED = "**********"
#: Reference modes a fleet (`state.backend: kafka`) refuses, and why (docs/fleet.md).
FLEET_REFUSED_MODES: dict[ReferenceMode, str] = {}

# --------------------------------------------------------------------------------------------
# Reusable field types
# --------------------------------------------------------------------------------------------

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_COMPOUND = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ms|s|m|h|d))+")
_TERM = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_DURATION_HELP = "expected seconds or a duration like '250ms', '15s', '1m', '24h', '2d', '1h30m'"


def parse_duration(value: object) -> object:
    """Convert a duration to float seconds.

    Accepts a non-bool number (seconds), a `timedelta`, a numeric string (seconds) or a string
    of one or more `<number><unit>` terms with unit in ms|s|m|h|d (`"1h30m"` = 5400.0). Values
    of other types are returned unchanged so pydantic reports its own type error. Raises
    ValueError for malformed strings and non-finite numbers; the sign is checked by the field.
    """
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        if _PLAIN_NUMBER.fullmatch(text):
            seconds = float(text)
        elif _COMPOUND.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _TERM.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")
    else:
        return value
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite: {_DURATION_HELP}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A strictly positive duration, stored as float seconds (see `parse_duration`)."""

NonNegativeDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""A duration that may be zero, stored as float seconds (see `parse_duration`)."""


def _split_list(value: object) -> object:
    """Accept a list, a JSON array string or a comma-separated string (env vars) as a list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON array ({exc.msg})") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_topic(name: str) -> str:
    """Reject names Kafka would refuse as a topic (legal: [A-Za-z0-9._-], 1..249 chars)."""
    if not _TOPIC.fullmatch(name):
        raise ValueError(f"invalid Kafka topic name {name!r} (allowed: A-Z a-z 0-9 . _ -)")
    return name


def _check_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """Reject a list with repeated entries."""
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate entry {v!r}")
        seen.add(v)
    return values


def _check_file(path: Path | None) -> Path | None:
    """A configured TLS file must exist when the config is validated."""
    if path is not None and not path.is_file():
        raise ValueError(f"file not found: {str(path)!r}")
    return path


_UNMATCHABLE = re.compile(r'["\\\x00-\x1f\x7f]')


def check_key_name(name: str) -> str:
    """Reject a JSON key the event decoder cannot match: `"`, `\\` or control characters."""
    if _UNMATCHABLE.search(name):
        raise ValueError(
            f"{name!r} contains a double quote, a backslash or a control character, "
            "which the event decoder cannot match as a JSON key"
        )
    return name


def _check_dotted_path(path: str) -> str:
    """`features_path`: "" or dot-separated non-empty keys, each a matchable JSON key."""
    if path:
        for part in path.split("."):
            if not part:
                raise ValueError(f"{path!r} has an empty part")
            check_key_name(part)
    return path


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _check_host(host: str) -> str:
    """An IPv4/IPv6 address or a hostname (RFC 1123 labels, the last not all digits)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        if (
            len(host) > 253
            or not all(_HOST_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()
        ):
            raise ValueError(f"{host!r} is neither an IP address nor a valid hostname") from None
    return host


KeyName = Annotated[str, Field(min_length=1), AfterValidator(check_key_name)]
Host = Annotated[str, Field(min_length=1), AfterValidator(_check_host)]
Topic = Annotated[str, AfterValidator(check_topic)]
TopicList = Annotated[
    tuple[Topic, ...], NoDecode, BeforeValidator(_split_list), AfterValidator(_check_unique)
]
ExistingFile = Annotated[Path | None, AfterValidator(_check_file)]
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
"""A model's name (a label value): also what `reference fit --model` accepts."""
_FEATURE_NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"


class _KeyedError(ValueError):
    """Cross-field problems, each as (dotted path relative to the failing model, message).

    Raised from model validators so the final message names the exact key, not just the model.
    """

    def __init__(self, *issues: tuple[str, str]) -> None:
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in issues))
        self.issues = issues


class _Section(BaseModel):
    """Base of every config section: immutable, unknown keys are errors, inputs never echoed."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class KafkaSettings(_Section):
    """Where events come from, and how kafka-python connects (`consumer_kwargs`)."""

    bootstrap_servers: Annotated[
        tuple[Annotated[str, Field(min_length=1)], ...],
        NoDecode,
        BeforeValidator(_split_list),
        Field(min_length=1),
    ] = ("localhost:9092",)
    topics: Annotated[TopicList, Field(min_length=1)]
    group_id: str = Field("driftmon", min_length=1)
    client_id: str = Field("driftmon", min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: ExistingFile = None
    ssl_certfile: ExistingFile = None
    ssl_keyfile: ExistingFile = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    dead_letter_topic: Topic | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(5000, ge=1, le=100_000)
    fetch_max_bytes: int = Field(16_777_216, ge=1)
    max_partition_fetch_bytes: int | None = Field(None, ge=1)
    session_timeout_ms: int = Field(10_000, ge=1)
    heartbeat_interval_ms: int = Field(3_000, ge=1)
    max_poll_interval_ms: int = Field(300_000, ge=1)
    # kafka-python requires fetch_max_wait_ms (500) < request_timeout_ms < connections_max_idle_ms
    # (540000) and refuses to start otherwise.
    request_timeout_ms: int = Field(30_500, gt=500, lt=540_000)
    reconnect_backoff_ms: int = Field(100, ge=1)
    reconnect_backoff_max_ms: int = Field(10_000, ge=1)
    max_message_bytes: int = Field(1_048_576, ge=1)

    @model_validator(mode="after")
    def _check_combinations(self) -> KafkaSettings:
        """SASL needs mechanism + credentials; heartbeat < session timeout; backoff ordered."""
        issues: list[tuple[str, str]] = []
        if self.security_protocol.startswith("SASL_"):
            for key in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, key) is None:
                    issues.append(
                        (key, f"required when security_protocol is {self.security_protocol}")
                    )
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            issues.append(
                (
                    "heartbeat_interval_ms",
                    f"must be lower than session_timeout_ms ({self.session_timeout_ms})",
                )
            )
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_ms:
            issues.append(
                (
                    "reconnect_backoff_max_ms",
                    f"must be at least reconnect_backoff_ms ({self.reconnect_backoff_ms})",
                )
            )
        if self.partition_fetch_bytes > self.fetch_max_bytes:
            issues.append(
                (
                    "fetch_max_bytes",
                    f"must be at least max_partition_fetch_bytes ({self.partition_fetch_bytes})"
                    " and max_message_bytes",
                )
            )
        if issues:
            raise _KeyedError(*issues)
        return self

    @property
    def partition_fetch_bytes(self) -> int:
        """`max_partition_fetch_bytes`, or `max_message_bytes` when unset (the default)."""
        return self.max_partition_fetch_bytes or self.max_message_bytes

    def dead_letter_kwargs(self) -> dict[str, object]:
        """`client_kwargs()` plus the producer limits of the dead-letter sink.

        `max_request_size` is `max_message_bytes` + 64 KiB (room for the key, the headers and
        the batch framing), so every message the decoder may parse can be dead-lettered.
        """
        request = self.max_message_bytes + DEAD_LETTER_HEADROOM_BYTES
        return {**self.client_kwargs(), "max_request_size": request}

    def client_kwargs(self) -> dict[str, object]:
        """Connection and security keyword arguments shared by KafkaConsumer and KafkaProducer.

        Keys are kafka-python's names; None values are omitted so kafka-python's own defaults
        apply. Secrets are revealed here and only here (`sasl_plain_password`, `ssl_password`).
        """
        kwargs: dict[str, object] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "ssl_cafile": None if self.ssl_cafile is None else str(self.ssl_cafile),
            "ssl_certfile": None if self.ssl_certfile is None else str(self.ssl_certfile),
            "ssl_keyfile": None if self.ssl_keyfile is None else str(self.ssl_keyfile),
            "ssl_password": _reveal(self.ssl_password),
            "ssl_check_hostname": self.ssl_check_hostname,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": _reveal(self.sasl_password),
            "request_timeout_ms": self.request_timeout_ms,
            "reconnect_backoff_ms": self.reconnect_backoff_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    def consumer_kwargs(self) -> dict[str, object]:
        """`client_kwargs()` plus the KafkaConsumer group/fetch settings.

        Auto-commit is always off: offsets are committed after each checkpoint, never before.
        """
        return {
            **self.client_kwargs(),
            "group_id": self.group_id,
            "auto_offset_reset": self.auto_offset_reset,
            "enable_auto_commit": False,
            "max_poll_records": self.max_poll_records,
            "fetch_max_bytes": self.fetch_max_bytes,
            "max_partition_fetch_bytes": self.partition_fetch_bytes,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
        }


def _reveal(secret: SecretStr | None) -> str | None:
    """The plain text of a secret, for the Kafka client only."""
    return None if secret is None else secret.get_secret_value()


class EventSettings(_Section):
    """Where the decoder finds the event time, model, version and features in a record.

    `max_array_elements` caps the events one message may carry as a JSON array: the first
    `max_array_elements` are used, each further element is rejected as `too_large`.
    `decode_worker` decodes in a child process (monitor.decode_worker), two batches ahead of
    the loop: for wide events on a machine with a core to spare.
    """

    timestamp_field: KeyName | None = "ts"
    timestamp_fallback_to_kafka: bool = False
    model_field: KeyName = "model"
    model_version_field: KeyName | None = "model_version"
    features_path: Annotated[str, AfterValidator(_check_dotted_path)] = "features"
    default_model: str | None = None
    max_future_seconds: Duration = 300.0
    max_array_elements: int = Field(10_000, ge=1, le=1_000_000)
    decode_worker: bool = False


class ReferenceSettings(_Section):
    """Where a model's reference distribution comes from (README.md, References)."""

    mode: ReferenceMode = ReferenceMode.WARMUP
    path: Path | None = None
    warmup_events: int = Field(10_000, ge=100)
    lag: Duration = 86_400.0
    length: Duration = 3_600.0
    follow_model_version: bool = False

    @model_validator(mode="after")
    def _check_mode(self) -> ReferenceSettings:
        """mode=file needs a path (the file itself is checked when the daemon loads it);
        follow_model_version needs mode=registry (the versions' profiles live there)."""
        if self.mode is ReferenceMode.FILE and self.path is None:
            raise _KeyedError(("path", "required when mode is file"))
        if self.follow_model_version and self.mode is not ReferenceMode.REGISTRY:
            raise _KeyedError(("follow_model_version", "needs mode: registry"))
        return self


class ReferencesSettings(_Section):
    """The reference registry on Kafka (docs/registry.md): where profiles and activations live."""

    topic: Topic = "driftmon.references"
    chunk_bytes: int = Field(512 * 1024, ge=1024, le=1024 * 1024)
    timeout: Duration = 10.0


Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A share or a distance between 0 and 1 (inclusive)."""
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFinite = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PValue = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class _Levels(_Section):
    """The thresholds of one signal; a level left out (None) is inherited from the level above.

    The field names are the levels (`warning`, `critical`, `decision`) the signal has.
    """

    @model_validator(mode="before")
    @classmethod
    def _known_levels(cls, data: Any) -> Any:
        """Name the levels this signal has when an unknown one is given."""
        if isinstance(data, dict):
            allowed = tuple(cls.model_fields)
            message = f"unknown level (allowed: {', '.join(allowed)})"
            issues = [(str(k), message) for k in data if k not in allowed]
            if issues:
                raise _KeyedError(*issues)
        return data


class PsiLevels(_Levels):
    """PSI: alert bands and the drift decision's effect-size floor."""

    warning: PositiveFinite | None = None
    critical: PositiveFinite | None = None
    decision: NonNegativeFinite | None = None


class DecisionLevel(_Levels):
    """A statistic that only the drift decision uses (TVD): its effect-size floor."""

    decision: Ratio | None = None


class CriticalAndDecisionLevels(_Levels):
    """A distance with a critical alert and a drift decision floor (KS D)."""

    critical: Ratio | None = None
    decision: Ratio | None = None


class WarningLevel(_Levels):
    """A ratio with a warning alert only (out-of-range ratio)."""

    warning: Ratio | None = None


class WarningAndDecisionLevels(_Levels):
    """A ratio with a warning alert and a drift decision floor (missing, unseen categories)."""

    warning: Ratio | None = None
    decision: Ratio | None = None


class PValueLevel(_Levels):
    """A p-value alert level: the alert needs the p-value below it."""

    warning: PValue | None = None


class ThresholdSettings(_Section):
    """Per-signal thresholds (`thresholds:` of a model or a feature); unset levels inherit.

    Keys are the `signal` label values of `driftmon_feature_threshold`, levels its `severity`
    values. Resolution, most specific first: the feature's `thresholds`, the model's
    `thresholds`, the global `evaluation.*_floor` (decision levels only), the built-in
    defaults of `monitor.model.Thresholds`.
    """

    psi: PsiLevels = PsiLevels()
    ks: CriticalAndDecisionLevels = CriticalAndDecisionLevels()
    tvd: DecisionLevel = DecisionLevel()
    missing_ratio_change: WarningAndDecisionLevels = WarningAndDecisionLevels()
    out_of_range_ratio: WarningLevel = WarningLevel()
    unseen_category_ratio: WarningAndDecisionLevels = WarningAndDecisionLevels()
    new_category_pvalue: PValueLevel = PValueLevel()

    @model_validator(mode="before")
    @classmethod
    def _known_signals(cls, data: Any) -> Any:
        """Name the known signals when an unknown one is given."""
        if isinstance(data, dict):
            known = tuple(cls.model_fields)
            issues = [
                (str(k), f"unknown signal (known: {', '.join(known)})")
                for k in data
                if k not in known
            ]
            if issues:
                raise _KeyedError(*issues)
        return data

    @model_validator(mode="after")
    def _check_bands(self) -> ThresholdSettings:
        """When both PSI bands are set here, warning <= critical."""
        warning, critical = self.psi.warning, self.psi.critical
        if warning is not None and critical is not None and warning > critical:
            raise _KeyedError(
                (
                    "psi.warning",
                    f"must not exceed the critical threshold psi.critical ({critical:g})",
                )
            )
        return self

    def overrides(self, prefix: str = "thresholds") -> dict[str, tuple[float, str]]:
        """`Thresholds` attribute -> (value, dotted key) of every level set here."""
        found: dict[str, tuple[float, str]] = {}
        for signal in type(self).model_fields:
            levels = getattr(self, signal)
            for level in type(levels).model_fields:
                value = getattr(levels, level)
                if value is not None:
                    found[f"{signal}_{level}"] = (value, f"{prefix}.{signal}.{level}")
        return found


def _apply(base: Thresholds, overrides: Mapping[str, tuple[float, str]]) -> Thresholds:
    """`base` with every overridden attribute replaced."""
    return replace(base, **{name: value for name, (value, _) in overrides.items()})


def _band_issues(
    resolved: Thresholds, overrides: Mapping[str, tuple[float, str]], prefix: str = ""
) -> list[tuple[str, str]]:
    """The PSI warning band above the critical one, blamed on the key set at this level."""
    if resolved.psi_warning <= resolved.psi_critical:
        return []
    if "psi_critical" in overrides:
        key = overrides["psi_critical"][1]
        return [
            (prefix + key, f"must be at least the PSI warning threshold ({resolved.psi_warning:g})")
        ]
    if "psi_warning" in overrides:
        key = overrides["psi_warning"][1]
        return [
            (
                prefix + key,
                f"must not exceed the PSI critical threshold ({resolved.psi_critical:g})",
            )
        ]
    return []


def _nested(kind: FeatureKind, thresholds: Thresholds) -> dict[str, dict[str, float]]:
    """`{signal: {level: value}}` of the thresholds a feature of `kind` has."""
    out: dict[str, dict[str, float]] = {}
    for signal, severity, value in thresholds.series(kind):
        out.setdefault(signal.value, {})[severity.value] = value
    return out


class FeatureSettings(_Section):
    """One monitored feature: kind, thresholds, and top-K size for categorical ones.

    `psi_warning` / `psi_critical` are the older spelling of `thresholds.psi.warning` /
    `thresholds.psi.critical` (deprecated, still accepted; giving both spellings is an error).
    """

    name: Annotated[str, Field(pattern=_FEATURE_NAME_PATTERN), AfterValidator(check_key_name)]
    kind: FeatureKind
    psi_warning: PositiveFinite | None = None
    psi_critical: PositiveFinite | None = None
    thresholds: ThresholdSettings = ThresholdSettings()
    top_k: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _default_top_k(cls, data: Any) -> Any:
        """Categorical features get top_k = DEFAULT_TOP_K unless set."""
        categorical = isinstance(data, dict) and data.get("kind") == "categorical"
        if categorical and data.get("top_k") is None:
            return {**data, "top_k": DEFAULT_TOP_K}
        return data

    @model_validator(mode="after")
    def _check_feature(self) -> FeatureSettings:
        """One spelling per PSI band; thresholds and top_k fit the kind."""
        issues: list[tuple[str, str]] = []
        for alias in ("psi_warning", "psi_critical"):
            level = alias.removeprefix("psi_")
            if getattr(self, alias) is not None and getattr(self.thresholds.psi, level) is not None:
                issues.append((alias, f"set either {alias} or thresholds.psi.{level}, not both"))
        applicable = {f"{s.value}_{v.value}" for s, v in THRESHOLD_KEYS[self.kind]}
        for name, (_, key) in self.thresholds.overrides().items():
            if name not in applicable:
                issues.append((key, f"does not apply to a {self.kind.value} feature"))
        if self.kind is FeatureKind.NUMERIC and self.top_k is not None:
            issues.append(("top_k", "applies to categorical features only"))
        if issues:
            raise _KeyedError(*issues)
        return self

    def overrides(self) -> dict[str, tuple[float, str]]:
        """`Thresholds` attribute -> (value, dotted key) of every threshold this feature sets."""
        found = self.thresholds.overrides()
        for alias in ("psi_warning", "psi_critical"):
            value = getattr(self, alias)
            if value is not None:
                found[alias] = (value, alias)
        return found

    def spec(self, defaults: Thresholds) -> FeatureSpec:
        """The feature as the core's value type, its thresholds resolved over `defaults`."""
        return FeatureSpec(self.name, self.kind, _apply(defaults, self.overrides()))


class CorrelationSettings(_Section):
    """A model's correlation group (README, Correlation drift): off unless `enabled`.

    `features`: the numeric features of the group (2..64); empty means the model's first
    64 numeric features. `change_floor`: the effect floor |r_cur - r_ref| of a drifted pair;
    `noise_multiple`: the noise floor, in standard errors of that change (0: off).
    """

    enabled: bool = False
    features: tuple[str, ...] = ()
    change_floor: float = Field(0.1, gt=0, le=2, allow_inf_nan=False)
    noise_multiple: float = Field(6.0, ge=0, le=100, allow_inf_nan=False)


class ReconstructionSettings(_Section):
    """A model's reconstruction-error feature (README, Reconstruction error): off by default.

    `features`: the numeric features the PCA basis is fitted on (2..64); empty means the
    model's first 64 numeric features. `variance`: the share of the reference variance the
    kept components explain.
    """

    enabled: bool = False
    features: tuple[str, ...] = ()
    variance: float = Field(0.9, gt=0, lt=1)


AUTO_FEATURES = "auto"
DEFAULT_MAX_FEATURES = 1000


class ModelSettings(_Section):
    """One monitored model: its reference, features and histogram resolution.

    `features: auto` (held as an empty tuple: `auto_features`) discovers the features from
    the stream (monitor.discovery); `max_features` and `exclude` (shell globs) apply to it
    only, and it needs a `warmup` or `rolling` reference.
    """

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    topics: TopicList | None = None
    reference: ReferenceSettings = ReferenceSettings()
    features: tuple[FeatureSettings, ...]
    max_features: int | None = Field(None, ge=1, le=10_000)
    exclude: tuple[str, ...] = ()
    thresholds: ThresholdSettings = ThresholdSettings()
    max_bins: int = Field(DEFAULT_MAX_BINS, ge=2, le=1024)
    export_distributions: DistributionExport = DistributionExport.DRIFTING
    export_distributions_top: int = Field(10, ge=0, le=1000)
    export_distributions_limit: int = Field(20, ge=1, le=10_000)
    correlation: CorrelationSettings = CorrelationSettings()
    reconstruction: ReconstructionSettings = ReconstructionSettings()
    segment_by: Annotated[str, AfterValidator(_check_dotted_path), Field(min_length=1)] | None = (
        None
    )
    max_segments: int = Field(DEFAULT_MAX_SEGMENTS, ge=1, le=MAX_SEGMENTS)
    sample_rate: float = Field(1.0, gt=0.0, le=1.0)
    """Share of the model's messages counted, chosen by a hash of topic/partition/offset
    (monitor/sampling.py); 1 counts every message."""

    @field_validator("features", mode="before")
    @classmethod
    def _auto_or_list(cls, value: Any) -> Any:
        """`auto` becomes the empty tuple; an explicit empty list is refused."""
        if value == AUTO_FEATURES:
            return ()
        if isinstance(value, list | tuple) and not value:
            raise ValueError(f"needs at least 1 item (or {AUTO_FEATURES!r} to discover them)")
        return value

    @model_validator(mode="after")
    def _check_discovery(self) -> ModelSettings:
        """max_features/exclude only with `features: auto`, which needs a warm-up reference."""
        issues: list[tuple[str, str]] = []
        if self.auto_features:
            if self.reference.mode not in (ReferenceMode.WARMUP, ReferenceMode.ROLLING):
                issues.append(
                    (
                        "features",
                        "auto needs reference.mode warmup or rolling (a "
                        f"{self.reference.mode.value} reference fixes the features)",
                    )
                )
            if self.segment_by is not None:
                issues.append(("segment_by", "not supported with features: auto; list them"))
            for key in ("correlation", "reconstruction"):
                if getattr(self, key).enabled:
                    issues.append((key, "not supported with features: auto; list them"))
        else:
            for key in ("max_features", "exclude"):
                if getattr(self, key):
                    issues.append((key, "applies to features: auto only"))
        if issues:
            raise _KeyedError(*issues)
        return self

    @property
    def auto_features(self) -> bool:
        """True for `features: auto` (the features are discovered from the stream)."""
        return not self.features

    @property
    def effective_max_features(self) -> int:
        """`max_features`, or DEFAULT_MAX_FEATURES."""
        return self.max_features or DEFAULT_MAX_FEATURES

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: tuple[FeatureSettings, ...]) -> tuple[FeatureSettings, ...]:
        """Feature names are unique within a model."""
        seen: set[str] = set()
        issues: list[tuple[str, str]] = []
        for i, feature in enumerate(features):
            if feature.name in seen:
                issues.append((f"{i}.name", f"duplicate feature name {feature.name!r}"))
            seen.add(feature.name)
        if issues:
            raise _KeyedError(*issues)
        return features

    @model_validator(mode="after")
    def _check_thresholds(self) -> ModelSettings:
        """PSI warning <= critical for the model's defaults and every feature's resolved bands."""
        model_level = self.thresholds.overrides()
        defaults = _apply(Thresholds(), model_level)
        issues = _band_issues(defaults, model_level)
        if not issues:
            for i, feature in enumerate(self.features):
                own = feature.overrides()
                issues += _band_issues(_apply(defaults, own), own, f"features.{i}.")
        if issues:
            raise _KeyedError(*issues)
        return self

    @model_validator(mode="after")
    def _check_correlation(self) -> ModelSettings:
        """The correlation group names 2..64 distinct numeric features of the model."""
        issues: list[tuple[str, str]] = []
        why = "needs 2 to 64 distinct numeric features of this model"
        if self.correlation.enabled and self.correlation_group() is None:
            issues.append(("correlation.features", why))
        if self.reconstruction.enabled and self.reconstruction_group() is None:
            issues.append(("reconstruction.features", why))
        for i, feature in enumerate(self.features):
            if feature.name == RECONSTRUCTION_FEATURE:
                issues.append((f"features.{i}.name", "reserved for the reconstruction error"))
        if issues:
            raise _KeyedError(*issues)
        return self

    def correlation_group(self) -> tuple[str, ...] | None:
        """The correlation group's features (None when the configuration cannot form one)."""
        return self._group(self.correlation.features)

    def reconstruction_group(self) -> tuple[str, ...] | None:
        """The reconstruction group's features (None when the configuration cannot form one)."""
        return self._group(self.reconstruction.features)

    def _group(self, configured: tuple[str, ...]) -> tuple[str, ...] | None:
        """`configured` or the first 64 numeric features, if 2..64 distinct numeric ones."""
        numeric = [f.name for f in self.features if f.kind is FeatureKind.NUMERIC]
        group = configured or tuple(numeric[:64])
        if not 2 <= len(group) <= 64 or len(set(group)) != len(group):
            return None
        if not set(group) <= set(numeric):
            return None
        return tuple(group)

    def feature_specs(self, evaluation: EvaluationSettings) -> tuple[FeatureSpec, ...]:
        """The configured features as core value types, in configuration order.

        Each feature's thresholds: its own, else the model's, else `evaluation`'s global
        decision floors, else the built-in defaults.
        """
        defaults = self.default_thresholds(evaluation)
        specs = tuple(f.spec(defaults) for f in self.features)
        if self.reconstruction.enabled:  # the virtual feature, with the model's thresholds
            specs += (FeatureSpec(RECONSTRUCTION_FEATURE, FeatureKind.NUMERIC, defaults),)
        return specs

    def default_thresholds(self, evaluation: EvaluationSettings) -> Thresholds:
        """The thresholds of a feature that sets none (a discovered one): model > global."""
        return _apply(evaluation.default_thresholds(), self.thresholds.overrides())

    def distribution_policy(self) -> DistributionPolicy:
        """Which features export `driftmon_feature_bin_ratio` series, as a core value type."""
        return DistributionPolicy(
            self.export_distributions,
            self.export_distributions_top,
            self.export_distributions_limit,
        )


class WindowSettings(_Section):
    """The current window: `length / bucket` buckets of event time, with allowed lateness."""

    bucket: Duration = 60.0
    length: Duration = 3_600.0
    allowed_lateness: NonNegativeDuration = 60.0

    @model_validator(mode="after")
    def _check_buckets(self) -> WindowSettings:
        """length must be a whole multiple of bucket giving 2..10080 buckets."""
        ratio = self.length / self.bucket
        count = round(ratio)
        if not math.isclose(ratio, count, rel_tol=1e-9, abs_tol=1e-9):
            raise _KeyedError(("length", f"must be a whole multiple of bucket ({self.bucket:g}s)"))
        if not 2 <= count <= 10_080:
            raise _KeyedError(
                ("length", f"gives {count} buckets of {self.bucket:g}s; allowed: 2..10080")
            )
        return self

    @property
    def buckets(self) -> int:
        """Number of buckets in the current window (length / bucket)."""
        return round(self.length / self.bucket)


class EvaluationSettings(_Section):
    """How often drift is evaluated and the decision rule's parameters (docs/architecture.md).

    The `*_floor` keys are the global defaults of the per-feature decision thresholds
    (`thresholds.<signal>.decision` of a model or feature overrides them).
    """

    interval: Duration = 15.0
    min_samples: int = Field(1000, ge=10)
    fdr_q: float = Field(1e-3, gt=0, lt=1)
    correction: Correction = Correction.BH
    ks_floor: float = Field(0.05, ge=0, le=1)
    psi_floor: float = Field(0.02, ge=0, allow_inf_nan=False)
    psi_noise_multiple: float = Field(5.0, ge=0, allow_inf_nan=False)
    ks_noise_multiple: float = Field(0.0, ge=0, allow_inf_nan=False)
    tvd_floor: float = Field(0.02, ge=0, le=1)
    new_category_floor: float = Field(0.01, ge=0, le=1)
    missing_floor: float = Field(0.05, ge=0, le=1)

    def policy(self) -> DecisionPolicy:
        """The model-wide part of the decision rule as the core's value type."""
        return DecisionPolicy(
            fdr_q=self.fdr_q,
            correction=self.correction,
            min_samples=self.min_samples,
            psi_noise_multiple=self.psi_noise_multiple,
            ks_noise_multiple=self.ks_noise_multiple,
        )

    def default_thresholds(self) -> Thresholds:
        """The built-in thresholds with the global decision floors of this section."""
        return Thresholds(
            ks_decision=self.ks_floor,
            psi_decision=self.psi_floor,
            tvd_decision=self.tvd_floor,
            unseen_category_ratio_decision=self.new_category_floor,
            missing_ratio_change_decision=self.missing_floor,
        )


class HttpSettings(_Section):
    """The /metrics, /livez, /readyz, /status listener; port 0 picks a free port.

    `web_config_file`: TLS and basic auth in the Prometheus exporter toolkit format (checked
    when the daemon starts and by check-config; `driftmon run --web.config.file` overrides it).
    `metrics_public`: with basic auth configured, leave /metrics open (/status still needs a
    login; /livez and /readyz are always open).
    """

    host: Host = "0.0.0.0"  # a daemon listens on all interfaces
    port: int = Field(9108, ge=0, le=65_535)
    web_config_file: ExistingFile = None
    metrics_public: bool = False


class StateSettings(_Section):
    """Where the state lives: `file` (the checkpoint directory, written every
    `checkpoint_interval`) or `kafka` (the fleet's state topic, docs/fleet.md: commits every
    `publish_interval`, snapshots every `snapshot_interval`; no state on disk)."""

    backend: Literal["file", "kafka"] = "file"
    dir: Path = Path("./state")
    checkpoint_interval: Duration = 30.0
    topic: str = Field("driftmon.state", min_length=1, max_length=249)
    publish_interval: Duration = 5.0
    snapshot_interval: Duration = 300.0


class LogSettings(_Section):
    """Log level, renderer (auto: console on a TTY, JSON otherwise) and reject sampling rate.

    `payload_preview: false` (the default) keeps payload content out of the log: reject
    samples name positions, sizes and JSON types only. `true` adds an escaped preview of at
    most 48 bytes of the value and the refused model / timestamp values.
    """

    level: Annotated[
        Literal["debug", "info", "warning", "error"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    sample_rejects_per_minute: int = Field(10, ge=0)
    payload_preview: bool = False


# --------------------------------------------------------------------------------------------
# The root
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadInputs:
    """What `load_settings` feeds the sources: parsed file data and the environment to read."""

    file_data: dict[str, Any]
    environ: Mapping[str, str]


_LOAD_INPUTS: ContextVar[_LoadInputs | None] = ContextVar("driftmon_load_inputs", default=None)


class Settings(BaseSettings):
    """The whole effective configuration. Frozen; build it with `load_settings`.

    Constructed directly (`Settings(...)`) it reads keyword arguments over `os.environ`; through
    `load_settings` it reads the given environment over the YAML file.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_parse_none_str="null",
        case_sensitive=False,
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
    )

    kafka: KafkaSettings
    references: ReferencesSettings = ReferencesSettings()
    event: EventSettings = EventSettings()
    models: tuple[ModelSettings, ...] = Field(min_length=1)
    window: WindowSettings = WindowSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    http: HttpSettings = HttpSettings()
    state: StateSettings = StateSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: init kwargs > environment > YAML file (only under `load_settings`)."""
        inputs = _LOAD_INPUTS.get()
        if inputs is None:
            return (init_settings, env_settings)
        if isinstance(env_settings, EnvSettingsSource):
            # What EnvSettingsSource does with os.environ, applied to the given mapping:
            # case_sensitive=False matches lower-cased names; "null" means None.
            none_str = env_settings.env_parse_none_str
            env_settings.env_vars = {
                k.lower(): None if v == none_str else v for k, v in inputs.environ.items()
            }
        return (init_settings, env_settings, InitSettingsSource(settings_cls, inputs.file_data))

    @model_validator(mode="after")
    def _check_references_between_sections(self) -> Settings:
        """Model names unique; model topics consumed; default_model known; rolling fits window;
        no `features: auto` in a fleet."""
        issues: list[tuple[str, str]] = []
        names: set[str] = set()
        consumed = set(self.kafka.topics)
        for i, model in enumerate(self.models):
            if model.name in names:
                issues.append((f"models.{i}.name", f"duplicate model name {model.name!r}"))
            names.add(model.name)
            for topic in model.topics or ():
                if topic not in consumed:
                    issues.append((f"models.{i}.topics", f"{topic!r} is not in kafka.topics"))
            issues.extend(self._rolling_issues(i, model.reference))
            if model.auto_features and self.state.backend == "kafka":
                issues.append(
                    (
                        f"models.{i}.features",
                        "auto is not supported with state.backend kafka (every replica would "
                        "discover on its own share); list the features",
                    )
                )
            if self.state.backend == "kafka" and model.reference.mode in FLEET_REFUSED_MODES:
                issues.append(
                    (
                        f"models.{i}.reference.mode",
                        f"{model.reference.mode.value} is not supported with state.backend "
                        f"kafka yet: {FLEET_REFUSED_MODES[model.reference.mode]}; use file, "
                        "registry or warmup (docs/fleet.md)",
                    )
                )
            if model.correlation.enabled and self.state.backend == "kafka":
                issues.append(
                    (
                        f"models.{i}.correlation",
                        "is not supported with state.backend kafka yet (the fleet's state topic "
                        "does not carry the correlation sums: every replica would test its own "
                        "share)",
                    )
                )
            issues.extend(self._segment_issues(i, model))
        if self.event.default_model is not None and self.event.default_model not in names:
            issues.append(
                ("event.default_model", f"{self.event.default_model!r} is not a configured model")
            )
        if issues:
            raise _KeyedError(*issues)
        return self

    def _segment_issues(self, index: int, model: ModelSettings) -> Iterator[tuple[str, str]]:
        """`segment_by` names a key of the features object, not a numeric feature, no rolling."""
        if model.segment_by is None:
            return
        where = f"models.{index}.segment_by"
        key = segment_key(model.segment_by, self.event.features_path)
        if key is None:
            yield (
                where,
                f"must name a key inside the features object ({self.event.features_path!r}), "
                f"e.g. '{self.event.features_path}.country'",
            )
            return
        kinds = {f.name: f.kind for f in model.features}
        if kinds.get(key) is FeatureKind.NUMERIC:
            yield (where, f"{key!r} is a numeric feature; segments need a categorical field")
        if model.reference.mode is ReferenceMode.ROLLING:
            yield (where, "needs a file or warm-up reference (rolling references have no slices)")
        if self.state.backend == "kafka":
            yield (
                where,
                "is not supported with state.backend kafka yet (the fleet's state topic does "
                "not carry segment windows)",
            )

    def _rolling_issues(self, index: int, ref: ReferenceSettings) -> Iterator[tuple[str, str]]:
        """A rolling reference is made of whole window buckets and does not overlap the window."""
        if ref.mode is not ReferenceMode.ROLLING:
            return
        where = f"models.{index}.reference"
        bucket = self.window.bucket
        for key, value in (("lag", ref.lag), ("length", ref.length)):
            if not math.isclose(value / HOUR, round(value / HOUR), rel_tol=1e-9, abs_tol=1e-9):
                yield (
                    f"{where}.{key}",
                    "must be a whole number of hours for a rolling reference (it is kept in "
                    f"hourly buckets), got {value:g}s",
                )
        for key, value in (("lag", ref.lag), ("length", ref.length)):
            if not math.isclose(value / bucket, round(value / bucket), rel_tol=1e-9, abs_tol=1e-9):
                yield (f"{where}.{key}", f"must be a whole multiple of window.bucket ({bucket:g}s)")
        if ref.lag < self.window.length:
            yield (
                f"{where}.lag",
                f"must be at least window.length ({self.window.length:g}s) so the reference "
                "and current windows do not overlap",
            )


# --------------------------------------------------------------------------------------------
# Loading, errors, dumping
# --------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    """Parse the config file (`monitor.yamlfile.read_yaml_mapping`); empty is an empty mapping."""
    return read_yaml_mapping(path, "config file", "a mapping of sections (kafka, models, ...)")


def _dotted(parts: list[str]) -> str:
    """`["models", "0", "name"]` -> `"models.0.name"`; the empty path is `(top level)`."""
    return ".".join(parts) if parts else "(top level)"


def _error_lines(exc: ValidationError) -> list[str]:
    """One `dotted.key: message` line per problem; inputs (possibly secrets) are never shown."""
    errors = exc.errors(include_url=False, include_input=False)
    locs = [tuple(err["loc"]) for err in errors]
    lines: list[str] = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other in locs
        ):
            continue  # pydantic re-checks the length without the failed items: a consequence
        base = [str(p) for p in loc]
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _KeyedError):
            lines.extend(f"{_dotted(base + rel.split('.'))}: {msg}" for rel, msg in cause.issues)
            continue
        lines.append(f"{_dotted(base)}: {_message(err['type'], err['msg'], err.get('ctx', {}))}")
    return lines


def _message(kind: str, msg: str, ctx: Mapping[str, Any]) -> str:
    """pydantic's message in config words (YAML has lists and mappings, not tuples/models)."""
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "should be a mapping of keys to values"
    if kind in ("tuple_type", "list_type"):
        return "should be a list"
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


@contextmanager
def _loading(inputs: _LoadInputs) -> Iterator[None]:
    """Make `Settings` read these inputs for the duration of the block (this context only)."""
    token = _LOAD_INPUTS.set(inputs)
    try:
        yield
    finally:
        _LOAD_INPUTS.reset(token)


def model_plans(settings: Settings) -> tuple[ModelPlan, ...]:
    """Each configured model as the plain values its runtime needs, in configuration order."""
    window = WindowPlan(
        bucket_seconds=settings.window.bucket,
        length_seconds=settings.window.length,
        allowed_lateness_seconds=settings.window.allowed_lateness,
        max_future_seconds=settings.event.max_future_seconds,
    )
    policy = settings.evaluation.policy()
    return tuple(
        ModelPlan(
            name=m.name,
            features=m.feature_specs(settings.evaluation),
            reference=ReferencePlan(
                mode=m.reference.mode,
                path=m.reference.path,
                warmup_events=m.reference.warmup_events,
                lag_seconds=m.reference.lag,
                length_seconds=m.reference.length,
                follow_model_version=m.reference.follow_model_version,
            ),
            window=window,
            policy=policy,
            top_k=tuple((f.name, f.top_k) for f in m.features),
            max_bins=m.max_bins,
            topics=frozenset(m.topics) if m.topics else None,
            sample_rate=m.sample_rate,
            distributions=m.export_distributions is not DistributionExport.NONE,
            correlation=_correlation_plan(m),
            reconstruction=_reconstruction_plan(m),
            discovery=DiscoveryPlan(
                m.effective_max_features, m.exclude, m.default_thresholds(settings.evaluation)
            )
            if m.auto_features
            else None,
            segments=_segment_plan(m, settings.event.features_path),
        )
        for m in settings.models
    )


def _correlation_plan(model: ModelSettings) -> CorrelationPlan | None:
    """The model's correlation group as a core value type (None: not enabled)."""
    group = model.correlation_group()
    if not model.correlation.enabled or group is None:
        return None
    return CorrelationPlan(group, model.correlation.change_floor, model.correlation.noise_multiple)


def _reconstruction_plan(model: ModelSettings) -> ReconstructionPlan | None:
    """The model's reconstruction group as a core value type (None: not enabled)."""
    group = model.reconstruction_group()
    if not model.reconstruction.enabled or group is None:
        return None
    return ReconstructionPlan(group, model.reconstruction.variance)


def segment_key(segment_by: str, features_path: str) -> str | None:
    """The features-object key `segment_by` names (None when it names none).

    With `features_path` "features", "features.country" names "country"; with features at
    the top level (`features_path` ""), "country" does.
    """
    if not features_path:
        return segment_by
    prefix = f"{features_path}."
    key = segment_by.removeprefix(prefix)
    return key if segment_by.startswith(prefix) and key else None


def _segment_plan(model: ModelSettings, features_path: str) -> SegmentPlan | None:
    if model.segment_by is None:
        return None
    key = segment_key(model.segment_by, features_path)
    assert key is not None  # Settings validation
    return SegmentPlan(model.segment_by, key, model.max_segments)


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the effective Settings from an optional YAML file and the environment.

    `env` defaults to `os.environ`; its `DRIFTMON_*` variables override the file's values
    (nested keys joined by `__`; lists as JSON or comma-separated; `null` for None).
    Raises ConfigError with one line per offending key, as a dotted path.
    """
    file_data = {} if path is None else _read_yaml(path)
    environ = os.environ if env is None else env
    source = "environment" if path is None else f"{path} (+ {ENV_PREFIX}* environment)"
    try:
        with _loading(_LoadInputs(file_data=file_data, environ=environ)):
            return Settings()
    except ValidationError as exc:
        lines = _error_lines(exc)
        noun = "error" if len(lines) == 1 else "errors"
        detail = "\n".join(f"  {line}" for line in lines)
        raise ConfigError(
            f"invalid configuration in {source}, {len(lines)} {noun}:\n{detail}"
        ) from None
    except SettingsError as exc:
        # pydantic-settings names the field and the source, not the value.
        raise ConfigError(f"invalid configuration in {source}: {exc}") from None


def kafka_settings(values: Mapping[str, Any], base: KafkaSettings | None = None) -> KafkaSettings:
    """`base` (default: a PLAINTEXT client for topic `features`) with `values` applied.

    For tools that only need a Kafka client (`driftmon simulate`). Raises ConfigError with
    one `kafka.<key>: message` line per problem, as `load_settings` does.
    """
    data: dict[str, Any] = base.model_dump() if base is not None else {"topics": ["features"]}
    data.update(values)
    try:
        return KafkaSettings.model_validate(data)
    except ValidationError as exc:
        detail = "\n".join(f"  kafka.{line}" for line in _error_lines(exc))
        raise ConfigError(f"invalid Kafka options:\n{detail}") from None


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as JSON-able data; every secret is shown as `**********`.

    Durations are float seconds, paths strings, enums their values. Each feature shows its
    effective `thresholds` (resolved over the model's and the global ones, for its kind; the
    deprecated `psi_warning`/`psi_critical` are folded in); a model shows the thresholds it
    sets. Loading the dump gives the same effective configuration.
    """
    dumped: dict[str, Any] = settings.model_dump(mode="json")
    for model, m_dump in zip(settings.models, dumped["models"], strict=True):
        m_dump["thresholds"] = {
            signal: {level: value for level, value in levels.items() if value is not None}
            for signal, levels in m_dump["thresholds"].items()
            if any(value is not None for value in levels.values())
        }
        if model.auto_features:
            m_dump["features"] = AUTO_FEATURES
            continue
        specs = model.feature_specs(settings.evaluation)[: len(model.features)]
        for spec, f_dump in zip(specs, m_dump["features"], strict=True):
            del f_dump["psi_warning"], f_dump["psi_critical"]
            f_dump["thresholds"] = _nested(spec.kind, spec.thresholds)
    return dumped

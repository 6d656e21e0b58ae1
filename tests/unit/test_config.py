"""Tests of monitor.config: loading, env overrides, validation messages, secrets, kwargs."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from monitor.config import (
    DEFAULT_TOP_K,
    EvaluationSettings,
    Settings,
    load_settings,
    parse_duration,
    redacted_dump,
)
from monitor.errors import ConfigError
from monitor.model import (
    Correction,
    DecisionPolicy,
    DistributionExport,
    DistributionPolicy,
    FeatureKind,
    FeatureSpec,
    ReferenceMode,
    Thresholds,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3cr3t-hunter2-pw"
SSL_SECRET = "Ssl-Key-Passphrase-77"

Config = dict[str, Any]


def _base() -> Config:
    """A small valid configuration (fresh copy each call)."""
    return {
        "kafka": {"bootstrap_servers": "localhost:9092", "topics": ["features", "other"]},
        "models": [
            {
                "name": "fraud",
                "reference": {"mode": "warmup", "warmup_events": 500},
                "features": [
                    {"name": "amount", "kind": "numeric"},
                    {"name": "age", "kind": "numeric", "psi_warning": 0.2, "psi_critical": 0.4},
                    {"name": "score", "kind": "numeric"},
                    {"name": "country", "kind": "categorical"},
                ],
            }
        ],
        "evaluation": {"interval": "15s"},
    }


def _write(tmp_path: Path, data: object, name: str = "driftmon.yaml") -> Path:
    """Write `data` as YAML and return the path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _load(tmp_path: Path, data: Config, env: dict[str, str] | None = None) -> Settings:
    """Load `data` through a YAML file with an explicit (default empty) environment."""
    return load_settings(_write(tmp_path, data), {} if env is None else env)


def _sasl(cfg: Config, **extra: Any) -> Config:
    """Turn the base kafka section into a SASL_SSL one carrying SECRET."""
    cfg["kafka"].update(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="driftmon",
        sasl_password=SECRET,
        **extra,
    )
    return cfg


# ------------------------------------------------------------------------------------------
# Valid configurations
# ------------------------------------------------------------------------------------------


def test_base_config_loads_with_documented_defaults(tmp_path: Path) -> None:
    """A minimal file gets the defaults the README's Configuration table lists."""
    s = _load(tmp_path, _base())
    assert s.kafka.bootstrap_servers == ("localhost:9092",)
    assert s.kafka.group_id == "driftmon"
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.kafka.max_poll_records == 5000
    assert s.kafka.max_message_bytes == 1_048_576
    assert s.event.timestamp_field == "ts"
    assert s.event.features_path == "features"
    assert s.event.max_future_seconds == 300.0
    assert (s.window.bucket, s.window.length, s.window.allowed_lateness) == (60.0, 3600.0, 60.0)
    assert s.window.buckets == 60
    assert s.evaluation.interval == 15.0
    assert s.evaluation.correction is Correction.BH
    assert (s.http.host, s.http.port) == ("0.0.0.0", 9108)
    assert s.state.checkpoint_interval == 30.0
    assert (s.log.level, s.log.format, s.log.sample_rejects_per_minute) == ("info", "auto", 10)
    model = s.models[0]
    assert model.reference.mode is ReferenceMode.WARMUP
    assert model.max_bins == 128
    assert model.features[3].top_k == DEFAULT_TOP_K
    assert model.features[0].top_k is None


def test_example_config_loads(tmp_path: Path) -> None:
    """examples/driftmon.yaml is accepted and describes the fraud and churn models of
    `driftmon simulate` (five numeric and two categorical features each, warm-up references)."""
    s = load_settings(REPO / "examples" / "driftmon.yaml", {})
    fraud, churn = s.models
    assert (fraud.name, churn.name) == ("fraud", "churn")
    for model in (fraud, churn):
        assert model.reference.mode is ReferenceMode.WARMUP
        kinds = [f.kind for f in model.features]
        assert kinds.count(FeatureKind.NUMERIC) == 5
        assert kinds.count(FeatureKind.CATEGORICAL) == 2
    age = fraud.feature_specs(s.evaluation)[1].thresholds
    assert (age.psi_warning, age.psi_critical, age.out_of_range_ratio_warning) == (0.15, 0.3, 0.01)


def test_feature_specs_and_policy_convert_to_core_types(tmp_path: Path) -> None:
    """feature_specs() and policy() carry the configured values into the layer-0 types."""
    cfg = _base()
    cfg["evaluation"] = {
        "fdr_q": 0.01,
        "correction": "bonferroni",
        "min_samples": 200,
        "ks_floor": 0.1,
        "psi_floor": 0.05,
        "tvd_floor": 0.03,
        "new_category_floor": 0.02,
        "missing_floor": 0.1,
    }
    s = _load(tmp_path, cfg)
    floors = Thresholds(
        ks_decision=0.1,
        psi_decision=0.05,
        tvd_decision=0.03,
        unseen_category_ratio_decision=0.02,
        missing_ratio_change_decision=0.1,
    )
    aged = dataclasses.replace(floors, psi_warning=0.2, psi_critical=0.4)
    assert s.models[0].feature_specs(s.evaluation) == (
        FeatureSpec("amount", FeatureKind.NUMERIC, floors),
        FeatureSpec("age", FeatureKind.NUMERIC, aged),
        FeatureSpec("score", FeatureKind.NUMERIC, floors),
        FeatureSpec("country", FeatureKind.CATEGORICAL, floors),
    )
    assert s.evaluation.policy() == DecisionPolicy(
        fdr_q=0.01, correction=Correction.BONFERRONI, min_samples=200
    )


def test_every_policy_parameter_is_configurable() -> None:
    """Each DecisionPolicy field has an evaluation setting of the same name and default."""
    defaults = EvaluationSettings()
    for field in dataclasses.fields(DecisionPolicy):
        assert getattr(defaults, field.name) == field.default, field.name
    assert defaults.policy() == DecisionPolicy()
    assert defaults.default_thresholds() == Thresholds()


def test_feature_thresholds_override_the_model_which_overrides_the_global_floors(
    tmp_path: Path,
) -> None:
    """Each threshold resolves feature > model > evaluation floor > built-in default."""
    cfg = _base()
    cfg["evaluation"]["ks_floor"] = 0.07
    model = cfg["models"][0]
    model["thresholds"] = {
        "psi": {"critical": 0.3, "decision": 0.03},
        "out_of_range_ratio": {"warning": 0.2},
        "unseen_category_ratio": {"warning": 0.05},
    }
    model["features"][0]["thresholds"] = {
        "out_of_range_ratio": {"warning": 0.01},
        "ks": {"decision": 0.2},
        "missing_ratio_change": {"warning": 0.3, "decision": 0.15},
    }
    model["features"][3]["thresholds"] = {
        "tvd": {"decision": 0.1},
        "new_category_pvalue": {"warning": 0.05},
    }
    s = _load(tmp_path, cfg)
    amount, age, score, country = (
        spec.thresholds for spec in s.models[0].feature_specs(s.evaluation)
    )
    model_level = Thresholds(
        psi_critical=0.3,
        psi_decision=0.03,
        ks_decision=0.07,
        out_of_range_ratio_warning=0.2,
        unseen_category_ratio_warning=0.05,
    )
    assert amount == dataclasses.replace(
        model_level,
        out_of_range_ratio_warning=0.01,
        ks_decision=0.2,
        missing_ratio_change_warning=0.3,
        missing_ratio_change_decision=0.15,
    )
    assert age == dataclasses.replace(model_level, psi_warning=0.2, psi_critical=0.4)
    assert score == model_level
    assert country == dataclasses.replace(
        model_level, tvd_decision=0.1, new_category_pvalue_warning=0.05
    )


def test_warning_equal_to_critical_is_valid(tmp_path: Path) -> None:
    """warning <= critical: equal bands are accepted."""
    cfg = _base()
    cfg["models"][0]["features"][0]["thresholds"] = {"psi": {"warning": 0.2, "critical": 0.2}}
    s = _load(tmp_path, cfg)
    spec = s.models[0].feature_specs(s.evaluation)[0]
    assert (spec.thresholds.psi_warning, spec.thresholds.psi_critical) == (0.2, 0.2)


def test_redacted_dump_shows_each_features_effective_thresholds(tmp_path: Path) -> None:
    """check-config's dump lists every threshold of a feature's kind with its resolved value."""
    cfg = _base()
    cfg["models"][0]["thresholds"] = {"out_of_range_ratio": {"warning": 0.2}}
    dump = redacted_dump(_load(tmp_path, cfg))
    model = dump["models"][0]
    assert model["thresholds"] == {"out_of_range_ratio": {"warning": 0.2}}
    age, country = model["features"][1], model["features"][3]
    assert "psi_warning" not in age
    assert age["thresholds"] == {
        "psi": {"warning": 0.2, "critical": 0.4, "decision": 0.02},
        "missing_ratio_change": {"warning": 0.1, "decision": 0.05},
        "ks": {"critical": 0.2, "decision": 0.05},
        "out_of_range_ratio": {"warning": 0.2},
    }
    assert country["thresholds"] == {
        "psi": {"warning": 0.1, "critical": 0.25},
        "missing_ratio_change": {"warning": 0.1, "decision": 0.05},
        "tvd": {"decision": 0.02},
        "unseen_category_ratio": {"warning": 0.01, "decision": 0.01},
        "new_category_pvalue": {"warning": 1e-5},
    }


def test_settings_are_frozen(tmp_path: Path) -> None:
    """No attribute of the loaded tree can be reassigned."""
    s = _load(tmp_path, _base())
    with pytest.raises(ValidationError):
        s.http.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka = s.kafka  # type: ignore[misc]


def test_rolling_reference_aligned_with_window_loads(tmp_path: Path) -> None:
    """A rolling reference with whole-hour lag and length beyond the window is accepted."""
    cfg = _base()
    cfg["models"][0]["reference"] = {"mode": "rolling", "lag": "2h", "length": "3h"}
    ref = _load(tmp_path, cfg).models[0].reference
    assert (ref.mode, ref.lag, ref.length) == (ReferenceMode.ROLLING, 7200.0, 10800.0)


def test_empty_file_reports_the_required_sections(tmp_path: Path) -> None:
    """An empty file is an empty mapping: the error names kafka and models as required."""
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert "kafka: Field required" in str(info.value)
    assert "models: Field required" in str(info.value)


# ------------------------------------------------------------------------------------------
# Durations
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("250ms", 0.25),
        ("15s", 15.0),
        ("1m", 60.0),
        ("24h", 86_400.0),
        ("2d", 172_800.0),
        ("1h30m", 5_400.0),
        ("1.5m", 90.0),
        (" 2.5S ", 2.5),
        ("30", 30.0),
        (30, 30.0),
        (0.5, 0.5),
    ],
)
def test_duration_parses(raw: object, seconds: float) -> None:
    """Durations in every accepted spelling become float seconds."""
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["15x", "", "s", "-5s", "1 h", "h1", True, float("inf"), "nan"])
def test_duration_rejects_malformed_values(raw: object) -> None:
    """Malformed duration strings, bools and non-finite numbers are errors."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_duration_fields_accept_strings_and_numbers(tmp_path: Path) -> None:
    """Duration fields in the file take both numbers (seconds) and unit strings."""
    cfg = _base()
    cfg["window"] = {"bucket": 30, "length": "2h", "allowed_lateness": 0}
    cfg["state"] = {"checkpoint_interval": "250ms"}
    s = _load(tmp_path, cfg)
    assert (s.window.bucket, s.window.length, s.window.buckets) == (30.0, 7200.0, 240)
    assert s.window.allowed_lateness == 0.0
    assert s.state.checkpoint_interval == 0.25


# ------------------------------------------------------------------------------------------
# Invalid configurations: one table, each must name the dotted key
# ------------------------------------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[Config], None]:
    """A mutation that sets a dotted path (list indices as numbers) in a config dict."""

    def apply(cfg: Config) -> None:
        *parents, last = path.split(".")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Callable[[Config], None]:
    """A mutation that removes a dotted path from a config dict."""

    def apply(cfg: Config) -> None:
        *parents, last = path.split(".")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return apply


def _sasl_without_password(cfg: Config) -> None:
    """SASL_SSL with mechanism and user but no password."""
    _sasl(cfg)
    del cfg["kafka"]["sasl_password"]


def _duplicate_model(cfg: Config) -> None:
    """Two models with the same name."""
    cfg["models"].append(copy.deepcopy(cfg["models"][0]))


def _models_psi(
    model: dict[str, float], feature: dict[str, float] | None
) -> Callable[[Config], None]:
    """Set PSI bands on model 0 and, unless None, on its feature 0."""

    def apply(cfg: Config) -> None:
        cfg["models"][0]["thresholds"] = {"psi": model}
        if feature is not None:
            cfg["models"][0]["features"][0]["thresholds"] = {"psi": feature}

    return apply


def _rolling(lag: str, length: str) -> Callable[[Config], None]:
    """Make model 0 a rolling reference."""
    return _set("models.0.reference", {"mode": "rolling", "lag": lag, "length": length})


INVALID: list[tuple[str, Callable[[Config], None], str]] = [
    ("missing topics", _delete("kafka.topics"), "kafka.topics: Field required"),
    ("empty topics", _set("kafka.topics", []), "kafka.topics: needs at least 1 item"),
    ("duplicate topics", _set("kafka.topics", ["a", "a"]), "kafka.topics: duplicate entry 'a'"),
    ("bad topic name", _set("kafka.topics", ["bad topic"]), "kafka.topics.0: invalid Kafka topic"),
    (
        "bad kind",
        _set("models.0.features.2.kind", "numerical"),
        "models.0.features.2.kind: Input should be 'numeric' or 'categorical'",
    ),
    (
        "duplicate feature",
        _set("models.0.features.2.name", "amount"),
        "models.0.features.2.name: duplicate feature name 'amount'",
    ),
    (
        "psi_critical below its warning",
        _set("models.0.features.1.psi_critical", 0.15),
        "models.0.features.1.psi_critical: must be at least the PSI warning threshold (0.2)",
    ),
    (
        "psi_critical below default warning",
        _set("models.0.features.0.psi_critical", 0.05),
        "models.0.features.0.psi_critical: must be at least the PSI warning threshold (0.1)",
    ),
    (
        "threshold warning above its critical",
        _set("models.0.features.0.thresholds", {"psi": {"warning": 0.5, "critical": 0.3}}),
        "models.0.features.0.thresholds.psi.warning: must not exceed the critical threshold",
    ),
    (
        "feature warning above the model's critical",
        _models_psi({"critical": 0.3}, {"warning": 0.4}),
        "models.0.features.0.thresholds.psi.warning: must not exceed the PSI critical "
        "threshold (0.3)",
    ),
    (
        "model warning above the default critical",
        _models_psi({"warning": 0.3}, None),
        "models.0.thresholds.psi.warning: must not exceed the PSI critical threshold (0.25)",
    ),
    (
        "both spellings of a PSI band",
        _set("models.0.features.1.thresholds", {"psi": {"warning": 0.2}}),
        "models.0.features.1.psi_warning: set either psi_warning or thresholds.psi.warning",
    ),
    (
        "ratio threshold above 1",
        _set("models.0.features.0.thresholds", {"out_of_range_ratio": {"warning": 1.5}}),
        "models.0.features.0.thresholds.out_of_range_ratio.warning: Input should be less than "
        "or equal to 1",
    ),
    (
        "negative ratio threshold on the model",
        _set("models.0.thresholds", {"missing_ratio_change": {"decision": -0.1}}),
        "models.0.thresholds.missing_ratio_change.decision: Input should be greater than or "
        "equal to 0",
    ),
    (
        "KS floor above 1",
        _set("models.0.thresholds", {"ks": {"decision": 2}}),
        "models.0.thresholds.ks.decision: Input should be less than or equal to 1",
    ),
    (
        "p-value threshold zero",
        _set("models.0.features.3.thresholds", {"new_category_pvalue": {"warning": 0}}),
        "models.0.features.3.thresholds.new_category_pvalue.warning: Input should be greater "
        "than 0",
    ),
    (
        "unknown signal",
        _set("models.0.features.0.thresholds", {"wasserstein": {"warning": 0.1}}),
        "models.0.features.0.thresholds.wasserstein: unknown signal (known: psi, ks, tvd, "
        "missing_ratio_change, out_of_range_ratio, unseen_category_ratio, new_category_pvalue)",
    ),
    (
        "unknown level",
        _set("models.0.thresholds", {"ks": {"warning": 0.2}}),
        "models.0.thresholds.ks.warning: unknown level (allowed: critical, decision)",
    ),
    (
        "threshold of the other kind",
        _set("models.0.features.0.thresholds", {"unseen_category_ratio": {"warning": 0.1}}),
        "models.0.features.0.thresholds.unseen_category_ratio.warning: does not apply to a "
        "numeric feature",
    ),
    (
        "infinite PSI band",
        _set("models.0.thresholds", {"psi": {"critical": float("inf")}}),
        "models.0.thresholds.psi.critical: Input should be a finite number",
    ),
    ("bad duration", _set("evaluation.interval", "15x"), "evaluation.interval: invalid duration"),
    ("zero duration", _set("evaluation.interval", "0s"), "evaluation.interval: Input should be"),
    ("bool duration", _set("state.checkpoint_interval", True), "state.checkpoint_interval: "),
    (
        "negative lateness",
        _set("window.allowed_lateness", -1),
        "window.allowed_lateness: Input should be greater than or equal to 0",
    ),
    (
        "window not a multiple of bucket",
        _set("window", {"bucket": "1m", "length": "90s"}),
        "window.length: must be a whole multiple of bucket",
    ),
    (
        "window with one bucket",
        _set("window", {"bucket": "1h", "length": "1h"}),
        "window.length: gives 1 buckets",
    ),
    (
        "window with too many buckets",
        _set("window", {"bucket": "1s", "length": "7d"}),
        "window.length: gives 604800 buckets",
    ),
    ("SASL without password", _sasl_without_password, "kafka.sasl_password: required when"),
    (
        "heartbeat not below session timeout",
        _set("kafka.heartbeat_interval_ms", 10_000),
        "kafka.heartbeat_interval_ms: must be lower than session_timeout_ms",
    ),
    ("bad security protocol", _set("kafka.security_protocol", "TLS"), "kafka.security_protocol: "),
    ("bad sasl mechanism", _set("kafka.sasl_mechanism", "GSSAPI"), "kafka.sasl_mechanism: "),
    (
        "missing TLS file",
        _set("kafka.ssl_cafile", "/nonexistent/ca.pem"),
        "kafka.ssl_cafile: file not found",
    ),
    ("request timeout too low", _set("kafka.request_timeout_ms", 400), "kafka.request_timeout_ms"),
    ("max_poll_records zero", _set("kafka.max_poll_records", 0), "kafka.max_poll_records: "),
    (
        "key typo in section",
        _set("kafka.bootstrap_server", "x:9092"),
        "kafka.bootstrap_server: Extra inputs are not permitted",
    ),
    (
        "key typo at top level",
        _set("evalutaion", {"interval": "5s"}),
        "evalutaion: Extra inputs are not permitted",
    ),
    (
        "key typo in feature",
        _set("models.0.features.0.psi_warn", 0.1),
        "models.0.features.0.psi_warn: Extra inputs are not permitted",
    ),
    ("negative port", _set("http.port", -1), "http.port: Input should be greater than or equal"),
    ("port too high", _set("http.port", 70_000), "http.port: Input should be less than or equal"),
    (
        "file mode without path",
        _set("models.0.reference", {"mode": "file"}),
        "models.0.reference.path: required when mode is file",
    ),
    ("bad reference mode", _set("models.0.reference.mode", "static"), "models.0.reference.mode: "),
    (
        "warmup too small",
        _set("models.0.reference.warmup_events", 50),
        "models.0.reference.warmup_events: ",
    ),
    (
        "rolling lag overlaps window",
        _rolling("30m", "1h"),
        "models.0.reference.lag: must be at least window.length",
    ),
    (
        "rolling length not whole buckets",
        _rolling("2h", "90s"),
        "models.0.reference.length: must be a whole multiple of window.bucket",
    ),
    ("bad correction", _set("evaluation.correction", "holm"), "evaluation.correction: "),
    ("fdr_q zero", _set("evaluation.fdr_q", 0), "evaluation.fdr_q: Input should be greater than 0"),
    ("fdr_q one", _set("evaluation.fdr_q", 1), "evaluation.fdr_q: Input should be less than 1"),
    ("min_samples too small", _set("evaluation.min_samples", 5), "evaluation.min_samples: "),
    ("missing_floor above 1", _set("evaluation.missing_floor", 1.5), "evaluation.missing_floor: "),
    ("bad model name", _set("models.0.name", "fraud model"), "models.0.name: String should match"),
    ("duplicate model name", _duplicate_model, "models.1.name: duplicate model name 'fraud'"),
    (
        "model topic not consumed",
        _set("models.0.topics", ["elsewhere"]),
        "models.0.topics: 'elsewhere' is not in kafka.topics",
    ),
    (
        "unknown default model",
        _set("event.default_model", "churn"),
        "event.default_model: 'churn' is not a configured model",
    ),
    (
        "top_k on a numeric feature",
        _set("models.0.features.0.top_k", 5),
        "models.0.features.0.top_k: applies to categorical features only",
    ),
    ("top_k zero", _set("models.0.features.3.top_k", 0), "models.0.features.3.top_k: "),
    ("max_bins too small", _set("models.0.max_bins", 1), "models.0.max_bins: "),
    (
        "bad export_distributions",
        _set("models.0.export_distributions", "some"),
        "models.0.export_distributions: Input should be 'all', 'drifting' or 'none'",
    ),
    (
        "negative export_distributions_top",
        _set("models.0.export_distributions_top", -1),
        "models.0.export_distributions_top: ",
    ),
    (
        "zero export_distributions_limit",
        _set("models.0.export_distributions_limit", 0),
        "models.0.export_distributions_limit: ",
    ),
    ("no features", _set("models.0.features", []), "models.0.features: needs at least 1"),
    ("no models", _set("models", []), "models: needs at least 1 item"),
    ("missing models", _delete("models"), "models: Field required"),
    ("feature not a mapping", _set("models.0.features.1", "age"), "models.0.features.1: "),
    ("section not a mapping", _set("http", "0.0.0.0:9108"), "http: should be a mapping"),
    ("models not a list", _set("models", {"name": "fraud"}), "models: should be a list"),
    ("bad log level", _set("log.level", "verbose"), "log.level: "),
    ("bad log format", _set("log.format", "xml"), "log.format: "),
    ("negative sample rate", _set("log.sample_rejects_per_minute", -1), "log.sample_rejects"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_invalid_config_names_the_dotted_key(
    tmp_path: Path, mutate: Callable[[Config], None], expected: str
) -> None:
    """Each invalid config raises ConfigError whose message names the offending dotted key."""
    cfg = _base()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, cfg)
    message = str(info.value)
    assert expected in message, message
    assert message.startswith("invalid configuration in ")


def test_several_errors_are_all_listed(tmp_path: Path) -> None:
    """Independent mistakes in different sections appear together, one line each."""
    cfg = _base()
    cfg["http"] = {"port": -1}
    cfg["evaluation"] = {"fdr_q": 2}
    cfg["models"][0]["features"][0]["kind"] = "text"
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, cfg)
    message = str(info.value)
    assert ", 3 errors:" in message
    for key in ("http.port: ", "evaluation.fdr_q: ", "models.0.features.0.kind: "):
        assert sum(line.strip().startswith(key) for line in message.splitlines()) == 1


def test_valid_tls_files_are_accepted(tmp_path: Path) -> None:
    """Existing TLS files pass validation and are passed on as strings."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    cfg = _base()
    cfg["kafka"].update(security_protocol="SSL", ssl_cafile=str(ca))
    kwargs = _load(tmp_path, cfg).kafka.consumer_kwargs()
    assert kwargs["ssl_cafile"] == str(ca)
    assert kwargs["security_protocol"] == "SSL"


# ------------------------------------------------------------------------------------------
# File-level errors
# ------------------------------------------------------------------------------------------


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported as such."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(path, {})


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    """A YAML syntax error names the line and column of the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text("kafka:\n  topics: [a, b\nmodels: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    message = str(info.value)
    assert "YAML syntax error at line 3" in message
    assert str(path) in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    """A file whose top level is not a mapping is rejected with its actual type."""
    path = tmp_path / "top.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"top level must be a mapping.*not {kind}"):
        load_settings(path, {})


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    """A key repeated in one mapping is an error, not a silent override."""
    path = tmp_path / "dup.yaml"
    path.write_text(
        "kafka: {topics: [a]}\nhttp:\n  port: 1\n  port: 2\nmodels: []\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"line 4.*duplicate key 'port'"):
        load_settings(path, {})


# ------------------------------------------------------------------------------------------
# Environment overrides
# ------------------------------------------------------------------------------------------


def test_env_overrides_file_values(tmp_path: Path) -> None:
    """DRIFTMON_* variables beat the file, and untouched file values survive the merge."""
    env = {
        "DRIFTMON_KAFKA__BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
        "DRIFTMON_EVALUATION__INTERVAL": "5s",
        "DRIFTMON_HTTP__PORT": "0",
    }
    s = _load(tmp_path, _base(), env)
    assert s.kafka.bootstrap_servers == ("b1:9093", "b2:9093")
    assert s.kafka.topics == ("features", "other")
    assert s.evaluation.interval == 5.0
    assert s.http.port == 0
    assert s.models[0].name == "fraud"


def test_env_accepts_json_lists_and_null(tmp_path: Path) -> None:
    """Lists may be JSON arrays; the string null clears an optional value."""
    env = {
        "DRIFTMON_KAFKA__TOPICS": '["features"]',
        "DRIFTMON_EVENT__TIMESTAMP_FIELD": "null",
        "DRIFTMON_LOG__LEVEL": "DEBUG",
    }
    s = _load(tmp_path, _base(), env)
    assert s.kafka.topics == ("features",)
    assert s.event.timestamp_field is None
    assert s.log.level == "debug"


def test_env_alone_can_configure_everything() -> None:
    """With no file, a JSON models list and the topics come from the environment."""
    models = [{"name": "m1", "features": [{"name": "x", "kind": "numeric"}]}]
    env = {"DRIFTMON_KAFKA__TOPICS": "t1", "DRIFTMON_MODELS": json.dumps(models)}
    s = load_settings(None, env)
    assert s.kafka.topics == ("t1",)
    assert s.models[0].feature_specs(s.evaluation) == (FeatureSpec("x", FeatureKind.NUMERIC),)


def test_env_errors_are_config_errors(tmp_path: Path) -> None:
    """A bad env value or an unknown nested env key is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=r"kafka\.typo: Extra inputs"):
        _load(tmp_path, _base(), {"DRIFTMON_KAFKA__TYPO": "1"})
    with pytest.raises(ConfigError, match=r"evaluation\.interval: invalid duration"):
        _load(tmp_path, _base(), {"DRIFTMON_EVALUATION__INTERVAL": "soon"})
    with pytest.raises(ConfigError, match='field "models"'):
        _load(tmp_path, _base(), {"DRIFTMON_MODELS": "not json"})


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an env mapping, os.environ is read; with one, os.environ is ignored."""
    monkeypatch.setenv("DRIFTMON_HTTP__PORT", "9200")
    path = _write(tmp_path, _base())
    assert load_settings(path).http.port == 9200
    assert load_settings(path, {}).http.port == 9108


def test_init_kwargs_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructed directly, keyword arguments beat the environment, which beats defaults."""
    monkeypatch.setenv("DRIFTMON_HTTP__PORT", "9200")
    monkeypatch.setenv("DRIFTMON_LOG__FORMAT", "json")
    s = Settings(
        kafka={"topics": ["t"]},
        models=[{"name": "m", "features": [{"name": "x", "kind": "numeric"}]}],
        http={"port": 1},
    )
    assert s.http.port == 1
    assert s.log.format == "json"


# ------------------------------------------------------------------------------------------
# Secrets
# ------------------------------------------------------------------------------------------


def test_secrets_never_in_validation_errors(tmp_path: Path) -> None:
    """A config carrying secrets and an error elsewhere does not echo the secrets."""
    cfg = _sasl(_base(), ssl_password=SSL_SECRET)
    cfg["http"] = {"port": "not a port"}
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, cfg)
    message = str(info.value)
    assert "http.port" in message
    assert SECRET not in message
    assert SSL_SECRET not in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sasl_password", [SECRET]),
        ("sasl_password", {"value": SECRET}),
        ("sasl_pasword", SECRET),
        ("ssl_password", [SECRET]),
    ],
)
def test_bad_secret_value_is_not_echoed(tmp_path: Path, key: str, value: object) -> None:
    """A secret of the wrong type, or under a misspelt key, is reported by key only."""
    cfg = _base()
    cfg["kafka"][key] = value
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, cfg)
    message = str(info.value)
    assert f"kafka.{key}" in message
    assert SECRET not in message
    assert SECRET not in repr(info.value)


def test_secret_in_env_error_is_not_echoed(tmp_path: Path) -> None:
    """A secret passed through the environment does not appear in an error message."""
    env = {"DRIFTMON_KAFKA__SASL_PASSWORD": SECRET, "DRIFTMON_KAFKA__SASL_PASSWROD": SECRET}
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, _base(), env)
    assert "kafka.sasl_passwrod" in str(info.value)
    assert SECRET not in str(info.value)


def test_yaml_syntax_error_does_not_quote_the_line(tmp_path: Path) -> None:
    """A syntax error on the line holding a password reports its position, not its text."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        f'kafka:\n  topics: [a]\n  sasl_password: "{SECRET}\n  x: [\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert "YAML syntax error" in str(info.value)
    assert SECRET not in str(info.value)


def test_secrets_hidden_in_repr_and_redacted_dump(tmp_path: Path) -> None:
    """repr/str of the settings and the redacted dump show asterisks, never the secrets."""
    s = _load(tmp_path, _sasl(_base(), ssl_password=SSL_SECRET))
    for text in (repr(s), str(s), repr(s.kafka)):
        assert SECRET not in text
        assert SSL_SECRET not in text
    dump = redacted_dump(s)
    text = json.dumps(dump)
    assert SECRET not in text
    assert SSL_SECRET not in text
    assert dump["kafka"]["sasl_password"] == "**********"
    assert dump["kafka"]["ssl_password"] == "**********"
    assert dump["kafka"]["sasl_username"] == "driftmon"


def test_redacted_dump_is_json_data_that_reloads(tmp_path: Path) -> None:
    """The dump of a secret-free config is plain JSON data that loads back to equal settings."""
    cfg = _base()
    cfg["state"] = {"dir": str(tmp_path / "st"), "checkpoint_interval": "1m"}
    s = _load(tmp_path, cfg)
    dump = redacted_dump(s)
    assert json.loads(json.dumps(dump)) == dump
    assert dump["state"] == {
        "backend": "file",
        "dir": str(tmp_path / "st"),
        "checkpoint_interval": 60.0,
        "topic": "driftmon.state",
        "publish_interval": 5.0,
        "snapshot_interval": 300.0,
    }
    assert dump["models"][0]["features"][3]["kind"] == "categorical"
    reloaded = load_settings(_write(tmp_path, dump, "dump.yaml"), {})
    assert redacted_dump(reloaded) == dump
    assert reloaded.models[0].feature_specs(reloaded.evaluation) == s.models[0].feature_specs(
        s.evaluation
    )
    assert reloaded.model_dump(exclude={"models"}) == s.model_dump(exclude={"models"})


# ------------------------------------------------------------------------------------------
# kafka-python keyword arguments
# ------------------------------------------------------------------------------------------


def test_consumer_kwargs_sasl_ssl(tmp_path: Path) -> None:
    """The SASL_SSL case maps every key to kafka-python's names and reveals the password."""
    ca = tmp_path / "ca.pem"
    ca.write_text("ca", encoding="utf-8")
    cfg = _sasl(_base(), ssl_cafile=str(ca), ssl_check_hostname=False)
    cfg["kafka"].update(
        bootstrap_servers=["b1:9093", "b2:9093"],
        group_id="g1",
        client_id="c1",
        dead_letter_topic="dlq",
        auto_offset_reset="latest",
        max_poll_records=100,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=3000,
    )
    s = _load(tmp_path, cfg)
    assert s.kafka.consumer_kwargs() == {
        "bootstrap_servers": ["b1:9093", "b2:9093"],
        "client_id": "c1",
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(ca),
        "ssl_check_hostname": False,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "driftmon",
        "sasl_plain_password": SECRET,
        "request_timeout_ms": 30_500,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 10_000,
        "group_id": "g1",
        "auto_offset_reset": "latest",
        "enable_auto_commit": False,
        "max_poll_records": 100,
        "fetch_max_bytes": 16_777_216,
        "max_partition_fetch_bytes": 1_048_576,
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
        "max_poll_interval_ms": 3000,
    }


def test_client_kwargs_omit_unset_values(tmp_path: Path) -> None:
    """PLAINTEXT kwargs carry no None values and no TLS/SASL keys; producers get no group keys."""
    s = _load(tmp_path, _base())
    consumer = s.kafka.consumer_kwargs()
    assert None not in consumer.values()
    assert not [k for k in consumer if k.startswith(("ssl_cafile", "sasl_", "ssl_password"))]
    client = s.kafka.client_kwargs()
    assert "group_id" not in client
    assert "enable_auto_commit" not in client
    assert client.items() <= consumer.items()


def test_distribution_policy_defaults_and_values(tmp_path: Path) -> None:
    """export_distributions defaults to drifting, top 10, limit 20; set values reach the policy."""
    cfg = _base()
    assert _load(tmp_path, cfg).models[0].distribution_policy() == DistributionPolicy()
    _set("models.0.export_distributions", "all")(cfg)
    _set("models.0.export_distributions_top", 3)(cfg)
    policy = _load(tmp_path, cfg).models[0].distribution_policy()
    assert policy == DistributionPolicy(DistributionExport.ALL, 3, 20)


def test_binning_defaults_are_one_pair_of_constants() -> None:
    """Config, `reference fit` and the fitting functions default to the same top-K and bins."""
    import inspect

    from monitor.cli import build_parser
    from monitor.config import ModelSettings
    from monitor.model import DEFAULT_MAX_BINS
    from monitor.model import DEFAULT_TOP_K as MODEL_TOP_K
    from monitor.reference import fit_categorical, fit_numeric

    args = build_parser().parse_args(["reference", "fit", "data.csv", "--model", "m", "-o", "x"])
    assert args.top_k == DEFAULT_TOP_K == MODEL_TOP_K
    assert args.max_bins == DEFAULT_MAX_BINS
    assert ModelSettings.model_fields["max_bins"].default == DEFAULT_MAX_BINS
    assert inspect.signature(fit_categorical).parameters["top_k"].default == DEFAULT_TOP_K
    assert inspect.signature(fit_numeric).parameters["max_bins"].default == DEFAULT_MAX_BINS

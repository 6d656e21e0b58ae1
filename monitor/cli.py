"""The `driftmon` command line: composition root and exit codes.

Exit codes: 0 clean stop, 1 fatal runtime error, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from monitor import __version__
from monitor.config import (
    KafkaSettings,
    ModelSettings,
    Settings,
    check_key_name,
    check_topic,
    kafka_settings,
    load_settings,
    redacted_dump,
    segment_key,
)
from monitor.errors import ConfigError, MonitorError, ReferenceDataError, SourceError
from monitor.model import (
    DEFAULT_MAX_BINS,
    DEFAULT_TOP_K,
    RECONSTRUCTION_FEATURE,
    FeatureKind,
    FeatureSpec,
)
from monitor.segment_slices import DEFAULT_MAX_SEGMENTS, MAX_SEGMENTS, OTHER_SEGMENT

if TYPE_CHECKING:
    from monitor.http import WebConfig
    from monitor.tools.statusview import Access

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

DESCRIPTION = """\
driftmon watches feature events flowing through Kafka and tells you when the data a model
sees drifts away from its reference: PSI, Kolmogorov-Smirnov, chi-square, missing-value,
out-of-range and new-category signals per feature, with multiple-testing control, exported
as Prometheus metrics.
"""

EPILOG = """\
commands:
  run            the daemon (consume, evaluate, export /metrics /livez /readyz /status)
  reference fit  build a reference profile from CSV / JSON Lines / Parquet
  simulate       produce synthetic feature events with named drift scenarios
  status         show the current drift per model and feature as a table
  check-config   validate a config file and print the effective configuration

exit codes: 0 clean stop, 1 fatal runtime error, 2 bad usage or configuration.
Configuration: YAML file (--config) with DRIFTMON_ environment overrides, nested with __
(e.g. DRIFTMON_KAFKA__BOOTSTRAP_SERVERS=broker:9092).
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line hint on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (each subcommand's --help is its manual)."""
    parser = _Parser(
        prog="driftmon",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"driftmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the drift monitor daemon until SIGTERM/SIGINT. A first signal "
        "finishes the batch in hand, evaluates, checkpoints, commits offsets and exits 0 "
        "(within 10 s); a second signal exits at once. SIGHUP re-reads --config: models and "
        "evaluation apply at once (unchanged features keep their state), an invalid file or a "
        "change of kafka, event, window, http, state, log or references is refused and the "
        "running configuration kept.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", "-c", type=Path, required=True, help="YAML config file")
    run.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override log.level"
    )
    run.add_argument(
        "--log-format", choices=["auto", "json", "console"], help="override log.format"
    )
    _add_web_config_flag(run)

    check = sub.add_parser(
        "check-config",
        help="validate a config and print the effective configuration",
        description="Validate a config file (with DRIFTMON_ environment overrides applied) and "
        "print the effective configuration as JSON, secrets redacted. Exit 0 if valid, 2 if not.",
    )
    check.add_argument("--config", "-c", type=Path, required=True, help="YAML config file")
    _add_web_config_flag(check)

    reference = sub.add_parser("reference", help="reference profiles (see: reference fit --help)")
    ref_sub = reference.add_subparsers(
        dest="reference_command", metavar="ACTION", parser_class=_Parser
    )
    fit = ref_sub.add_parser(
        "fit",
        help="build a reference profile from a data file",
        description="Build a reference profile (bin edges, counts, top categories, metadata and a "
        "content-hash reference_id) from a CSV, JSON Lines or Parquet file. Features come from "
        "--features, or from a model in --config. Point a model's reference.path at the output "
        "(reference.mode: file); the daemon picks up a changed file without a restart.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  driftmon reference fit train.csv --model fraud "
        "--features amount:numeric,country:categorical -o refs/fraud.json",
    )
    fit.add_argument(
        "data", type=Path, help="CSV, JSON Lines (.jsonl/.ndjson) or Parquet file (.gz ok for text)"
    )
    fit.add_argument(
        "--features",
        help="comma-separated NAME:KIND (KIND numeric|categorical), or auto: discover them "
        "from the file (the daemon's features: auto rules)",
    )
    fit.add_argument(
        "--max-features",
        type=int,
        default=1000,
        help="with --features auto: keep at most this many, the most frequent (default 1000)",
    )
    fit.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="with --features auto: never a feature when the name matches (repeatable)",
    )
    fit.add_argument("--config", "-c", type=Path, help="take the model's features from this config")
    fit.add_argument(
        "--model",
        required=True,
        type=_model_name,
        help="model name recorded in the profile: 1 to 64 of A-Z a-z 0-9 _ . : - (as in a config)",
    )
    fit.add_argument(
        "--model-version",
        default="",
        type=_model_version,
        help="model version recorded in the profile (at most 128 characters)",
    )
    fit.add_argument(
        "--format",
        choices=["csv", "jsonl", "parquet"],
        help="input format (default: from the suffix)",
    )
    fit.add_argument(
        "--features-path",
        default="",
        help='for JSON Lines events: object holding the features (e.g. "features")',
    )
    fit.add_argument(
        "--max-bins",
        type=int,
        default=DEFAULT_MAX_BINS,
        help=f"numeric bins at reference quantiles (default {DEFAULT_MAX_BINS})",
    )
    fit.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"categories kept per categorical feature (default {DEFAULT_TOP_K})",
    )
    fit.add_argument(
        "--segment-by",
        help="column (key of the features object) whose values split the reference into "
        "segments: the profile records each segment's slice (default: the model's segment_by "
        "with --config)",
    )
    fit.add_argument(
        "--max-segments",
        type=_max_segments,
        default=None,
        help=f"segments recorded: the most frequent values, 1 to {MAX_SEGMENTS} (default "
        f"{DEFAULT_MAX_SEGMENTS}, or the model's)",
    )
    fit.add_argument(
        "--output",
        "-o",
        type=_output_path,
        required=True,
        help="where to write the profile JSON: a regular file, replaced atomically (a symbolic "
        "link: its target is replaced, the link kept); an existing directory, device or FIFO "
        "is refused (exit 1)",
    )
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_registry_commands(ref_sub)

    sim = sub.add_parser(
        "simulate",
        help="produce synthetic events with drift scenarios",
        description="Produce synthetic feature events (the event format of the README) to a Kafka "
        "topic at a controlled rate. Scenarios: none, mean-shift, variance, new-category, "
        "missing-spike, outliers; the drift starts --drift-after seconds of event time in.",
    )
    sim.add_argument(
        "--config",
        "-c",
        type=Path,
        help="take the Kafka connection (bootstrap servers, TLS, SASL, with DRIFTMON_ "
        "environment overrides) and the default topic from this daemon config",
    )
    sim.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: the config's, else localhost:9092)"
    )
    sim.add_argument(
        "--topic", help="topic to produce to (default: the config's first topic, else features)"
    )
    sim.add_argument(
        "--security-protocol",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        help="as kafka.security_protocol",
    )
    sim.add_argument("--ssl-cafile", type=Path, help="CA bundle (PEM), as kafka.ssl_cafile")
    sim.add_argument(
        "--ssl-certfile", type=Path, help="client certificate (PEM), as kafka.ssl_certfile"
    )
    sim.add_argument("--ssl-keyfile", type=Path, help="client key (PEM), as kafka.ssl_keyfile")
    sim.add_argument(
        "--no-ssl-check-hostname",
        action="store_true",
        help="do not check the broker certificate's host name (kafka.ssl_check_hostname false)",
    )
    sim.add_argument(
        "--sasl-mechanism",
        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        help="as kafka.sasl_mechanism; the password comes from DRIFTMON_KAFKA__SASL_PASSWORD",
    )
    sim.add_argument("--sasl-username", help="as kafka.sasl_username")
    sim.add_argument("--models", default="fraud", help="comma-separated model names")
    sim.add_argument("--drift", default="none", help="scenario name")
    sim.add_argument("--drift-models", help="models that get the scenario (default: all)")
    sim.add_argument(
        "--drift-after", type=float, default=60.0, help="seconds before the drift starts"
    )
    sim.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="events per second in total (0 = as fast as possible)",
    )
    sim.add_argument("--events", type=int, help="stop after this many events")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument("--seed", type=int, default=42, help="random seed")

    status = sub.add_parser(
        "status",
        help="show current drift as a table",
        description="Read /status from a running daemon and print a table per model: drift "
        "decision and reasons, PSI, KS D, p- and q-values, missing and out-of-range ratios, "
        "window sample counts.",
    )
    status.add_argument("--url", default="http://127.0.0.1:9108", help="daemon base URL")
    status.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C"
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument(
        "--ca-file", type=Path, help="CA bundle that signs the daemon's certificate (https URLs)"
    )
    status.add_argument(
        "--cert-file", type=Path, help="client certificate, when the daemon requires one"
    )
    status.add_argument("--key-file", type=Path, help="private key of --cert-file")
    status.add_argument(
        "--user",
        help="basic auth user; the password comes from $DRIFTMON_STATUS_PASSWORD or "
        "--password-file",
    )
    status.add_argument(
        "--password-file", type=Path, help="file whose first line is the --user password"
    )
    status.add_argument(
        "--feature",
        metavar="NAME",
        help="show this feature's reference and current distributions as a text histogram",
    )
    return parser


def _add_web_config_flag(parser: argparse.ArgumentParser) -> None:
    """`--web.config.file FILE`, shared by run and check-config."""
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="TLS and basic auth for the HTTP server, in the Prometheus exporter toolkit "
        "format (overrides http.web_config_file)",
    )


def _add_registry_commands(ref_sub: argparse._SubParsersAction[_Parser]) -> None:
    """`reference push | list | show | activate | rollback` (the registry, docs/registry.md)."""
    config_help = "config file: kafka settings and references.topic"
    push = ref_sub.add_parser(
        "push",
        help="register a profile in the registry topic",
        description="Register a profile built by `reference fit` in the registry topic "
        "(references.topic), once per content hash; --activate also makes it the model's "
        "active reference on every daemon that follows the registry.",
    )
    push.add_argument("file", type=Path, help="profile JSON written by `reference fit`")
    push.add_argument("--activate", action="store_true", help="also activate it for its model")
    push.add_argument(
        "--prewarm",
        action="store_true",
        help="have the daemons count a shadow window in its bins, so activating it later "
        "starts from a full window (at most 2 per model)",
    )
    listing = ref_sub.add_parser("list", help="registered profiles, the active one marked")
    listing.add_argument("--model", help="only this model's profiles")
    show = ref_sub.add_parser("show", help="one registered profile and its model's history")
    show.add_argument("reference_id", help="id or unique prefix (with or without sha256:)")
    act = ref_sub.add_parser("activate", help="make a registered profile a model's reference")
    act.add_argument("reference_id", help="id or unique prefix (with or without sha256:)")
    act.add_argument("--model", required=True, help="the model to switch")
    back = ref_sub.add_parser("rollback", help="return a model to its previous reference")
    back.add_argument("--model", required=True, help="the model to roll back")
    for parser in (push, listing, show, act, back):
        parser.add_argument("--config", "-c", type=Path, required=True, help=config_help)
    for parser in (push, act, back):
        parser.add_argument(
            "--reason",
            default="",
            type=_reason,
            help="why (recorded in the history; at most 1,000 characters)",
        )


def _reason(text: str) -> str:
    """An activation's `--reason`: at most `registry.MAX_REASON_CHARS` characters."""
    from monitor.registry import MAX_REASON_CHARS

    if len(text) > MAX_REASON_CHARS:
        raise argparse.ArgumentTypeError(f"at most {MAX_REASON_CHARS} characters")
    return text


def _registry(args: argparse.Namespace) -> int:
    from monitor.tools.registry_cli import RegistryCommands, RequestError

    settings = load_settings(args.config)
    commands = RegistryCommands.from_settings(settings)
    try:
        action = args.reference_command
        if action == "push":
            commands.push(
                args.file, activate_it=args.activate, reason=args.reason, prewarm_it=args.prewarm
            )
        elif action == "list":
            commands.list_profiles(args.model)
        elif action == "show":
            commands.show(args.reference_id)
        elif action == "activate":
            commands.activate(args.model, args.reference_id, reason=args.reason)
        else:
            commands.rollback(args.model, reason=args.reason)
    except RequestError as exc:
        print(f"driftmon reference {args.reference_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, ReferenceDataError) as exc:
        print(f"driftmon reference {args.reference_command}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        commands.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `driftmon` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "reference" and args.reference_command == "fit":
            return _reference_fit(args)
        if args.command == "reference" and args.reference_command is not None:
            return _registry(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "status":
            return _status(args)
    except ConfigError as exc:
        print(f"driftmon: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _check_config(args: argparse.Namespace) -> int:
    settings = _with_web_config_flag(load_settings(args.config), args)
    _load_web_config(settings)
    print(json.dumps(redacted_dump(settings), indent=2, default=str))
    return EXIT_OK


def _with_web_config_flag(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with http.web_config_file replaced by --web.config.file when it is given."""
    if args.web_config_file is None:
        return settings
    http = settings.http.model_copy(update={"web_config_file": args.web_config_file})
    return settings.model_copy(update={"http": http})


def _load_web_config(settings: Settings) -> WebConfig | None:
    """The checked web config file (ConfigError naming the key when it is invalid)."""
    from monitor.http import load_web_config

    path = settings.http.web_config_file
    return None if path is None else load_web_config(path)


def _run(args: argparse.Namespace) -> int:
    settings = _with_web_config_flag(load_settings(args.config), args)
    web_config = _load_web_config(settings)
    from monitor.logconf import configure_logging

    configure_logging(args.log_level or settings.log.level, args.log_format or settings.log.format)
    log = structlog.get_logger("driftmon")

    def reread() -> Settings:
        new = _with_web_config_flag(load_settings(args.config), args)
        _load_web_config(new)
        return new

    try:
        return _serve(settings, web_config, log, reread)
    except MonitorError as exc:
        log.error("fatal", error=str(exc))
        return EXIT_RUNTIME


def _serve(
    settings: Settings,
    web_config: WebConfig | None,
    log: structlog.typing.FilteringBoundLogger,
    reread: Callable[[], Settings] | None = None,
) -> int:
    from monitor.compose import kafka_daemon
    from monitor.daemon import DaemonHealth, tune_garbage_collector
    from monitor.http import HttpServer

    wiring = kafka_daemon(settings, reread)
    daemon, collector = wiring.daemon, wiring.collector
    server = HttpServer(
        settings.http.host,
        settings.http.port,
        registry=wiring.registry,
        snapshot=lambda: collector.snapshot,
        health=DaemonHealth(daemon),
        web_config=web_config,
        metrics_public=settings.http.metrics_public,
    )
    signals = {"count": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            os._exit(EXIT_RUNTIME)
        log.info("signal received, shutting down", signal=signal.Signals(signum).name)
        daemon.request_stop()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        daemon.request_reload()  # the loop re-reads --config between two batches

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    daemon.start()
    tune_garbage_collector()
    try:
        server.start()
    except OSError as exc:
        log.error("cannot listen", host=settings.http.host, port=settings.http.port, error=str(exc))
        return EXIT_RUNTIME
    log.info(
        "serving",
        url=f"{server.url}/metrics",
        tls=web_config is not None and web_config.ssl_context is not None,
        basic_auth=web_config is not None and bool(web_config.users),
    )
    try:
        return daemon.run()
    finally:
        server.stop()


def _output_path(text: str) -> Path:
    """`reference fit --output`: a non-empty path (argparse's usage error, exit 2, if empty)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _model_name(text: str) -> str:
    """`reference fit --model`: a name a config's model can have (`^[A-Za-z0-9_.:-]{1,64}$`,
    monitor.config), else argparse's usage error (exit 2) quoting at most ~100 characters."""
    from monitor.config import MODEL_NAME_PATTERN
    from monitor.tools.profile_io import shorten

    if re.fullmatch(MODEL_NAME_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"{shorten(repr(text))} is not a model name (1 to 64 characters of A-Z a-z 0-9 _ . : -,"
            " as a model's name in a config)"
        )
    return text


def _model_version(text: str) -> str:
    """`reference fit --model-version`: at most `monitor.decode.MAX_VERSION_CHARS` (128)
    characters, the daemon's bound of a model_version, else argparse's usage error (exit 2)."""
    from monitor.decode import MAX_VERSION_CHARS

    if len(text) > MAX_VERSION_CHARS:
        raise argparse.ArgumentTypeError(
            f"longer than {MAX_VERSION_CHARS} characters ({len(text)} characters)"
        )
    return text


def _max_segments(text: str) -> int:
    """`reference fit --max-segments`: an integer from 1 to MAX_SEGMENTS, else argparse's
    usage error (exit 2) quoting at most ~100 characters."""
    from monitor.tools.profile_io import shorten

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {shorten(repr(text))}") from None
    if not 1 <= value <= MAX_SEGMENTS:
        raise argparse.ArgumentTypeError(
            f"must be between 1 and {MAX_SEGMENTS}, not {shorten(text.strip())}"
        )
    return value


def _parse_features(text: str) -> tuple[FeatureSpec, ...]:
    """`--features NAME:KIND,...`; ConfigError quoting at most ~100 characters of a name."""
    from monitor.tools.profile_io import shorten

    specs: list[FeatureSpec] = []
    for item in text.split(","):
        name, sep, kind = item.strip().rpartition(":")
        if not sep or not name:
            raise ConfigError(f"--features: {shorten(repr(item))} is not NAME:KIND")
        try:
            check_key_name(name)
        except ValueError as exc:
            message = str(exc).replace(repr(name), shorten(repr(name)))
            raise ConfigError(f"--features: {message}") from None
        try:
            specs.append(FeatureSpec(name, FeatureKind(kind)))
        except ValueError as exc:
            raise ConfigError(
                f"--features: kind of {shorten(repr(name))} must be numeric or categorical, "
                f"not {shorten(repr(kind))}"
            ) from exc
    return tuple(specs)


def _fit_joint(model: ModelSettings | None, numeric: dict[str, Any]) -> dict[str, object] | None:
    """The multivariate references of `reference fit --config` for the model's groups.

    The correlation group's quantiles and sums; the reconstruction group's PCA basis, whose
    errors on the data become the virtual feature's column in `numeric`. ReferenceDataError
    when a group cannot be fitted (a feature without a finite value).
    """
    import numpy as np

    from monitor.correlation import fit_reference
    from monitor.reconstruction import VIRTUAL_FEATURE, fit_basis

    joint: dict[str, object] = {}
    if model is None:
        return None
    correlation = model.correlation_group() if model.correlation.enabled else None
    reconstruction = model.reconstruction_group() if model.reconstruction.enabled else None
    try:
        if correlation is not None:
            values = np.vstack([numeric[name] for name in correlation])
            joint["correlation"] = fit_reference(correlation, values).to_json()
        if reconstruction is not None:
            values = np.vstack([numeric[name] for name in reconstruction])
            basis = fit_basis(reconstruction, values, model.reconstruction.variance)
            joint["reconstruction"] = basis.to_json()
            numeric[VIRTUAL_FEATURE] = basis.errors(values)
    except ValueError as exc:
        raise ReferenceDataError(f"multivariate reference: {exc}") from exc
    return joint or None


def _leave_out_sparse(
    specs: Sequence[FeatureSpec], numeric: Mapping[str, Any], min_values: int
) -> tuple[FeatureSpec, ...]:
    """`specs` without the numeric features of fewer than `min_values` finite values in
    `numeric` (`--features auto`: discovered, yet too sparse to fit), each left out with one
    line on stderr."""
    from monitor.tools.profile_io import finite_shortfalls, shorten

    sparse = finite_shortfalls(
        {s.name: numeric[s.name] for s in specs if s.kind is FeatureKind.NUMERIC}, min_values
    )
    for name, finite in sparse.items():
        print(
            f"driftmon reference fit: feature {shorten(repr(name))} left out: {finite} finite "
            f"values, at least {min_values} are needed",
            file=sys.stderr,
        )
    return tuple(s for s in specs if s.name not in sparse)


def _reference_fit(args: argparse.Namespace) -> int:
    """Exit 2 when the data cannot make a reference (a feature without a usable value, or a
    numeric one with fewer than MIN_NUMERIC_VALUES finite values); 1 when the data file
    cannot be read (missing, malformed, a column absent, a CSV header naming a column twice)
    or the output cannot be written.

    With `--features auto` a discovered numeric feature of fewer than MIN_NUMERIC_VALUES
    finite values is left out instead (one stderr line each; exit 2 if none is left). A
    profile is written (exit 0) with one stderr warning per feature whose invalid values
    exceed 5 % of its rows (`profile_io.invalid_warnings`).
    """
    from monitor.reference import MIN_NUMERIC_VALUES, fit_profile, profile_to_json
    from monitor.tools.profile_io import (
        MAX_LINE_BYTES,
        ProfileInputError,
        ProfileOutputError,
        invalid_warnings,
        output_target,
        read_columns,
        with_segments,
        write_output,
    )

    try:
        output_target(args.output)
    except ProfileOutputError as exc:
        print(f"driftmon reference fit: cannot write {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    model: ModelSettings | None = None
    max_line_bytes = MAX_LINE_BYTES
    segment_by, max_segments = args.segment_by, args.max_segments
    if args.features == "auto":
        from monitor.tools.profile_discover import discover_features

        if not 1 <= args.max_features <= 10_000:
            raise ConfigError("--max-features: must be between 1 and 10000")
        try:
            specs = discover_features(
                args.data,
                max_features=args.max_features,
                exclude=args.exclude,
                fmt=args.format,
                features_path=args.features_path,
                max_line_bytes=max_line_bytes,
            )
        except (ProfileInputError, OSError, ValueError) as exc:
            print(f"driftmon reference fit: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        top_k = {s.name: args.top_k for s in specs}
        max_bins = args.max_bins
        n_numeric = sum(1 for s in specs if s.kind is FeatureKind.NUMERIC)
        print(f"discovered {n_numeric} numeric and {len(specs) - n_numeric} categorical features")
    elif args.features:
        specs = _parse_features(args.features)
        top_k = {s.name: args.top_k for s in specs}
        max_bins = args.max_bins
    elif args.config:
        settings = load_settings(args.config)
        model = next((m for m in settings.models if m.name == args.model), None)
        if model is None:
            raise ConfigError(f"--model: {args.model!r} is not a model of {args.config}")
        specs = model.feature_specs(settings.evaluation)
        max_line_bytes = settings.kafka.max_message_bytes
        top_k = {f.name: f.top_k or args.top_k for f in model.features}
        max_bins = model.max_bins
        if segment_by is None and model.segment_by is not None:
            segment_by = segment_key(model.segment_by, settings.event.features_path)
            if max_segments is None:
                max_segments = model.max_segments
    else:
        raise ConfigError("reference fit: give --features NAME:KIND,... or --config with --model")
    if not 2 <= max_bins <= 1024:
        raise ConfigError("--max-bins: must be between 2 and 1024")
    if not 1 <= args.top_k <= 1000:
        raise ConfigError("--top-k: must be between 1 and 1000")
    if max_segments is None:
        max_segments = DEFAULT_MAX_SEGMENTS
    if not 1 <= max_segments <= MAX_SEGMENTS:
        raise ConfigError(f"--max-segments: must be between 1 and {MAX_SEGMENTS}")
    wanted = [s.name for s in specs if s.kind is FeatureKind.CATEGORICAL]
    if segment_by is not None and segment_by not in wanted:
        if segment_by in {s.name for s in specs}:
            raise ConfigError(f"--segment-by: {segment_by!r} is a numeric feature")
        wanted.append(segment_by)
    try:
        numeric, categorical, rows = read_columns(
            args.data,
            [
                s.name
                for s in specs
                if s.kind is FeatureKind.NUMERIC and s.name != RECONSTRUCTION_FEATURE
            ],
            wanted,
            fmt=args.format,
            features_path=args.features_path,
            progress=not args.no_progress,
            max_line_bytes=max_line_bytes,
        )
    except (ProfileInputError, OSError, ValueError) as exc:
        print(f"driftmon reference fit: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.features == "auto":
        specs = _leave_out_sparse(specs, numeric, MIN_NUMERIC_VALUES)
        if not specs:
            print(
                f"driftmon reference fit: {args.data}: no discovered feature is left to fit",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        numeric = dict(numeric)
        joint = _fit_joint(model, numeric)
        profile = fit_profile(
            args.model,
            specs,
            numeric,
            categorical,
            max_bins=max_bins,
            top_k=top_k,
            min_values=MIN_NUMERIC_VALUES,
            model_version=args.model_version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=str(args.data),
            joint=joint,
        )
        if segment_by is not None:
            profile = with_segments(profile, segment_by, max_segments, numeric, categorical)
    except ReferenceDataError as exc:
        print(f"driftmon reference fit: {args.data}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in invalid_warnings(profile):
        print(f"driftmon reference fit: {line}", file=sys.stderr)
    try:
        write_output(args.output, profile_to_json(profile))
    except ProfileOutputError as exc:
        print(f"driftmon reference fit: cannot write {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except OSError as exc:
        print(
            f"driftmon reference fit: cannot write {args.output}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    print(
        f"wrote {args.output}: {len(profile.features)} features from {rows} rows, "
        f"reference_id {profile.reference_id}"
        + (
            f", {len(profile.segments.names)} segments of {segment_by!r} + {OTHER_SEGMENT}"
            if profile.segments is not None
            else ""
        )
    )
    return EXIT_OK


SIMULATE_PASSWORD_ENV = {
    "sasl_password": "DRIFTMON_KAFKA__SASL_PASSWORD",
    "ssl_password": "DRIFTMON_KAFKA__SSL_PASSWORD",
}


def simulate_kafka(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[KafkaSettings, str]:
    """The Kafka client settings and the topic of `driftmon simulate`.

    Start from `--config`'s `kafka:` section (environment overrides applied) or from a
    PLAINTEXT client; flags override it; without `--config` the passwords come from the
    daemon's own variables (SIMULATE_PASSWORD_ENV). ConfigError naming the key when invalid.
    """
    base = load_settings(args.config, environ).kafka if args.config else None
    values: dict[str, object] = {}
    if args.bootstrap:
        values["bootstrap_servers"] = args.bootstrap
    flags = {
        "security_protocol": args.security_protocol,
        "ssl_cafile": args.ssl_cafile,
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
        "sasl_mechanism": args.sasl_mechanism,
        "sasl_username": args.sasl_username,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.no_ssl_check_hostname:
        values["ssl_check_hostname"] = False
    if base is None:
        for key, variable in SIMULATE_PASSWORD_ENV.items():
            if environ.get(variable):
                values[key] = environ[variable]
    settings = kafka_settings(values, base)
    topic = args.topic or (base.topics[0] if base is not None else "features")
    return settings, topic


def _simulate(args: argparse.Namespace) -> int:
    from monitor.source import KafkaSink, producer_kwargs
    from monitor.tools.scenarios import SCENARIOS
    from monitor.tools.simulate import check_arguments, run_simulation

    if args.drift not in SCENARIOS:
        raise ConfigError(
            f"--drift: unknown scenario {args.drift!r}; choose one of {', '.join(SCENARIOS)}"
        )
    models = [m for m in args.models.split(",") if m]
    drift_models = [m for m in args.drift_models.split(",") if m] if args.drift_models else None
    try:
        check_arguments(
            models=models,
            scenario=args.drift,
            drift_models=drift_models,
            rate=args.rate,
            total_events=args.events,
            duration_s=args.duration,
        )
        check_topic(args.topic or "features")
    except ValueError as exc:
        raise ConfigError(f"simulate: {exc}") from None
    kafka, topic = simulate_kafka(args, os.environ)
    stop = {"flag": False}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sink = KafkaSink(producer_kwargs(kafka.client_kwargs()))
    try:
        report = run_simulation(
            sink,
            topic,
            models=models,
            scenario=args.drift,
            drift_models=drift_models,
            rate=args.rate,
            total_events=args.events,
            duration_s=args.duration,
            drift_after_s=args.drift_after,
            seed=args.seed,
            stop=lambda: stop["flag"],
        )
    except SourceError as exc:
        print(
            f"driftmon simulate: cannot produce to {topic!r} at "
            f"{','.join(kafka.bootstrap_servers)}: {exc}",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    finally:
        try:
            sink.close()
        except Exception as exc:  # closing a producer that never connected must not mask
            print(f"driftmon simulate: closing the producer failed: {exc}", file=sys.stderr)
    print(f"sent {report}", file=sys.stderr)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from monitor.tools.statusview import StatusError, UnknownFeatureError, fetch_status

    access = _status_access(args)
    color = sys.stdout.isatty()
    while True:
        try:
            text = _status_text(fetch_status(args.url, access=access), args, color)
        except StatusError as exc:
            print(f"driftmon status: {exc}", file=sys.stderr)
            if not args.watch:
                return EXIT_USAGE if isinstance(exc, UnknownFeatureError) else EXIT_RUNTIME
        else:
            if args.watch and color:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(text, flush=True)
        if not args.watch:
            return EXIT_OK
        time.sleep(args.watch)


def _status_text(status: dict[str, Any], args: argparse.Namespace, color: bool) -> str:
    """The raw JSON, one feature's histograms (`--feature`) or the table per model."""
    from monitor.tools.statusview import render_feature, render_status

    if args.json:
        return json.dumps(status, indent=2)
    if args.feature:
        return render_feature(status, args.feature, width=_terminal_width(), color=color)
    return render_status(status, width=_terminal_width(), color=color)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120


def _status_access(args: argparse.Namespace) -> Access:
    """TLS files and credentials for `driftmon status` (ConfigError when incomplete)."""
    from monitor.tools.statusview import Access

    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            message = f"--password-file: cannot read a line from {args.password_file}"
            raise ConfigError(message) from None
    elif args.user is not None:
        password = os.environ.get("DRIFTMON_STATUS_PASSWORD")
    if args.user is not None and password is None:
        raise ConfigError("--user: set DRIFTMON_STATUS_PASSWORD or give --password-file")
    if args.user is None and args.password_file is not None:
        raise ConfigError("--password-file: give --user as well")
    if (args.cert_file is None) != (args.key_file is None):
        raise ConfigError("--cert-file and --key-file go together")
    for flag, path in (
        ("--ca-file", args.ca_file),
        ("--cert-file", args.cert_file),
        ("--key-file", args.key_file),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag}: file not found: {path}")
    return Access(
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        user=args.user,
        password=password,
    )

"""The "driftmon / pipeline" dashboard: the daemon's health, throughput and durability."""

from __future__ import annotations

from panels import (
    BLUE,
    GREEN,
    JSON,
    RED,
    YELLOW,
    YES_NO,
    Board,
    by_name,
    dashboard,
    fixed,
    query_variable,
    rate,
    stat,
    target,
    thresholds,
    timeseries,
)


def quantiles(histogram: str, sel: str) -> list[JSON]:
    """p50/p90/p99 of a histogram over the panel's rate interval."""
    return [
        target(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({histogram}_bucket{{{sel}}}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def topic_reason_bars(title: str, description: str, counter: str, sel: str) -> JSON:
    """Stacked bars of a counter's rate per second, by topic and reason."""
    return timeseries(
        title,
        description,
        [
            target(
                f"sum by (topic, reason) (rate({counter}{{{sel}}}[$__rate_interval]))",
                "{{topic}}: {{reason}}",
            )
        ],
        unit="cps",
        min_value=0,
        custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
    )


def registry(b: Board, sel: str) -> None:
    """The reference registry (reference.mode: registry): activations by model and cause, and
    the registry records the daemons refused, by reason."""
    b.row("Reference registry")
    b.add(
        timeseries(
            "Reference activations",
            "Reference activations per model and cause (operator, rollback, model_version, "
            "warmup) in each interval; the drift panels mark them as annotations.",
            [
                target(
                    "max by (model, cause) "
                    f"(increase(driftmon_reference_activations_total{{{sel}}}[$__rate_interval]))",
                    "{{model}} {{cause}}",
                )
            ],
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Registry records refused",
            "Registry records the daemons refused per second, by reason (garbage, unknown "
            "version, hash mismatch, missing chunk, unknown reference...). The table is "
            "unchanged by a refused record; a steady rate means someone writes bad records.",
            [
                target(
                    f"max by (reason) ({rate('driftmon_registry_records_rejected_total', sel)})",
                    "{{reason}}",
                )
            ],
            unit="ops",
            min_value=0,
        ),
        12,
        8,
    )


def fleet(b: Board, sel: str) -> None:
    """The replicas of a fleet (state.backend: kafka) against each other: who owns what, how
    far each is behind the state topic, the commits the fleet refused, snapshot age, and
    whether the replicas export the same statistics. Empty for a file-backend daemon, except
    the PSI spread (0 for one replica)."""
    b.row("Fleet")
    b.add(
        timeseries(
            "Partitions owned per replica",
            "driftmon_partitions_owned: source partitions each replica counts and commits. "
            "The owner of the lowest partition writes the snapshots.",
            [target(f"sum by (instance) (driftmon_partitions_owned{{{sel}}})", "{{instance}}")],
            min_value=0,
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "State-topic lag",
            "driftmon_state_lag_records: state-topic records a replica has not folded yet. "
            "DriftmonStateLagHigh warns above 1000 for 10 minutes.",
            [target(f"sum by (instance) (driftmon_state_lag_records{{{sel}}})", "{{instance}}")],
            min_value=0,
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "State snapshot age",
            "driftmon_state_snapshot_age_seconds: age of the newest snapshot a replica holds. "
            "DriftmonStateSnapshotStale warns above 30 minutes on every replica.",
            [
                target(
                    f"max by (instance) (driftmon_state_snapshot_age_seconds{{{sel}}})",
                    "{{instance}}",
                )
            ],
            unit="s",
            min_value=0,
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "State commits by result",
            "State commits and claims the fleet folded per second, by result, and state-topic "
            "records refused unread, by reason (largest over the replicas: every replica "
            "folds every record). stale_epoch: a zombie's commit; gap: a commit that does not "
            "continue its partition's chain.",
            [
                target(
                    "max by (result) "
                    f"(rate(driftmon_state_commits_total{{{sel}}}[$__rate_interval]))",
                    "commit {{result}}",
                ),
                target(
                    "max by (result) "
                    f"(rate(driftmon_state_claims_total{{{sel}}}[$__rate_interval]))",
                    "claim {{result}}",
                ),
                target(
                    "max by (reason) "
                    f"(rate(driftmon_state_records_rejected_total{{{sel}}}[$__rate_interval]))",
                    "refused record {{reason}}",
                ),
            ],
            unit="ops",
            min_value=0,
            overrides=[
                by_name("commit stale_epoch", color=fixed("orange")),
                by_name("commit gap", color=fixed(RED)),
            ],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "PSI spread across replicas",
            "Largest minus smallest PSI of each model and feature over the selected replicas: "
            "0 when they agree. DriftmonReplicasDisagree warns above 0.02 for 10 minutes.",
            [
                target(
                    f"max by (model, feature) (driftmon_feature_psi{{{sel}}}) "
                    f"- min by (model, feature) (driftmon_feature_psi{{{sel}}})",
                    "{{model}} / {{feature}}",
                )
            ],
            min_value=0,
        ),
        12,
        8,
    )


def pipeline() -> JSON:
    """The daemon itself: health, throughput, rejects, lag, evaluation cost, durability."""
    sel = 'instance=~"$instance"'
    b = Board()
    b.row("Health")
    b.add(
        stat(
            "Ready",
            "driftmon_ready: partitions assigned, references loaded, first evaluation done.",
            [target(f"driftmon_ready{{{sel}}}", "{{instance}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Kafka connected",
            "driftmon_kafka_connected: the consumer can reach the brokers.",
            [target(f"driftmon_kafka_connected{{{sel}}}", "{{instance}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Version",
            "driftmon_build_info: the running version.",
            [target(f"driftmon_build_info{{{sel}}}", "{{version}}")],
            steps=thresholds((None, BLUE)),
            text_mode="name",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Last evaluation age",
            "Seconds since the last finished evaluation. DriftmonNotEvaluating pages above 3 "
            "evaluation intervals.",
            [
                target(
                    f"time() - driftmon_last_evaluation_timestamp_seconds{{{sel}}}", "{{instance}}"
                )
            ],
            unit="s",
            steps=thresholds((None, GREEN), (60, YELLOW), (180, RED)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Evaluation interval",
            "driftmon_evaluation_interval_seconds: how often statistics are recomputed.",
            [target(f"driftmon_evaluation_interval_seconds{{{sel}}}", "{{instance}}")],
            unit="s",
            steps=thresholds((None, BLUE)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Total consumer lag",
            "Records behind the partitions' high watermarks, summed.",
            [target(f"sum(driftmon_consumer_lag{{{sel}}})", "lag")],
            steps=thresholds((None, GREEN), (10000, YELLOW)),
        ),
        4,
        4,
    )

    b.row("Throughput")
    b.add(
        timeseries(
            "Records consumed",
            "Records read from Kafka per second, per topic.",
            [
                target(
                    f"sum by (topic) ({rate('driftmon_records_consumed_total', sel)})",
                    "{{topic}}",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Events accepted per model",
            "Events routed to a model's windows per second.",
            [
                target(
                    f"sum by (model) ({rate('driftmon_events_accepted_total', sel)})",
                    "{{model}}",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        topic_reason_bars(
            "Rejected records by reason",
            "Records rejected whole, per second, by topic and reason. DriftmonHighRejectRate "
            "warns above 1% of the records consumed.",
            "driftmon_records_rejected_total",
            sel,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Dead-letter copies that failed",
            "Rejected records that could not be copied to kafka.dead_letter_topic (could not "
            "be queued, or not delivered), per second, by reject reason. Empty without a "
            "dead-letter topic.",
            [
                target(
                    f"sum by (reason) "
                    f"(rate(driftmon_dead_letter_failures_total{{{sel}}}[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        topic_reason_bars(
            "Unreadable Kafka batches",
            "Record batches skipped unread per second, by topic and reason (crc_mismatch, "
            "too_large, corrupt, unframed): their events never reach a window. The replica's "
            "log names partition and offsets. DriftmonUnreadableBatches warns on any.",
            "driftmon_kafka_unreadable_batches_total",
            sel,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Consumer lag",
            "Records behind the high watermark, per topic and partition.",
            [target(f"driftmon_consumer_lag{{{sel}}}", "{{topic}}/{{partition}}")],
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Event-time freshness",
            "Seconds since the event time of the newest applied record (per topic) and since "
            "each model's watermark.",
            [
                target(f"time() - driftmon_last_record_timestamp_seconds{{{sel}}}", "{{topic}}"),
                target(
                    f"time() - driftmon_model_watermark_timestamp_seconds{{{sel}}}",
                    "watermark {{model}}",
                ),
            ],
            unit="s",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Invalid feature values",
            "The 10 features receiving the most values of the wrong type, per second.",
            [
                target(
                    f"topk(10, sum by (model, feature) "
                    f"(rate(driftmon_feature_invalid_values_total{{{sel}}}[$__rate_interval])))",
                    "{{model}} / {{feature}}",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )

    b.row("Evaluation and durability")
    b.add(
        timeseries(
            "Evaluation duration",
            "Time to compute every statistic of every model once (quantiles of "
            "driftmon_evaluation_duration_seconds).",
            quantiles("driftmon_evaluation_duration_seconds", sel),
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Batch duration",
            "Time to decode and apply one polled batch (quantiles of "
            "driftmon_batch_duration_seconds).",
            quantiles("driftmon_batch_duration_seconds", sel),
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Time since last evaluation",
            "Seconds since the last evaluation, for the daemon and for each model.",
            [
                target(f"time() - driftmon_last_evaluation_timestamp_seconds{{{sel}}}", "daemon"),
                target(
                    f"time() - driftmon_model_last_evaluation_timestamp_seconds{{{sel}}}",
                    "{{model}}",
                ),
            ],
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Evaluations",
            "Evaluation cycles completed per second.",
            [
                target(
                    f"sum(rate(driftmon_evaluations_total{{{sel}}}[$__rate_interval]))",
                    "evaluations/s",
                )
            ],
            unit="ops",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Checkpoints and offset commits",
            "Checkpoint writes and Kafka offset commits per second, by result. Offsets are "
            "committed only after a successful checkpoint.",
            [
                target(
                    f"sum by (result) ({rate('driftmon_checkpoints_total', sel)})",
                    "checkpoint {{result}}",
                ),
                target(
                    f"sum by (result) "
                    f"(rate(driftmon_offset_commits_total{{{sel}}}[$__rate_interval]))",
                    "offset commit {{result}}",
                ),
            ],
            unit="ops",
            min_value=0,
            overrides=[
                by_name("checkpoint failure", color=fixed(RED)),
                by_name("offset commit failure", color=fixed("orange")),
            ],
        ),
        24,
        8,
    )
    registry(b, sel)
    b.add(
        timeseries(
            "Configuration reloads",
            "SIGHUP reloads by result (success, invalid, restart_required), and whether the "
            "running configuration is the last one read (1) or a reload was refused (0).",
            [
                target(
                    f"sum by (result) "
                    f"(increase(driftmon_config_reloads_total{{{sel}}}[$__rate_interval]))",
                    "reload {{result}}",
                ),
                target(
                    f"min(driftmon_config_last_reload_successful{{{sel}}})",
                    "last reload ok",
                ),
            ],
            min_value=0,
            overrides=[
                by_name("reload invalid", color=fixed(RED)),
                by_name("reload restart_required", color=fixed("orange")),
            ],
        ),
        12,
        6,
    )
    b.add(
        stat(
            "Configuration age",
            "Seconds since the running configuration was loaded (start or last successful "
            "SIGHUP reload).",
            [
                target(
                    f"time() - driftmon_config_last_reload_success_timestamp_seconds{{{sel}}}",
                    "{{instance}}",
                )
            ],
            unit="s",
            steps=thresholds((None, BLUE)),
        ),
        4,
        6,
    )
    b.add(
        timeseries(
            "Unmonitored feature names",
            "features: auto models: distinct names their events carry that are not monitored "
            "(driftmon_unmonitored_features; listed in /status).",
            [
                target(
                    f"max by (model) (driftmon_unmonitored_features{{{sel}}})",
                    "{{model}}",
                )
            ],
            min_value=0,
        ),
        8,
        6,
    )
    b.add(
        timeseries(
            "Sample ratio",
            "Share of each model's messages its windows count (models[].sample_rate; 1 = all). "
            "Below 1, the statistics see the sampled counts (README, Wide models).",
            [
                target(
                    f"max by (model) (driftmon_sample_ratio{{{sel}}})",
                    "{{model}}",
                )
            ],
            min_value=0,
            max_value=1,
        ),
        8,
        6,
    )
    b.add(
        timeseries(
            "Decode worker failures",
            "Decode worker children stopped as failed, per replica (event.decode_worker: the "
            "child exited, no room in /dev/shm, no answer within 30 s); their batches were "
            "decoded in process. Alert DriftmonDecodeWorkerFailing (docs/runbook.md).",
            [
                target(
                    "sum by (instance) (increase(driftmon_decode_worker_failures_total"
                    f"{{{sel}}}[$__rate_interval]))",
                    "{{instance}}",
                )
            ],
            min_value=0,
        ),
        8,
        6,
    )
    fleet(b, sel)
    return dashboard(
        "driftmon-pipeline",
        "driftmon / pipeline",
        "The driftmon daemon: health, throughput, rejects, consumer lag, evaluation cost, "
        "checkpoints.",
        b,
        [
            query_variable(
                "instance", "Instance", "label_values(driftmon_build_info, instance)", multi=True
            )
        ],
    )

"""The end-to-end benchmark's rows: the broker's CPU column and the sampled rows' notes."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest

from bench import e2e
from bench.procs import cpu_seconds, log_stderr
from bench.report import Table


def _run(events_per_s: float, cpu: float, broker: float | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "events_per_s": events_per_s,
        "cpu_us_per_event": cpu,
        "poll_us_per_event": 1.0,
        "decode_us_per_event": 1.0,
        "rest_us_per_event": 1.0,
        "events_per_poll": 94.0,
        "evaluate_ms": 15.0,
        "peak_rss_mib_consuming": 250.0,
        "accepted": 3000,
        "rejected": 0,
    }
    if broker is not None:
        result["broker_cpu_us_per_event"] = broker
    return result


def test_cpu_seconds_grows_while_a_process_works_and_is_none_without_one() -> None:
    """The CPU read from /proc grows by about the CPU a busy loop burns, and no pid is None."""
    before = cpu_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert 0.2 <= after - before <= 1.0
    assert cpu_seconds(None) is None


def test_the_broker_column_holds_the_medians_of_both_runs_or_stays_empty() -> None:
    """The broker's CPU per event is the median over the driftmon runs and over the raw runs."""
    table = Table("e2e", "t", list(e2e.COLUMNS))
    width = e2e.Width(20, 2, 3000, 1000)
    pairs = [
        (_run(100.0, 10.0, broker), _run(200.0, 5.0, raw))
        for broker, raw in ((30.0, 40.0), (10.0, 60.0), (20.0, 50.0))
    ]
    e2e._add_row(table, width, None, 600.0, pairs)
    e2e._add_row(table, width, None, 600.0, [(_run(1.0, 1.0, None), _run(2.0, 1.0, 9.0))])
    assert table.rows[0][-2:] == [20.0, 50.0]
    assert table.rows[1][-2:] == [None, 9.0]


def test_the_sampled_note_adds_the_broker_time_to_the_raw_clients() -> None:
    """The sampled row's note predicts raw kafka-python's rate from client plus broker CPU."""
    table = Table("e2e", "t", list(e2e.COLUMNS))
    wide = e2e.Width(2000, 200, 3000, 5000)
    sampled = e2e.Width(2000, 200, 3000, 5000, sample_rate=0.1)
    e2e._add_row(
        table, wide, None, 56_806.0, [(_run(1_700.0, 515.0, 110.0), _run(3_500.0, 190.0, 100.0))]
    )
    e2e._add_row(
        table, sampled, None, 56_806.0, [(_run(3_900.0, 166.0, 120.0), _run(3_600.0, 150.0, 100.0))]
    )
    e2e._wide_targets(table)
    note = next(n for n in table.notes if "one fetch in flight" in n)
    assert "120 us (driftmon run) and 100 us (raw run)" in note
    assert "1e6 / (raw client CPU 150 + broker 100 us) = 4,000 events/s" in note
    assert "against 3,600 measured raw" in note
    assert table.notes[0].startswith("Issue-12 targets: ")
    assert "sample_rate 0.1 2.3x the unsampled events/s < 4" in table.notes[0]


def test_progress_lines_go_to_stderr_with_the_time_of_day(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A benchmark's progress line is `[HH:MM:SS] message` on stderr, nothing on stdout."""
    log_stderr("e2e 20 + 2: produced")
    out, err = capsys.readouterr()
    assert out == "" and re.fullmatch(r"\[\d\d:\d\d:\d\d\] e2e 20 \+ 2: produced\n", err)

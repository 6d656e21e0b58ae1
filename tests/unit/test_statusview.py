"""Tests for monitor.tools.statusview: rendering the real /status JSON and fetching it over HTTP."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitor.http import snapshot_to_json
from monitor.model import Correction, FeatureResult
from monitor.tools.statusview import StatusError, fetch_status, render_status, status_url
from tests.support import builders
from tests.support.broker import free_port

WATERMARK = datetime(2025, 11, 26, 18, 0, 0, tzinfo=UTC).timestamp()
ANSI = re.compile(r"\x1b\[[0-9;]*m")


#: The windows of every feature below unless it says otherwise.
WINDOWS: dict[str, Any] = {"reference_samples": 120_000, "current_samples": 3000}


def numeric(name: str, **kwargs: Any) -> FeatureResult:
    """An evaluated numeric feature with 3 % missing in both windows and the given statistics."""
    missing = {"reference_missing_ratio": 0.03, "current_missing_ratio": 0.03}
    return builders.numeric(name, **{**WINDOWS, **missing, **kwargs})


def categorical(name: str, **kwargs: Any) -> FeatureResult:
    """An evaluated categorical feature with the given statistics."""
    return builders.categorical(name, **{**WINDOWS, **kwargs})


def status_document() -> dict[str, Any]:
    """The /status JSON of a two-model snapshot, rendered by monitor.http itself."""
    fraud = builders.evaluation(
        "fraud",
        evaluated_at=WATERMARK + 5,
        reference_id="sha256:0123456789abcdef",
        reference_mode="file",
        model_version="v7",
        watermark=WATERMARK,
        features=(
            numeric("age", psi=0.004, ks_statistic=0.012, ks_error_bound=0.002, ks_pvalue=0.41,
                    psi_pvalue=0.77, qvalue=0.93, out_of_range_ratio=0.0),
            numeric("amount", psi=0.312, psi_pvalue=2.5e-33, ks_statistic=0.21,
                    ks_error_bound=0.004, ks_pvalue=1.234e-40, qvalue=6.1e-39,
                    out_of_range_ratio=0.012, drift_detected=True, drift_reasons=("ks", "psi")),
            numeric("balance", reference_missing_ratio=0.03, current_missing_ratio=0.35,
                    missing_pvalue=1e-300, psi=0.01, qvalue=2e-299, drift_detected=True,
                    drift_reasons=("missing",)),
            numeric("latency_ms", current_samples=40, evaluated=False,
                    current_missing_ratio=None),
            categorical("country", psi=0.09, chi2_pvalue=1e-12, tvd=0.081,
                        unseen_category_ratio=0.08, new_category_pvalue=0.0, qvalue=0.0,
                        drift_detected=True, drift_reasons=("chi2", "new_category")),
            categorical("device", psi=0.05, chi2_pvalue=0.2, tvd=0.01,
                        unseen_category_ratio=0.0, qvalue=0.6),
        ),
    )  # fmt: skip
    churn = builders.evaluation(
        "churn",
        numeric("tenure", psi=0.001, ks_pvalue=0.9, qvalue=1.0),
        evaluated_at=WATERMARK,
        correction=Correction.BONFERRONI,
    )
    snapshot = builders.snapshot(fraud, churn, created_at=WATERMARK + 6)
    document: dict[str, Any] = json.loads(snapshot_to_json(snapshot))
    return document


def rows_of(text: str, model: str) -> list[str]:
    """The feature rows under `model`'s table header, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"model {model} "))
    header = start + 2
    assert lines[header].startswith("FEATURE")
    rows = []
    for line in lines[header + 1 :]:
        if not line:
            break
        rows.append(line)
    return rows


def test_header_names_reference_version_watermark_and_drift_count() -> None:
    """The model header carries reference id/mode, version, UTC watermark and drifted count."""
    text = render_status(status_document())
    header = next(line for line in text.splitlines() if line.startswith("model fraud"))
    assert "reference sha256:0123456789abcdef (file)" in header
    assert "version v7" in header
    assert "watermark 2025-11-26 18:00:00Z" in header
    assert header.endswith("drifted 3/6")
    assert "evaluated 2025-11-26 18:00:05Z, correction bh at q=1.0e-3" in text
    churn = next(line for line in text.splitlines() if line.startswith("model churn"))
    assert "reference —" in churn
    assert "version —" in churn
    assert churn.endswith("drifted 0/1")


def test_rows_are_sorted_drifted_first_then_by_psi() -> None:
    """Drifted features come first by PSI descending, then the rest, PSI-less ones last."""
    rows = rows_of(render_status(status_document()), "fraud")
    assert [row.split()[0] for row in rows] == [
        "amount", "country", "balance", "device", "age", "latency_ms",
    ]  # fmt: skip


def test_row_cells_show_statistics_compactly() -> None:
    """A drifted numeric row shows flag, reasons, PSI, D±err, min p, q, ratios and counts."""
    rows = {row.split()[0]: row for row in rows_of(render_status(status_document()), "fraud")}
    amount = rows["amount"].split()
    assert amount[:4] == ["amount", "num", "DRIFT", "ks,psi"]
    assert amount[4:] == [
        "0.312", "0.210±0.004", "1.2e-40", "6.1e-39", "3.0%→3.0%", "1.2%", "120k/3000",
    ]  # fmt: skip
    assert rows["balance"].split()[2:4] == ["DRIFT", "missing"]
    assert "3.0%→35.0%" in rows["balance"]
    country = rows["country"].split()
    assert country[1:4] == ["cat", "DRIFT", "chi2,new-cat"]
    assert country[4:8] == ["0.090", "0.081", "0", "0"]
    assert country[-2] == "8.0%"
    assert rows["age"].split()[2] == "ok"
    assert rows["age"].split()[5:7] == ["0.41", "0.93"]


def test_unevaluated_feature_shows_dashes_and_a_footnote() -> None:
    """A feature under min_samples shows "—" for its verdict and statistics, with a legend."""
    text = render_status(status_document())
    row = next(r for r in rows_of(text, "fraud") if r.startswith("latency_ms"))
    assert row.split() == ["latency_ms", "num", "—", "—", "—", "—", "—", "3.0%→—", "—", "120k/40"]
    assert "DRIFT —: not evaluated" in text


def test_feature_without_reference_says_so_with_a_legend() -> None:
    """A feature whose reference is not ready shows "no ref" instead of a bare dash."""
    unready = numeric(
        "account_age_days",
        reference_samples=0,
        evaluated=False,
        reference_missing_ratio=None,
        reference_ready=False,
        reference_note="warm-up of 1000 events: no finite value",
    )
    model = builders.evaluation("fraud", numeric("age", psi=0.004), unready)
    document = json.loads(snapshot_to_json(builders.snapshot(model)))
    text = render_status(document)
    row = next(r for r in rows_of(text, "fraud") if r.startswith("account_age_days"))
    assert row.split()[2:4] == ["no", "ref"]
    assert "no ref: no usable reference yet" in text


def test_no_color_codes_unless_asked() -> None:
    """Plain output has no ANSI codes; color marks drifted rows red and unevaluated ones dim."""
    assert "\x1b" not in render_status(status_document())
    colored = render_status(status_document(), color=True)
    lines = colored.splitlines()
    red = [ANSI.sub("", line).split()[0] for line in lines if line.startswith("\x1b[1;31m")]
    dim = [ANSI.sub("", line).split()[0] for line in lines if line.startswith("\x1b[2m")]
    assert red == ["amount", "country", "balance"]
    assert dim == ["latency_ms"]
    assert ANSI.sub("", colored) == render_status(status_document())


@pytest.mark.parametrize("width", [120, 90, 60])
def test_lines_fit_the_width(width: int) -> None:
    """No line is wider than `width`; narrow tables cut long feature names with an ellipsis."""
    document = status_document()
    document["models"][0]["features"][0]["name"] = "a_very_long_feature_name_from_a_feature_store"
    text = render_status(document, width=width, color=True)
    assert max(len(ANSI.sub("", line)) for line in text.splitlines()) <= width
    if width < 120:
        assert "a_very_…" in text or "a_very_long_feature_name_from…" in text


def test_empty_snapshot_says_so() -> None:
    """A snapshot without models renders a one-line explanation."""
    text = render_status(json.loads(snapshot_to_json(builders.snapshot(created_at=WATERMARK))))
    assert text == "no model evaluated yet (snapshot created 2025-11-26 18:00:00Z)"


# --- fetching ----------------------------------------------------------------------------------


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files from a directory without writing an access log."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log line."""


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A stdlib HTTP server on 127.0.0.1 serving `tmp_path`; yields (base URL, directory)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=tmp_path))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_status_url_normalises_the_base_url() -> None:
    """A bare host:port gets http:// and /status; an explicit /status path is kept."""
    assert status_url("localhost:9108") == "http://localhost:9108/status"
    assert status_url("http://h:1/") == "http://h:1/status"
    assert status_url("https://h/driftmon/status") == "https://h/driftmon/status"


def test_fetch_status_reads_the_json_document(file_server: tuple[str, Path]) -> None:
    """fetch_status returns the served /status JSON, with or without the scheme."""
    url, directory = file_server
    document = status_document()
    (directory / "status").write_text(json.dumps(document))
    assert fetch_status(url) == document
    assert fetch_status(url.removeprefix("http://"), timeout=2) == document
    (directory / "sub").mkdir()
    (directory / "sub" / "status").write_text(json.dumps({"models": []}))
    assert fetch_status(url + "/sub") == {"models": []}


def test_fetch_status_non_200_is_an_error(file_server: tuple[str, Path]) -> None:
    """A 404 is a StatusError naming the URL and the HTTP status."""
    url, _ = file_server
    with pytest.raises(StatusError, match=r"/status: HTTP 404") as info:
        fetch_status(url)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>driftmon?</html>", "not valid JSON"),
        ('{"created_at": 1}', "not a driftmon status document"),
        ("[1, 2]", "not a driftmon status document"),
    ],
)
def test_fetch_status_rejects_other_documents(
    file_server: tuple[str, Path], body: str, message: str
) -> None:
    """A body that is not JSON, or JSON without a models list, is a one-line StatusError."""
    url, directory = file_server
    (directory / "status").write_text(body)
    with pytest.raises(StatusError, match=message) as info:
        fetch_status(url)
    assert "\n" not in str(info.value)


def test_fetch_status_connection_refused() -> None:
    """Nothing listening on the port gives a clear 'connection refused' StatusError."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StatusError, match="connection refused") as info:
        fetch_status(url, timeout=2)
    assert f"{url}/status" in str(info.value)


def test_fetch_status_times_out_on_a_silent_server() -> None:
    """A server that accepts the connection but never answers times out as a StatusError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(StatusError, match="timed out"):
            fetch_status(f"http://127.0.0.1:{port}", timeout=0.3)

"""The status page in a real headless browser (Debian's chromium) against a real daemon.

A real tansu broker and a real `driftmon run`: `amount` drifts, `country` gets a new
category, `age` and `device` stay calm. Chromium opens /status as a browser does (its
navigation Accept header asks for text/html) and must get the page: it loads without a single
console message (there is no script; a CSP violation or a script error would be one), the
flagged features come first, each card with both distributions, and a screenshot is taken.
`DRIFTMON_UPDATE_SCREENSHOT=1` copies the screenshot to docs/status-page.png (the README
shows it).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    REPO,
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)
from tests.support.ops_services import find_tool

SCREENSHOT = REPO / "docs" / "status-page.png"
WINDOW = (1280, 800)
FEATURES = [
    ("amount", "numeric"),
    ("age", "numeric"),
    ("country", "categorical"),
    ("device", "categorical"),
]
COUNTRIES = ["GB", "US", "DE", "FR", "ES", "IT", "NL", "SE"]
DEVICES = ["ios", "android", "web"]


def chromium(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[str, str]:
    """Run headless chromium with a throwaway profile; returns (stdout, stderr)."""
    import subprocess

    argv = [
        find_tool("chromium"),
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout, proc.stderr


def console_lines(stderr: str) -> list[str]:
    """Console messages chromium logged (script errors, CSP violations, console.*)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Dom(HTMLParser):
    """Articles (feature cards) in document order with their classes and chart rectangles."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        attributes = dict(attrs)
        if tag == "article":
            self.cards.append(
                {
                    "feature": attributes.get("data-feature"),
                    "class": attributes.get("class"),
                    "rect": [],
                }
            )
        elif tag == "rect" and self.cards:
            self.cards[-1]["rect"].append(attributes.get("class"))

    def handle_endtag(self, tag: str) -> None:
        self.tags.add(tag)


def _reference_csv(path: Path, rng: np.random.Generator, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in FEATURES])
        amounts = rng.lognormal(3.0, 0.8, n)
        ages = rng.normal(41, 12, n).round()
        countries = rng.choice(COUNTRIES, n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])
        devices = rng.choice(DEVICES, n, p=[0.45, 0.4, 0.15])
        for row in zip(amounts.tolist(), ages.tolist(), countries, devices, strict=True):
            writer.writerow([repr(row[0]), repr(row[1]), row[2], row[3]])


def _events(rng: np.random.Generator, n: int) -> list[bytes]:
    amounts = rng.lognormal(3.35, 0.9, n)  # drifted: larger amounts
    ages = rng.normal(41, 12, n).round()
    countries = rng.choice(
        [*COUNTRIES, "BR"], n, p=[0.27, 0.19, 0.14, 0.1, 0.1, 0.07, 0.04, 0.03, 0.06]
    )
    devices = rng.choice(DEVICES, n, p=[0.45, 0.4, 0.15])
    end = time.time() - 5.0
    return [
        msgspec.json.encode(
            {
                "ts": end - 60.0 + 60.0 * i / n,
                "model": "fraud",
                "model_version": "v7",
                "features": {
                    "amount": float(amounts[i]),
                    "age": None if i % 40 == 0 else float(ages[i]),
                    "country": str(countries[i]),
                    "device": str(devices[i]),
                },
            }
        )
        for i in range(n)
    ]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_console_check_catches_a_script_error(tmp_path: Path) -> None:
    """The console check is live: a page with a script error is reported by chromium."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    _, stderr = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("boom" in line for line in console_lines(stderr)), stderr[-2000:]


@pytest.mark.timeout(240)
def test_status_page_in_a_headless_browser(broker: TansuBroker, topic: str, tmp_path: Path) -> None:
    """/status opened by chromium: no console message, flagged features first with both
    distributions, and a screenshot of the whole view."""
    rng = np.random.default_rng(20261203)
    _reference_csv(tmp_path / "reference.csv", rng, 20_000)
    ref_path = tmp_path / "refs" / "fraud.json"
    features = ",".join(f"{n}:{k}" for n, k in FEATURES)
    fit = run_cli(
        "reference", "fit", str(tmp_path / "reference.csv"), "--model", "fraud",
        "--model-version", "v7", "--features", features, "--no-progress", "-o", str(ref_path),
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[model_entry("fraud", FEATURES, {"mode": "file", "path": str(ref_path)})],
        evaluation={"interval": "1s", "min_samples": 500},
    )
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, _events(rng, 6_000))
        daemon.wait_metric(
            "driftmon_feature_window_samples",
            6_000,
            model="fraud",
            feature="amount",
            window="current",
        )
        status = daemon.status()
        url = daemon.url + "/status"
        dom_text, stderr = chromium(tmp_path, "--dump-dom", url)
        shot = tmp_path / "status-page.png"
        _, shot_err = chromium(
            tmp_path,
            "--hide-scrollbars",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={shot}",
            url,
        )
        assert daemon.stop() == 0

    assert console_lines(stderr) == [] and console_lines(shot_err) == []
    dom = Dom()
    dom.feed(dom_text)
    assert "script" not in dom.tags and "svg" in dom.tags
    flagged = {
        f["name"] for f in status["models"][0]["features"] if f["drift_detected"]
    }  # the JSON decision
    assert {"amount", "country"} <= flagged and not flagged & {"age", "device"}
    order = [card["feature"] for card in dom.cards]
    assert set(order[: len(flagged)]) == flagged, order
    for card in dom.cards[: len(flagged)]:
        assert "drift" in card["class"].split()
        name = card["feature"]
        bins = len(
            next(f for f in status["models"][0]["features"] if f["name"] == name)["distribution"][
                "bins"
            ]
        )
        # one reference and one current bar per bin, plus the two legend swatches
        assert card["rect"].count("ref") == card["rect"].count("cur") == bins + 1, name

    assert _png_size(shot) == WINDOW
    assert shot.stat().st_size > 30_000  # a rendered page, not a blank image
    if os.environ.get("DRIFTMON_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
    json.dumps(status)  # the JSON /status still answers alongside the page


def test_readme_shows_the_committed_screenshot() -> None:
    """docs/status-page.png is a real screenshot and the README embeds it."""
    assert _png_size(SCREENSHOT) == WINDOW
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/status-page.png)" in readme

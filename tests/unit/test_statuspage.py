"""Tests for monitor.statuspage (the HTML status page) and the distribution fields of /status."""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CategoricalBins, ModelLayout, NumericBins
from monitor.http import HttpServer, snapshot_to_json
from monitor.model import (
    DecisionPolicy,
    FeatureKind,
    FeatureSpec,
    Snapshot,
)
from monitor.reference import fit_categorical, fit_numeric
from monitor.statuspage import STATUS_PAGE_CSP, render_status_page, wants_html
from tests.support.tls import PASSWORD, USER, ViewerFiles, viewer_files
from tests.unit.test_http_tls import start_server

RNG = np.random.default_rng(7)
HOSTILE = '<script>alert("x")</script>'


def evaluated_snapshot(n_extra: int = 2) -> Snapshot:
    """A real evaluation: `amount` shifted, `country` with a hostile category, calm extras."""
    n_ref, n_cur = 20_000, 5_000
    numeric_ref = {"amount": RNG.lognormal(3, 1, n_ref)}
    numeric_cur = {"amount": RNG.lognormal(3.5, 1, n_cur)}
    for i in range(n_extra):
        numeric_ref[f"calm_{i:02d}"] = RNG.normal(0, 1, n_ref)
        numeric_cur[f"calm_{i:02d}"] = RNG.normal(0, 1, n_cur)
    countries = ["GB", "US", "DE", HOSTILE]
    country_ref = list(RNG.choice(countries, n_ref, p=[0.4, 0.3, 0.2, 0.1]))
    country_cur = list(RNG.choice(countries, n_cur, p=[0.4, 0.3, 0.2, 0.1]))
    profiles = [fit_numeric(name, values) for name, values in numeric_ref.items()]
    cat = fit_categorical("country", country_ref)
    numeric_bins = [(p.name, p.bins) for p in profiles if isinstance(p.bins, NumericBins)]
    assert isinstance(cat.bins, CategoricalBins)
    layout = ModelLayout(numeric_bins, [("country", cat.bins)])
    reference = layout.empty()
    for row, p in enumerate([*profiles, cat]):
        reference[row, : len(p.counts) - 2] = p.counts[:-2]
        reference[row, layout.missing_col] = p.counts[-2]
    current = layout.count(
        np.vstack([numeric_cur[p.name] for p in profiles]),
        [np.asarray(country_cur, dtype=object)],
    )
    specs = [FeatureSpec(p.name, FeatureKind.NUMERIC) for p in profiles]
    specs.append(FeatureSpec("country", FeatureKind.CATEGORICAL))
    evaluation = ModelEvaluator(layout, specs, DecisionPolicy()).evaluate(
        np.asarray(reference, dtype=np.int64),
        current,
        EvaluationContext("fraud", 1764180015.0, "sha256:0f3a9c", "file", "v7", 1764180012.5),
    )
    return Snapshot(created_at=1764180016.0, models=(evaluation,))


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: bytes) -> Elements:
    parser = Elements()
    parser.feed(page.decode("utf-8"))
    return parser


class TestStatusPage:
    def test_flagged_feature_comes_first_with_both_distributions(self) -> None:
        """The drifted feature is the first card, with a reference and a current bar per bin."""
        snapshot = evaluated_snapshot()
        amount = next(f for f in snapshot.models[0].features if f.name == "amount")
        assert amount.drift_detected
        elements = parse(render_status_page(snapshot))
        cards = [a["id"] for t, a in elements.tags if t == "article"]
        assert cards[0] == "fraud/amount"
        assert len(cards) == 4
        page = render_status_page(snapshot).decode()
        first = page[page.index('id="fraud/amount"') : page.index("</article>")]
        assert first.count('class="ref"') == 13 + 1  # 13 bins + the legend swatch
        assert first.count('class="cur"') == 13 + 1
        assert "DRIFT" in first and "warn / crit" in first

    def test_hostile_names_are_escaped_and_nothing_is_loaded(self) -> None:
        """A category named like a script tag stays text; the page has no script, link or src."""
        page = render_status_page(evaluated_snapshot())
        elements = parse(page)
        tags = {t for t, _ in elements.tags}
        assert "script" not in tags and "link" not in tags and "img" not in tags
        assert not any(k in ("src", "href") for _, a in elements.tags for k in a)
        assert not re.search(rb"\son[a-z]+=", page)  # no inline event handlers
        assert HOSTILE in "".join(elements.text)

    def test_charts_are_capped_and_the_rest_is_a_table(self) -> None:
        """Past max_charts features, a model's features are table rows without charts."""
        page = render_status_page(evaluated_snapshot(n_extra=6), max_charts=3).decode()
        elements = parse(page.encode())
        assert sum(1 for t, _ in elements.tags if t == "svg") == 3
        assert "5 more features, without charts" in page
        assert sum(1 for t, _ in elements.tags if t == "tr") == 1 + 5

    def test_empty_snapshot_renders_a_page(self) -> None:
        """Before the first evaluation the page says so."""
        page = render_status_page(Snapshot(created_at=0.0)).decode()
        assert page.startswith("<!DOCTYPE html>") and "No model evaluated yet." in page

    def test_not_ready_model_renders_without_charts(self) -> None:
        """A feature without a distribution gets a note instead of a chart."""
        snapshot = evaluated_snapshot()
        model = snapshot.models[0]
        bare = tuple(replace(f, distribution=None) for f in model.features)
        page = render_status_page(replace(snapshot, models=(replace(model, features=bare),)))
        assert b"<svg" not in page and b"No distribution (export_distributions: none)" in page
        waiting = replace(model, features=bare, reference_id="")
        page = render_status_page(replace(snapshot, models=(waiting,)))
        assert b"No reference yet" in page and b"export_distributions" not in page


class TestStatusJson:
    def test_distribution_is_a_new_field_of_each_feature(self) -> None:
        """/status JSON carries bins and both windows' shares; the other fields are unchanged."""
        doc = json.loads(snapshot_to_json(evaluated_snapshot()))
        feature = next(f for f in doc["models"][0]["features"] if f["name"] == "country")
        picture = feature["distribution"]
        assert picture["bins"] == ["GB", "US", "DE", HOSTILE, "(other)", "(unseen)", "(missing)"]
        assert len(picture["reference"]) == len(picture["current"]) == 7
        assert abs(sum(picture["current"]) - 1.0) < 1e-12
        assert feature["psi"] is not None and feature["kind"] == "categorical"


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("TEXT/HTML; q=1.0, application/json; q=0.9", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
        ("text/html;q=nan", False),
    ],
)
def test_wants_html_negotiates_on_q_values(accept: str, html: bool) -> None:
    """HTML only when text/html is asked for explicitly and JSON is not preferred."""
    assert wants_html(accept) is html


class _Health:
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def reason(self) -> str:
        return ""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """An HttpServer on a free port serving a real evaluated snapshot."""
    snapshot = evaluated_snapshot()
    server = HttpServer(
        "127.0.0.1", 0, registry=CollectorRegistry(), snapshot=lambda: snapshot, health=_Health()
    )
    with server:
        yield server.url


def _get(url: str, accept: str | None = None) -> tuple[dict[str, str], bytes]:
    headers = {"Accept": accept} if accept is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return dict(r.headers), r.read()


class TestRoutes:
    def test_status_with_a_browser_accept_header_is_the_page(self, base_url: str) -> None:
        """A browser's Accept header gets the HTML page, with a CSP that allows no script."""
        headers, body = _get(base_url + "/status", BROWSER_ACCEPT)
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Content-Security-Policy"] == STATUS_PAGE_CSP
        assert "script-src" not in STATUS_PAGE_CSP and "default-src 'none'" in STATUS_PAGE_CSP
        assert body.startswith(b"<!DOCTYPE html>") and b'id="fraud/amount"' in body

    @pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
    def test_status_stays_json_for_everything_else(self, base_url: str, accept: str | None) -> None:
        """Without an explicit text/html preference /status is the JSON document, unchanged."""
        headers, body = _get(base_url + "/status", accept)
        assert headers["Content-Type"] == "application/json"
        assert "Content-Security-Policy" not in headers
        assert json.loads(body)["models"][0]["model"] == "fraud"

    def test_ui_is_always_the_page(self, base_url: str) -> None:
        """/ui answers the page whatever the Accept header says."""
        headers, body = _get(base_url + "/ui", "application/json")
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"driftmon status" in body


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ViewerFiles:
    """A CA with server and client certificates, and the viewer's web config."""
    return viewer_files(tmp_path_factory.mktemp("pki"))


def _fetch(
    url: str, context: ssl.SSLContext, accept: str, login: bool
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept}
    if login:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class TestAccess:
    @pytest.mark.parametrize(("path", "accept"), [("/ui", "*/*"), ("/status", BROWSER_ACCEPT)])
    def test_the_page_has_the_access_rules_of_status(
        self, pki: ViewerFiles, tmp_path: Path, path: str, accept: str
    ) -> None:
        """Behind TLS + basic auth the page is 401 without the viewer login, 200 with it."""
        server = start_server(tmp_path / "web.yml", pki.web_config(), metrics_public=True)
        try:
            context = pki.client_context()
            status, headers, body = _fetch(server.url + path, context, accept, login=False)
            assert status == 401 and b"fraud" not in body
            assert headers["WWW-Authenticate"].startswith("Basic")
            status, headers, body = _fetch(server.url + path, context, accept, login=True)
            assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
            assert b"fraud" in body
        finally:
            server.stop()

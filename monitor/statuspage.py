"""The status page: a snapshot as one self-contained HTML document (inline CSS and SVG).

`render_status_page(snapshot)` is a pure function: no JavaScript, no external asset, no
request back to the server, so the page works offline, behind a strict
Content-Security-Policy (`STATUS_PAGE_CSP`) and in a mail attachment. Per model: a header
(reference id and mode, model version, watermark, evaluation time, correction and q, drifted
/ total features), then one card per feature in drift order (`monitor.distribution.
drift_order`: flagged first, then PSI descending): the decision and the legs that fired,
PSI against its warning and critical thresholds, KS D (numeric) or TVD (categorical), the
smallest p-value of the feature's tests and its q-value, the missing ratio of both windows,
the out-of-range or unseen share, the sample counts, and a bar chart of the reference and
current shares per bin (`FeatureResult.distribution`). Only the first `max_charts` features
of a model get a chart; the rest are listed in a compact table, so a model with thousands of
features stays a page of bounded size per chart.

Every text that comes from the snapshot (model, feature and category names) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from monitor.distribution import drift_order
from monitor.model import (
    Distribution,
    FeatureKind,
    FeatureResult,
    ModelEvaluation,
    ReferenceView,
    Snapshot,
)

__all__ = ["STATUS_PAGE_CSP", "render_status_page", "wants_html"]

STATUS_PAGE_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
DASH: Final = "—"
_REASONS: Final = {"new_category": "new category"}
_CHART_W: Final = 560
_PLOT_LEFT: Final = 40
_PLOT_RIGHT: Final = 8
_PLOT_TOP: Final = 26
_PLOT_H: Final = 130
_LABEL_CHARS: Final = 14
_CHAR_W: Final = 6.2  # average width of an 11px label character

_STYLE: Final = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f4f6f8;--ref:#a3adb8;--cur:#2f6fde;
--drift:#d64545;--warn:#c77700;--ok:#2f9e44}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
header{background:#1f2933;color:#fff;padding:12px 24px;display:flex;
justify-content:space-between;align-items:baseline}
header h1{margin:0;font-size:18px;font-weight:600;letter-spacing:.2px}
header .when{color:#cbd2d9;font-size:13px}
main{padding:8px 24px 32px;max-width:1480px;margin:0 auto}
section.model{margin-top:18px}
section.model>h2{margin:0;font-size:17px;display:flex;gap:12px;align-items:baseline}
.meta{color:var(--muted);font-size:12.5px;margin:2px 0 12px}
.meta code{font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px 8px}
.card.drift{border-left:4px solid var(--drift)}
.card h3{margin:0;font-size:15px;display:flex;gap:10px;align-items:center}
.kind{color:var(--muted);font-weight:400;font-size:12.5px}
.badge{padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.drift{background:#fde8e8;color:#a61b1b}
.badge.ok{background:#e3f9e5;color:#1f7a33}
.badge.na{background:#eef0f3;color:var(--muted)}
.count{font-size:13px;font-weight:400;color:var(--muted)}
dl{display:flex;flex-wrap:wrap;gap:2px 18px;margin:8px 0 2px;font-size:12.5px}
dl div{display:flex;gap:5px}
dt{color:var(--muted)}
dd{margin:0;font-variant-numeric:tabular-nums;font-weight:500}
.crit{color:var(--drift)}
.warn{color:var(--warn)}
svg{display:block;width:100%;height:auto;margin-top:4px}
svg text{font-size:11px;fill:var(--muted)}
svg .grid-line{stroke:var(--line)}
svg .ref{fill:var(--ref)}
svg .cur{fill:var(--cur)}
.drift svg .cur{fill:var(--drift)}
.note{color:var(--muted);font-size:12.5px;margin:6px 0}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);margin-top:14px;
font-size:12.5px}
th,td{padding:4px 12px;text-align:left;border-bottom:1px solid var(--line)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def render_status_page(snapshot: Snapshot, *, max_charts: int = 50) -> bytes:
    """The whole HTML document for `snapshot` (UTF-8), see the module docstring."""
    created = _utc(snapshot.created_at) if snapshot.created_at > 0 else DASH
    if snapshot.models:
        body = "".join(_model(m, max_charts) for m in snapshot.models)
    else:
        body = '<p class="note">No model evaluated yet.</p>'
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>driftmon status</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>driftmon status</h1><span class="when">snapshot {created}</span></header>'
        f'<main>{body}<p class="note">The same data as JSON: GET /status with Accept: '
        "application/json. Shares are of each window's valid and missing values.</p></main>"
        "</body></html>\n"
    )
    return page.encode("utf-8")


# --- one model ---------------------------------------------------------------------------------


def _discovery(model: ModelEvaluation) -> list[str]:
    """The `features: auto` part of a model's meta line (empty for a listed feature set)."""
    d = model.discovery
    if d is None:
        return []
    if d.discovering:
        return [f"discovering features: {d.discovery_events} events seen"]
    more = "+" if d.unmonitored_saturated else ""
    names = ", ".join(html.escape(n) for n in d.unmonitored_names[:5])
    listed = f" (<code>{names}</code>{', ...' if d.unmonitored > 5 else ''})" if names else ""
    return [f"{d.monitored} discovered features, {d.unmonitored}{more} unmonitored names{listed}"]


def _model(model: ModelEvaluation, max_charts: int) -> str:
    features = drift_order(model.features)
    reference = html.escape(model.reference_id) if model.reference_id else DASH
    mode = f" ({html.escape(model.reference_mode)})" if model.reference_mode else ""
    meta = " · ".join(
        [
            f"reference <code>{reference}</code>{mode}",
            f"version {html.escape(model.model_version) or DASH}",
            f"watermark {_utc(model.watermark)}",
            f"evaluated {_utc(model.evaluated_at)}",
            f"{html.escape(model.correction.value.upper())} at q = {_sci(model.fdr_q)}",
            *([f"sampled {model.sample_rate:.4g} of messages"] if model.sample_rate < 1 else []),
            *_discovery(model),
        ]
    )
    drifted = model.drifted_features
    count_class = "crit" if drifted else ""
    ready = model.reference_id != ""
    cards = "".join(_card(model.model, f, ready) for f in features[:max_charts])
    rest = features[max_charts:]
    table = _table(rest) if rest else ""
    return (
        f'<section class="model"><h2>{html.escape(model.model)}'
        f'<span class="count {count_class}">{drifted} of {len(features)} features drifting'
        f'</span></h2><div class="meta">{meta}</div>{_registry(model.reference_view)}'
        f'{_segments(model)}<div class="grid">{cards}</div>{table}</section>'
    )


def _segments(model: ModelEvaluation) -> str:
    """The model's segments, worst first (as evaluated): events, flagged features, smallest q."""
    if not model.segment_by:
        return ""
    if not model.segments:
        return (
            f'<p class="note">segments by <code>{html.escape(model.segment_by)}</code>: none '
            "yet (the reference has no segment slices, or no evaluation ran)</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(s.segment)}</td>"
        f'<td class="num">{s.current_events}</td><td class="num">{s.reference_events}</td>'
        f'<td class="num">{s.drifted_features} of {len(s.features)}</td><td>'
        + html.escape(", ".join(f.name for f in s.features if f.drift_detected) or DASH)
        + f'</td><td class="num">'
        f"{_sci(min((f.qvalue for f in s.features if f.qvalue is not None), default=None))}"
        "</td></tr>"
        for s in model.segments
    )
    return (
        f'<p class="note">segments by <code>{html.escape(model.segment_by)}</code>, worst first '
        f"({model.segment_field_missing} events without the field, in __other__):</p>"
        "<table><thead><tr><th>segment</th><th>events</th><th>reference</th><th>drifting</th>"
        f"<th>flagged features</th><th>smallest q</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _registry(view: ReferenceView | None) -> str:
    """A registry model's reference: what the registry names, the shadows, the activations."""
    if view is None:
        return ""
    active = html.escape(view.registry_active) or DASH
    parts = [f"registry <code>{html.escape(view.topic)}</code> names <code>{active}</code>"]
    if view.following:
        shares = ", ".join(
            f"{html.escape(v or DASH)} {100 * s:.0f}%" for v, s in view.version_shares
        )
        parts.append(f"following model versions ({shares or 'none yet'})")
    if view.shadows:
        parts += [
            f"shadow <code>{html.escape(s.reference_id)}</code> ({html.escape(s.reason)}, "
            f"{s.events} events)"
            for s in view.shadows
        ]
    else:
        parts.append(html.escape(view.note))
    if view.registry_error:
        parts.append(f"registry unreachable: {html.escape(view.registry_error)}")
    rows = "".join(
        f"<li>{_utc(a.at)} <code>{html.escape(a.reference_id)}</code> "
        f"{html.escape(a.cause)}{' (from a shadow)' if a.gapless else ''}"
        f"{' by ' + html.escape(a.by) if a.by else ''}"
        f"{': ' + html.escape(a.reason) if a.reason else ''}</li>"
        for a in view.activations[:5]
    )
    activations = f'<ul class="note">{rows}</ul>' if rows else ""
    return f'<div class="meta">{" · ".join(parts)}</div>{activations}'


def _table(features: Sequence[FeatureResult]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f.name)}</td><td>{_badge(f)}</td>"
        f'<td class="num">{_fixed(f.psi)}</td><td class="num">{_sci(_min_p(f))}</td>'
        f'<td class="num">{_sci(f.qvalue)}</td></tr>'
        for f in features
    )
    return (
        f'<p class="note">{len(features)} more features, without charts:</p>'
        "<table><thead><tr><th>feature</th><th>decision</th><th>PSI</th><th>p</th><th>q</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


# --- one feature -------------------------------------------------------------------------------


def _card(model: str, feature: FeatureResult, ready: bool) -> str:
    kind = "numeric" if feature.kind is FeatureKind.NUMERIC else "categorical"
    css = "card drift" if feature.drift_detected else "card"
    return (
        f'<article class="{css}" id="{html.escape(f"{model}/{feature.name}", quote=True)}" '
        f'data-feature="{html.escape(feature.name, quote=True)}">'
        f'<h3>{html.escape(feature.name)}<span class="kind">{kind}</span>{_badge(feature)}</h3>'
        f"{_stats(feature)}{_chart(feature, ready)}</article>"
    )


def _badge(feature: FeatureResult) -> str:
    if feature.drift_detected:
        reasons = ", ".join(_REASONS.get(r, r) for r in feature.drift_reasons)
        return f'<span class="badge drift">DRIFT{" · " + reasons if reasons else ""}</span>'
    if feature.evaluated:
        return '<span class="badge ok">ok</span>'
    return '<span class="badge na">not evaluated</span>'


def _stats(feature: FeatureResult) -> str:
    psi = feature.psi
    bands = feature.thresholds
    level = ""
    if psi is not None:
        level = "crit" if psi >= bands.psi_critical else "warn" if psi >= bands.psi_warning else ""
    items = [
        ("PSI", f'<span class="{level}">{_fixed(psi)}</span>'),
        ("warn / crit", f"{bands.psi_warning:g} / {bands.psi_critical:g}"),
    ]
    if feature.kind is FeatureKind.NUMERIC:
        d = _fixed(feature.ks_statistic)
        err = feature.ks_error_bound
        items.append(
            ("KS D", d if err is None or feature.ks_statistic is None else f"{d} ± {err:.3f}")
        )
        items.append(("out of range", _percent(feature.out_of_range_ratio)))
    else:
        items.append(("TVD", _fixed(feature.tvd)))
        items.append(("unseen", _percent(feature.unseen_category_ratio)))
    items += [
        ("p", _sci(_min_p(feature))),
        ("q", _sci(feature.qvalue)),
        (
            "missing",
            f"{_percent(feature.reference_missing_ratio)} → "
            f"{_percent(feature.current_missing_ratio)}",
        ),
        ("n ref / cur", f"{feature.reference_samples:,} / {feature.current_samples:,}"),
    ]
    cells = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)
    return f"<dl>{cells}</dl>"


def _chart(feature: FeatureResult, ready: bool) -> str:
    picture = feature.distribution
    if picture is None and not ready:
        return '<p class="note">No reference yet: nothing to compare with.</p>'
    if picture is None:
        return '<p class="note">No distribution (export_distributions: none).</p>'
    if picture.reference is None and picture.current is None:
        return '<p class="note">Both windows are empty.</p>'
    return _svg(feature.name, picture)


def _svg(name: str, picture: Distribution) -> str:
    """Grouped bars per bin (reference, current) on one y scale with grid lines at ticks."""
    bins = picture.bins
    ref = picture.reference or (0.0,) * len(bins)
    cur = picture.current or (0.0,) * len(bins)
    top, step = _scale(max(*ref, *cur))
    longest = min(_LABEL_CHARS, max(len(b) for b in bins))
    rotate = longest * _CHAR_W > (_CHART_W - _PLOT_LEFT) / len(bins) * 0.9
    label_h = round(18 + longest * _CHAR_W * 0.64) if rotate else 22  # sin 40° ~ 0.64
    height = _PLOT_TOP + _PLOT_H + label_h
    left = _PLOT_LEFT
    if rotate:  # the first label runs down-left from its bar: keep it inside the chart
        left = max(left, round(longest * _CHAR_W * 0.77 + 4 - (_CHART_W - left) / len(bins) / 2))
    plot_w = _CHART_W - left - _PLOT_RIGHT
    group = plot_w / len(bins)
    bar_w = group * 0.36
    base = _PLOT_TOP + _PLOT_H
    parts: list[str] = []
    for i in range(round(top / step) + 1):
        value = i * step
        y = base - _PLOT_H * value / top
        parts.append(
            f'<line class="grid-line" x1="{left}" x2="{_CHART_W - _PLOT_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/><text x="{left - 5}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_tick(value)}</text>'
        )
    for i, label in enumerate(bins):
        x = left + i * group
        tip = html.escape(
            f"{label}: reference {_share(picture.reference, i)}, "
            f"current {_share(picture.current, i)}"
        )
        for css, shares, offset, present in (
            ("ref", ref, 0.13, picture.reference is not None),
            ("cur", cur, 0.51, picture.current is not None),
        ):
            if not present:
                continue
            h = _PLOT_H * shares[i] / top
            parts.append(
                f'<rect class="{css}" x="{x + group * offset:.1f}" y="{base - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{tip}</title></rect>'
            )
        short = _shorten(label)
        cx = x + group / 2
        if rotate:
            parts.append(
                f'<text x="{cx:.1f}" y="{base + 12}" text-anchor="end" '
                f'transform="rotate(-40 {cx:.1f} {base + 12})">{html.escape(short)}'
                f"<title>{html.escape(label)}</title></text>"
            )
        else:
            parts.append(
                f'<text x="{cx:.1f}" y="{base + 15}" text-anchor="middle">{html.escape(short)}'
                "</text>"
            )
    legend = (
        f'<rect class="ref" x="{_PLOT_LEFT}" y="6" width="12" height="10"/>'
        f'<text x="{_PLOT_LEFT + 17}" y="15">reference{_empty(picture.reference)}</text>'
        f'<rect class="cur" x="{_PLOT_LEFT + 120}" y="6" width="12" height="10"/>'
        f'<text x="{_PLOT_LEFT + 137}" y="15">current{_empty(picture.current)}</text>'
        f'<text x="{_CHART_W - _PLOT_RIGHT}" y="15" text-anchor="end">share of values per bin'
        "</text>"
    )
    label = html.escape(f"Reference and current distribution of {name}", quote=True)
    return (
        f'<svg viewBox="0 0 {_CHART_W} {height}" role="img" aria-label="{label}" '
        f'xmlns="http://www.w3.org/2000/svg">{legend}{"".join(parts)}</svg>'
    )


# --- formatting --------------------------------------------------------------------------------

_STEPS: Final = (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25)


def _scale(largest: float) -> tuple[float, float]:
    """(axis top, tick step): the smallest step giving at most 5 ticks above 0, top >= largest."""
    largest = min(max(largest, 0.01), 1.0)
    for step in _STEPS:
        top = math.ceil(largest / step - 1e-9) * step
        if top / step <= 5:
            return top, step
    return 1.0, 0.25


def _shorten(label: str) -> str:
    """A label cut to _LABEL_CHARS with "…" in the middle: both ends tell categories apart."""
    if len(label) <= _LABEL_CHARS:
        return label
    head = (_LABEL_CHARS - 1) // 2
    return label[:head] + "…" + label[len(label) - (_LABEL_CHARS - 1 - head) :]


def _tick(value: float) -> str:
    text = f"{100 * value:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _share(shares: tuple[float, ...] | None, index: int) -> str:
    return DASH if shares is None else f"{100 * shares[index]:.1f}%"


def _empty(shares: tuple[float, ...] | None) -> str:
    return " (empty window)" if shares is None else ""


def _min_p(feature: FeatureResult) -> float | None:
    values: Iterable[float | None] = (
        feature.ks_pvalue,
        feature.psi_pvalue,
        feature.chi2_pvalue,
        feature.new_category_pvalue,
        feature.missing_pvalue,
    )
    present = [p for p in values if p is not None]
    return min(present) if present else None


def _utc(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return DASH
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return DASH


def _fixed(value: float | None) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _sci(value: float | None) -> str:
    """p/q-values: "0.31" from 0.01 up, "1.2e-40" below, "0" for zero, "—" when absent."""
    if value is None or not math.isfinite(value):
        return DASH
    if value == 0:
        return "0"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def wants_html(accept: str) -> bool:
    """True when an Accept header prefers text/html to application/json.

    Media ranges are compared by their q (default 1; malformed q counts as 0): HTML wins
    when text/html has q > 0 and at least the q of application/json (an absent JSON entry
    counts as 0). Wildcards do not count for HTML, so `*/*` (curl) keeps JSON.
    """
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not math.isfinite(q):
                    q = 0.0
        media = media.lower()
        quality[media] = max(quality.get(media, 0.0), q)
    html_q = quality.get("text/html", 0.0)
    return html_q > 0 and html_q >= quality.get("application/json", 0.0)

"""`driftmon status`: fetch a daemon's /status JSON and render it as a terminal table.

Layer 4, stdlib only (urllib, ssl). `fetch_status` returns the JSON document that
`monitor.http.snapshot_to_json` serves; `render_status` turns it into text: per model a header
line (model, reference id and mode, model version, watermark in UTC, drifted / total
features), a line with the evaluation time and the multiple-testing correction, and one row
per feature: drifted features first, then by PSI descending (features without a PSI last),
then by name.

Columns: FEATURE, KIND (num/cat), DRIFT ("DRIFT" and the decision legs that fired, with
new_category shown as "new-cat"; "ok"; "no ref" when the feature has no usable reference
(`reference_ready` false: the reason is its `reference_note` in --json); or "—" when the
feature was not evaluated), PSI,
KS D/TVD (numeric: KS D ± the binning error bound; categorical: total variation distance),
p (the smallest p-value of the feature's tests: KS, PSI, χ², new category, missing), q (its
multiple-testing-adjusted q-value), MISS ref→cur (missing ratio, reference→current), OOR/NEW
(out-of-range ratio for a numeric feature, unseen-category ratio for a categorical one),
N ref/cur (valid values in each window). A value that is absent is shown as "—".

`render_feature` draws one feature's two distributions (the /status `distribution` field) as
a text histogram: one row per bin with the reference share, its bar, the current share, its
bar and the change in percentage points; both bars use one scale (the largest share is the
full bar width), drawn with eighth-block characters.

A daemon behind a web config file (TLS, basic auth) is reached with an `Access`: the CA bundle
that signs its certificate, an optional client certificate and key, and basic auth credentials
(sent only over the URL given, never logged or printed).
"""

from __future__ import annotations

import base64
import json
import math
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError

__all__ = [
    "Access",
    "StatusError",
    "UnknownFeatureError",
    "fetch_status",
    "render_feature",
    "render_status",
    "status_url",
]

DASH = "—"
_RED = "\x1b[1;31m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"
_GAP = "  "
_MIN_FEATURE_WIDTH = 8
_MIN_DRIFT_WIDTH = 6  # "DRIFT…"
_REASONS = {"new_category": "new-cat"}  # shorter labels for long decision legs
_P_KEYS = ("ks_pvalue", "psi_pvalue", "chi2_pvalue", "new_category_pvalue", "missing_pvalue")
_EIGHTHS = " ▏▎▍▌▋▊▉"
_FULL = "█"
_MAX_BIN_WIDTH = 24
_MIN_BAR = 10


class StatusError(MonitorError):
    """/status could not be fetched or is not a driftmon status document (one-line message)."""


class UnknownFeatureError(StatusError):
    """The feature asked for with `--feature` is in no model of the /status document."""


def status_url(url: str) -> str:
    """The /status URL for a base URL: adds `http://` when no scheme is given and `/status`
    unless the path already ends with it (`localhost:9108` -> `http://localhost:9108/status`).
    """
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    return url if url.endswith("/status") else url + "/status"


@dataclass(frozen=True)
class Access:
    """How to reach a daemon behind TLS and basic auth (every field optional).

    `ca_file` verifies the daemon's certificate for https URLs (else the system CAs are used);
    `cert_file` + `key_file` are a client certificate for mutual TLS; `user` + `password` are
    sent as HTTP basic auth.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    user: str | None = None
    password: str | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header when a user is set."""
        if self.user is None:
            return {}
        pair = f"{self.user}:{self.password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context with the CA bundle and client certificate, or None (defaults)."""
        if self.ca_file is None and self.cert_file is None:
            return None
        context = ssl.create_default_context(
            cafile=None if self.ca_file is None else str(self.ca_file)
        )
        if self.cert_file is not None:
            key = None if self.key_file is None else str(self.key_file)
            context.load_cert_chain(str(self.cert_file), key)
        return context


def fetch_status(url: str, timeout: float = 5, *, access: Access | None = None) -> dict[str, Any]:
    """GET `status_url(url)` and return the decoded JSON object.

    Raises StatusError with a one-line message when the server cannot be reached (refused,
    unknown host, timeout, TLS failure), answers anything but 200 (401 with a hint about
    credentials), or sends something that is not a JSON object with a "models" list.
    """
    access = access or Access()
    target = status_url(url)
    headers = {"Accept": "application/json", **access.headers()}
    request = urllib.request.Request(target, headers=headers)
    try:
        context = access.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise StatusError(f"cannot load the TLS files: {_reason(exc)}") from None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            hint = ""
            if exc.code == HTTPStatus.UNAUTHORIZED:
                hint = (
                    " (wrong credentials)"
                    if access.user
                    else " (give --user and $DRIFTMON_STATUS_PASSWORD or --password-file)"
                )
            raise StatusError(f"GET {target}: HTTP {exc.code} {exc.reason}{hint}") from None
    except urllib.error.URLError as exc:
        raise StatusError(f"cannot reach {target}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise StatusError(f"cannot reach {target}: timed out after {timeout:g}s") from None
    except (OSError, ValueError) as exc:  # connection reset mid-response, malformed URL
        raise StatusError(f"cannot reach {target}: {_reason(exc)}") from None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(f"GET {target}: the response is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise StatusError(f"GET {target}: not a driftmon status document (no 'models' list)")
    return document


def _reason(reason: object) -> str:
    """A short text for a connection failure."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is driftmon running and listening there?)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS: {reason.verify_message or 'certificate verify failed'} (see --ca-file)"
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


# --- rendering ---------------------------------------------------------------------------------


def _utc(seconds: object) -> str:
    """Epoch seconds as `YYYY-MM-DD HH:MM:SSZ`; "—" for None or a non-number."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return DASH
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return DASH


def _number(value: object) -> float | None:
    """A finite float from a JSON number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fixed(value: object, digits: int = 3) -> str:
    x = _number(value)
    return DASH if x is None else f"{x:.{digits}f}"


def _sci(value: object) -> str:
    """Compact p/q-value: "0.31" from 0.01 up, "1.2e-40" below, "0" for zero, "—" for None."""
    x = _number(value)
    if x is None:
        return DASH
    if x == 0:
        return "0"
    if abs(x) >= 0.01:
        return f"{x:.2f}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _percent(value: object) -> str:
    x = _number(value)
    return DASH if x is None else f"{100 * x:.1f}%"


def _count(value: object) -> str:
    """An event count, shortened from 100,000 up (123k, 4.5M)."""
    x = _number(value)
    if x is None:
        return DASH
    n = int(x)
    if n < 100_000:
        return str(n)
    if n < 10_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def _ks(feature: Mapping[str, Any]) -> str:
    d = _number(feature.get("ks_statistic"))
    if d is None:
        return DASH
    err = _number(feature.get("ks_error_bound"))
    return f"{d:.3f}" if err is None else f"{d:.3f}±{err:.3f}"


def _min_p(feature: Mapping[str, Any]) -> float | None:
    values = [p for p in (_number(feature.get(k)) for k in _P_KEYS) if p is not None]
    return min(values) if values else None


NO_REFERENCE = "no ref"


def _drift(feature: Mapping[str, Any]) -> str:
    if feature.get("drift_detected"):
        reasons = feature.get("drift_reasons") or []
        short = [_REASONS.get(str(r), str(r)) for r in reasons]
        return "DRIFT " + ",".join(short) if short else "DRIFT"
    if feature.get("reference_ready") is False:
        return NO_REFERENCE
    return "ok" if feature.get("evaluated") else DASH


def _kind(feature: Mapping[str, Any]) -> str:
    kind = str(feature.get("kind", ""))
    return {"numeric": "num", "categorical": "cat"}.get(kind, kind or DASH)


def _sort_key(feature: Mapping[str, Any]) -> tuple[int, int, float, str]:
    psi = _number(feature.get("psi"))
    return (
        0 if feature.get("drift_detected") else 1,
        0 if psi is not None else 1,
        -(psi or 0.0),
        str(feature.get("name", "")),
    )


_Column = tuple[str, bool, Callable[[Mapping[str, Any]], str]]  # header, right-aligned, cell

_COLUMNS: tuple[_Column, ...] = (
    ("FEATURE", False, lambda f: str(f.get("name", DASH))),
    ("KIND", False, _kind),
    ("DRIFT", False, _drift),
    ("PSI", True, lambda f: _fixed(f.get("psi"))),
    (
        "KS D/TVD",
        True,
        lambda f: _fixed(f.get("tvd")) if f.get("kind") == "categorical" else _ks(f),
    ),
    ("p", True, lambda f: _sci(_min_p(f))),
    ("q", True, lambda f: _sci(f.get("qvalue"))),
    (
        "MISS ref→cur",
        True,
        lambda f: (
            f"{_percent(f.get('reference_missing_ratio'))}→"
            f"{_percent(f.get('current_missing_ratio'))}"
        ),
    ),
    (
        "OOR/NEW",
        True,
        lambda f: _percent(
            f.get("unseen_category_ratio")
            if f.get("kind") == "categorical"
            else f.get("out_of_range_ratio")
        ),
    ),
    (
        "N ref/cur",
        True,
        lambda f: f"{_count(f.get('reference_samples'))}/{_count(f.get('current_samples'))}",
    ),
)


def _clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, the last one replaced by "…" when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def _fit_widths(widths: list[int], width: int) -> list[int]:
    """Shrink DRIFT, then FEATURE (never below their minimums) until the row fits `width`."""
    out = list(widths)
    for index, minimum in ((2, _MIN_DRIFT_WIDTH), (0, _MIN_FEATURE_WIDTH)):
        excess = sum(out) + len(_GAP) * (len(out) - 1) - width
        if excess <= 0:
            break
        out[index] = max(min(out[index], minimum), out[index] - excess)
    return out


def _table(features: Sequence[Mapping[str, Any]], width: int, color: bool) -> list[str]:
    rows = [[cell(f) for _, _, cell in _COLUMNS] for f in features]
    headers = [header for header, _, _ in _COLUMNS]
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=True)]
    widths = _fit_widths(widths, width)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for (_, right, _), cell, w in zip(_COLUMNS, cells, widths, strict=True):
            clipped = _clip(cell, w)
            parts.append(clipped.rjust(w) if right else clipped.ljust(w))
        return _clip(_GAP.join(parts).rstrip(), width)

    out = [line(headers)]
    for feature, cells in zip(features, rows, strict=True):
        text = line(cells)
        if color and feature.get("drift_detected"):
            text = f"{_RED}{text}{_RESET}"
        elif color and not feature.get("evaluated"):
            text = f"{_DIM}{text}{_RESET}"
        out.append(text)
    return out


def _model_header(model: Mapping[str, Any], n_features: int) -> str:
    reference = str(model.get("reference_id") or DASH)
    mode = model.get("reference_mode")
    drifted = model.get("drifted_features")
    if not isinstance(drifted, int):
        drifted = sum(1 for f in model.get("features") or [] if f.get("drift_detected"))
    parts = [
        f"model {model.get('model', DASH)}",
        f"reference {reference}" + (f" ({mode})" if mode else ""),
        f"version {model.get('model_version') or DASH}",
        f"watermark {_utc(model.get('watermark'))}",
        f"drifted {drifted}/{n_features}",
    ]
    return "  ".join(parts)


def _registry_lines(view: object) -> list[str]:
    """A registry model's reference: the registry's choice, shadows, the last activations."""
    if not isinstance(view, Mapping):
        return []
    line = f"  registry {view.get('topic') or DASH} names {view.get('registry_active') or DASH}"
    if view.get("following"):
        shares = ", ".join(
            f"{v or DASH} {_percent(s)}"
            for v, s in (view.get("version_shares") or [])
            if isinstance(v, str)
        )
        line += f"; following model versions ({shares or 'none yet'})"
    lines = [line]
    shadows = [s for s in view.get("shadows") or [] if isinstance(s, Mapping)]
    for shadow in shadows:
        lines.append(
            f"  shadow {shadow.get('reference_id')} ({shadow.get('reason')}, "
            f"{_count(shadow.get('events'))} events)"
        )
    if not shadows and view.get("note"):
        lines.append(f"  {view['note']}")
    if view.get("registry_error"):
        lines.append(f"  registry unreachable: {view['registry_error']}")
    for activation in [a for a in view.get("activations") or [] if isinstance(a, Mapping)][:3]:
        gapless = " (from a shadow)" if activation.get("gapless") else ""
        lines.append(
            f"  activated {_utc(activation.get('at'))} {activation.get('reference_id')} "
            f"{activation.get('cause')}{gapless}"
        )
    return lines


def render_status(status: Mapping[str, Any], *, width: int = 120, color: bool = False) -> str:
    """The terminal view of a /status document (see the module docstring); no trailing newline.

    Lines are at most `width` characters (not counting ANSI codes): the FEATURE and DRIFT
    columns shrink first (cut with "…"), then any line still too long is cut. With `color`,
    model headers are bold, drifted rows red and unevaluated rows dim.
    """
    models = [m for m in status.get("models") or [] if isinstance(m, Mapping)]
    if not models:
        created = _utc(status.get("created_at"))
        return f"no model evaluated yet (snapshot created {created})"
    blocks: list[str] = []
    any_unevaluated = False
    any_unready = False
    for model in models:
        features = sorted(
            (f for f in model.get("features") or [] if isinstance(f, Mapping)), key=_sort_key
        )
        any_unevaluated |= any(not f.get("evaluated") for f in features)
        any_unready |= any(f.get("reference_ready") is False for f in features)
        header = _clip(_model_header(model, len(features)), width)
        detail = _clip(
            f"  evaluated {_utc(model.get('evaluated_at'))}, correction "
            f"{model.get('correction') or DASH} at q={_sci(model.get('fdr_q'))}",
            width,
        )
        lines = [f"{_BOLD}{header}{_RESET}" if color else header, detail]
        lines += [_clip(line, width) for line in _registry_lines(model.get("reference_view"))]
        lines += [_clip(line, width) for line in _discovery_lines(model.get("discovery"))]
        lines += _table(features, width, color) if features else ["  (no features)"]
        lines += [_clip(line, width) for line in segment_lines(model)]
        blocks.append("\n".join(lines))
    if any_unevaluated:
        blocks.append(
            _clip(f"DRIFT {DASH}: not evaluated (a window holds fewer than min_samples)", width)
        )
    if any_unready:
        blocks.append(
            _clip(f"{NO_REFERENCE}: no usable reference yet (reference_note in --json)", width)
        )
    return "\n\n".join(blocks)


SEGMENT_ROWS = 5
"""Segments listed per model in the terminal view (worst first; --json has them all)."""


def _discovery_lines(discovery: object) -> list[str]:
    """`features: auto`: discovery progress, or the discovered and unmonitored counts."""
    if not isinstance(discovery, Mapping):
        return []
    if discovery.get("discovering"):
        return [f"  discovering features: {discovery.get('discovery_events')} events seen"]
    more = "+" if discovery.get("unmonitored_saturated") else ""
    names = [str(n) for n in discovery.get("unmonitored_names") or []][:5]
    listed = f" ({', '.join(names)}{', ...' if len(names) == 5 else ''})" if names else ""
    return [
        f"  {discovery.get('monitored')} discovered features, "
        f"{discovery.get('unmonitored')}{more} unmonitored names{listed}"
    ]


def segment_lines(model: Mapping[str, Any]) -> list[str]:
    """The worst `SEGMENT_ROWS` segments of a model with `segment_by` (none otherwise)."""
    field = model.get("segment_by")
    if not field:
        return []
    segments = [s for s in model.get("segments") or [] if isinstance(s, Mapping)]
    missing = model.get("segment_field_missing")
    lines = [
        f"  segments by {field}, worst first ({_count(missing)} events without the field, "
        "in __other__):"
    ]
    if not segments:
        return [*lines, "    none yet (no segment slices in the reference, or no evaluation)"]
    for segment in segments[:SEGMENT_ROWS]:
        features = [f for f in segment.get("features") or [] if isinstance(f, Mapping)]
        flagged = [
            f"{f.get('name')} ({','.join(f.get('drift_reasons') or [])})"
            for f in features
            if f.get("drift_detected")
        ]
        lines.append(
            f"    {segment.get('segment')!s:<20} {_count(segment.get('current_events')):>9} "
            f"events  drifted {segment.get('drifted_features', 0)}/{len(features)}"
            + (f"  {'; '.join(flagged)}" if flagged else "")
        )
    if len(segments) > SEGMENT_ROWS:
        lines.append(f"    … {len(segments) - SEGMENT_ROWS} more segments (--json)")
    return lines


# --- one feature's distributions -------------------------------------------------------------


def bar(share: float, scale: float, width: int) -> str:
    """A bar of `share / scale * width` cells in eighth blocks (at least "▏" when share > 0)."""
    if scale <= 0 or share <= 0:
        return ""
    eighths = round(min(1.0, share / scale) * width * 8)
    full, rest = divmod(max(eighths, 1), 8)
    return _FULL * full + (_EIGHTHS[rest] if rest else "")


def _shares(picture: Mapping[str, Any], key: str, n_bins: int) -> list[float] | None:
    values = picture.get(key)
    if not isinstance(values, list) or len(values) != n_bins:
        return None
    numbers = [_number(v) for v in values]
    return None if any(v is None for v in numbers) else [v or 0.0 for v in numbers]


def _feature_header(model: Mapping[str, Any], feature: Mapping[str, Any]) -> str:
    kind = str(feature.get("kind") or DASH)
    effect = (
        f"TVD {_fixed(feature.get('tvd'))}" if kind == "categorical" else f"KS D {_ks(feature)}"
    )
    return "  ".join(
        [
            f"model {model.get('model', DASH)}",
            f"feature {feature.get('name', DASH)} ({kind})",
            _drift(feature),
            f"PSI {_fixed(feature.get('psi'))}",
            effect,
            f"p {_sci(_min_p(feature))}",
            f"q {_sci(feature.get('qvalue'))}",
        ]
    )


def _histogram(
    model: Mapping[str, Any], feature: Mapping[str, Any], width: int, color: bool
) -> list[str]:
    picture = feature.get("distribution")
    if not isinstance(picture, Mapping) and not model.get("reference_id"):
        return ["  no reference yet: nothing to compare with"]
    if not isinstance(picture, Mapping):
        return ["  no distribution (export_distributions is none for this model)"]
    bins = [str(b) for b in picture.get("bins") or []]
    reference = _shares(picture, "reference", len(bins))
    current = _shares(picture, "current", len(bins))
    counts = (
        f"  reference {_count(feature.get('reference_samples'))} values, current "
        f"{_count(feature.get('current_samples'))} values (+ missing); share of each bin"
    )
    if not bins or (reference is None and current is None):
        return [counts, "  both windows are empty"]
    ref = reference or [0.0] * len(bins)
    cur = current or [0.0] * len(bins)
    label_w = min(_MAX_BIN_WIDTH, max(len("BIN"), *(len(b) for b in bins)))
    pct_w = 6  # "100.0%"
    delta_w = 8  # "+100.0pp"
    fixed = label_w + 2 * (pct_w + 1) + delta_w + 4 * len(_GAP)
    bar_w = max(_MIN_BAR, (width - fixed) // 2)
    scale = max(*ref, *cur)

    def cell(share: float | None, present: bool) -> str:
        return (
            DASH.rjust(pct_w)
            if not present or share is None
            else f"{100 * share:.1f}%".rjust(pct_w)
        )

    head = _GAP.join(
        [
            "BIN".ljust(label_w),
            "REFERENCE".ljust(pct_w + 1 + bar_w),
            "CURRENT".ljust(pct_w + 1 + bar_w),
            "Δ".rjust(delta_w),
        ]
    )
    lines = [counts, _clip(head.rstrip(), width)]
    for name, r, c in zip(bins, ref, cur, strict=True):
        ref_bar = bar(r, scale, bar_w).ljust(bar_w) if reference else " " * bar_w
        cur_bar = bar(c, scale, bar_w).ljust(bar_w) if current else " " * bar_w
        if color and current and reference and c > r:
            cur_bar = f"{_RED}{cur_bar}{_RESET}"
        elif color:
            cur_bar = f"{_BOLD}{cur_bar}{_RESET}"
        delta = f"{100 * (c - r):+.1f}pp" if reference is not None and current is not None else DASH
        row = _GAP.join(
            [
                _clip(name, label_w).ljust(label_w),
                f"{cell(r, reference is not None)} {ref_bar}",
                f"{cell(c, current is not None)} {cur_bar}",
                delta.rjust(delta_w),
            ]
        )
        lines.append(row.rstrip())
    if reference is None or current is None:
        lines.append(f"  the {'reference' if reference is None else 'current'} window is empty")
    return lines


def render_feature(
    status: Mapping[str, Any], name: str, *, width: int = 120, color: bool = False
) -> str:
    """The distributions of feature `name` in every model that has it, as text histograms.

    Raises UnknownFeatureError when no model of the document has a feature of that name (the
    message lists the features there are, cut to a readable length).
    """
    blocks: list[str] = []
    seen: list[str] = []
    for model in status.get("models") or []:
        if not isinstance(model, Mapping):
            continue
        for feature in model.get("features") or []:
            if not isinstance(feature, Mapping):
                continue
            seen.append(str(feature.get("name")))
            if feature.get("name") != name:
                continue
            header = _clip(_feature_header(model, feature), width)
            lines = [f"{_BOLD}{header}{_RESET}" if color else header]
            lines += _histogram(model, feature, width, color)
            blocks.append("\n".join(lines))
    if not blocks:
        known = ", ".join(sorted(set(seen))) or "none"
        raise UnknownFeatureError(f"no feature {name!r} in /status (features: {_clip(known, 200)})")
    return "\n\n".join(blocks)

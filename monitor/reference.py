"""Reference profiles: frozen bins plus reference counts, fitted, saved and validated.

A profile is what a model's drift is measured against: for every feature its frozen bins
(numeric edges, or top-K categories + vocabulary + singleton fraction) and its reference
counts in the histogram slot layout (value slots, then missing, then invalid). Its
`reference_id` is a content hash ("sha256:" + 16 hex digits of the canonical JSON of the
bins and counts), so two profiles with the same content have the same id whatever their
creation time, and the id changes whenever a bin or a count changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.correlation import CorrelationReference
from monitor.edges import learn_edges, validate_edges
from monitor.errors import ReferenceDataError
from monitor.histogram import (
    INVALID_CATEGORY_PREFIX,
    CategoricalBins,
    CountMatrix,
    ModelLayout,
    NumericBins,
)
from monitor.model import (
    DEFAULT_MAX_BINS,
    DEFAULT_TOP_K,
    MAX_CATEGORY_CHARS,
    FeatureKind,
    FeatureSpec,
)
from monitor.reconstruction import PcaBasis
from monitor.segment_slices import SegmentSlices, slices_from_json, slices_to_json

PROFILE_FORMAT = "driftmon.reference/v1"
MAX_VOCABULARY = 100_000
MAX_TOP_K = 1000
#: The largest count of one reference bin (exact as a float; a count of 2**63 registered and
#: then crashed every replica that activated it).
MAX_COUNT = 2**53
MAX_EDGES = 1025
"""Hard cap on the edges of one numeric feature in any profile read (max_bins 1024 + 1)."""
_FEATURE_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
"""A profile's feature name: what a configured one may be (`config`); a name no configured
feature can have (a 1 MB one was quoted whole in every message about it) is refused."""
MAX_PROFILE_BYTES = 64 * 1024 * 1024
"""The largest profile JSON driftmon reads or writes: a `file` reference, a registry profile
(after decompression) and one `driftmon registry push` sends. 100,000 vocabulary entries fit,
or ~14,000 numeric features at 128 bins. Parsing one peaks at about 9x its size (Python
objects of the JSON, then numpy arrays; 400 MiB for a 46 MiB profile), so the bound also
bounds what one profile can cost a replica (it was 512 MiB for the registry: ~4.5 GiB)."""
MIN_NUMERIC_VALUES = 50
"""Fewest finite values a numeric feature's reference is fitted from (`reference fit`, warm-up,
and a `file` profile loaded by the daemon): fewer give a handful of edges and no test."""
_REFERENCE_ID = re.compile(r"sha256:[0-9a-f]{16}")


@dataclass(frozen=True, slots=True, eq=False)
class FeatureProfile:
    """One feature of a reference profile: its bins and its reference counts."""

    name: str
    kind: FeatureKind
    bins: NumericBins | CategoricalBins
    counts: tuple[int, ...]

    @property
    def samples(self) -> int:
        """Non-missing, valid reference values."""
        return int(sum(self.counts[:-2]))


@dataclass(frozen=True, slots=True, eq=False)
class ReferenceProfile:
    """A model's frozen reference (see the module docstring)."""

    model: str
    features: tuple[FeatureProfile, ...]
    events: int
    model_version: str = ""
    created_at: str = ""
    source: str = ""
    reference_id: str = field(default="")
    joint: str = ""
    """The multivariate references (correlation group, PCA basis) as canonical JSON, or ""."""
    segments: SegmentSlices | None = None
    """The reference's slices per segment (`segment_by` models; monitor/segment_slices.py)."""
    extends: str = ""
    """The reference id whose fleet window this profile continues ("": its own). A fleet's
    warm-up of features added to an adopted reference sets it (docs/fleet.md): the
    unchanged features keep their bins, so their counts carry over."""

    @property
    def ring_id(self) -> str:
        """The reference id a fleet names this profile's window rings by: `extends`, else
        `reference_id`."""
        return self.extends or self.reference_id

    def feature(self, name: str) -> FeatureProfile | None:
        """The named feature's profile, if the profile has it."""
        for feature in self.features:
            if feature.name == name:
                return feature
        return None


def fit_numeric(
    name: str, values: npt.ArrayLike, max_bins: int = DEFAULT_MAX_BINS, min_values: int = 1
) -> FeatureProfile:
    """Learn edges from a numeric sample and count it (NaN = missing, +-inf = invalid).

    ReferenceDataError when the sample holds fewer than `min_values` finite values.
    """
    column = np.asarray(values, dtype=np.float64).ravel()
    finite = int(np.isfinite(column).sum())
    if 0 < finite < min_values:
        raise ReferenceDataError(
            f"feature {name!r}: only {finite} finite values, at least {min_values} are needed"
        )
    try:
        bins = NumericBins(learn_edges(column, max_bins))
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"feature {name!r}: {exc}") from exc
    layout = ModelLayout([(name, bins)], [])
    counts = layout.count(column[None, :], [])[0]
    return FeatureProfile(name, FeatureKind.NUMERIC, bins, _trim(counts, bins.value_slots))


def fit_categorical(
    name: str,
    values: Sequence[object] | npt.NDArray[np.object_],
    top_k: int = DEFAULT_TOP_K,
) -> FeatureProfile:
    """Top-K categories by count (ties by name), the vocabulary and the singleton fraction."""
    column = np.asarray(values, dtype=object)
    present = column[column != None]  # noqa: E711 (elementwise)
    # Python strings, not numpy's str dtype, which drops trailing NULs (see ModelLayout).
    tally = Counter(map(str, present.tolist()))
    ranked = sorted(
        ((s, c) for s, c in tally.items() if not s.startswith(INVALID_CATEGORY_PREFIX)),
        key=lambda item: (-item[1], item[0]),
    )
    n_valid = sum(c for _, c in ranked)
    if n_valid == 0:
        raise ReferenceDataError(f"feature {name!r}: the reference sample has no category value")
    top = tuple(s for s, _ in ranked[:top_k])
    vocabulary = frozenset(s for s, _ in ranked[:MAX_VOCABULARY])
    singleton_fraction = sum(1 for _, c in ranked if c == 1) / n_valid
    doubleton_fraction = sum(1 for _, c in ranked if c == 2) / n_valid
    bins = CategoricalBins(top, vocabulary, singleton_fraction, doubleton_fraction)
    layout = ModelLayout([], [(name, bins)])
    hist = layout.count(np.empty((0, column.size)), [column])[0]
    return FeatureProfile(name, FeatureKind.CATEGORICAL, bins, _trim(hist, bins.value_slots))


def _trim(row: npt.NDArray[np.int64], value_slots: int) -> tuple[int, ...]:
    """A layout row reduced to the feature's own value slots + missing + invalid."""
    return (*tuple(int(v) for v in row[:value_slots].tolist()), int(row[-2]), int(row[-1]))


def build_profile(
    model: str,
    features: Sequence[FeatureProfile],
    events: int,
    *,
    model_version: str = "",
    created_at: str = "",
    source: str = "",
    joint: Mapping[str, Any] | None = None,
    segments: SegmentSlices | None = None,
    extends: str = "",
) -> ReferenceProfile:
    """Assemble a profile and compute its content-hash `reference_id`.

    `joint`: the multivariate references (`monitor.correlation`, `monitor.reconstruction`),
    JSON-ready. The id covers the segment slices, the joint references and `extends` when
    there are any (a profile without them keeps the id it had before they existed).
    """
    profile = ReferenceProfile(
        model=model,
        features=tuple(features),
        events=int(events),
        model_version=model_version,
        created_at=created_at,
        source=source,
        joint=json.dumps(dict(joint), sort_keys=True, separators=(",", ":")) if joint else "",
        segments=segments,
        extends=extends,
    )
    return _with_id(profile)


def joint_section(profile: ReferenceProfile, key: str) -> object:
    """One section of the profile's multivariate references (None when absent)."""
    if not profile.joint:
        return None
    return json.loads(profile.joint).get(key)


def _with_id(profile: ReferenceProfile) -> ReferenceProfile:
    hashed: list[Any] = [_feature_json(f) for f in profile.features]
    if profile.segments is not None:
        hashed.append({"segments": slices_to_json(profile.segments)})
    if profile.joint:
        hashed.append({"joint": json.loads(profile.joint)})
    if profile.extends:
        hashed.append({"extends": profile.extends})
    content = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return ReferenceProfile(
        model=profile.model,
        features=profile.features,
        events=profile.events,
        model_version=profile.model_version,
        created_at=profile.created_at,
        source=profile.source,
        reference_id=f"sha256:{digest}",
        joint=profile.joint,
        segments=profile.segments,
        extends=profile.extends,
    )


def _feature_json(feature: FeatureProfile) -> dict[str, Any]:
    data: dict[str, Any] = {"name": feature.name, "kind": feature.kind.value}
    if isinstance(feature.bins, NumericBins):
        data["edges"] = [float(e) for e in feature.bins.edges.tolist()]
    else:
        data["categories"] = list(feature.bins.categories)
        data["vocabulary"] = sorted(feature.bins.vocabulary)
        data["singleton_fraction"] = feature.bins.singleton_fraction
        if feature.bins.doubleton_fraction is not None:
            data["doubleton_fraction"] = feature.bins.doubleton_fraction
    data["counts"] = list(feature.counts)
    return data


def profile_to_json(profile: ReferenceProfile) -> str:
    """Serialise a profile (stable key order; floats round-trip exactly)."""
    document = {
        "format": PROFILE_FORMAT,
        "model": profile.model,
        "reference_id": profile.reference_id,
        "model_version": profile.model_version,
        "created_at": profile.created_at,
        "source": profile.source,
        "events": profile.events,
        "features": [_feature_json(f) for f in profile.features],
    }
    if profile.joint:
        document["joint"] = json.loads(profile.joint)
    if profile.segments is not None:
        document["segments"] = slices_to_json(profile.segments)
    if profile.extends:
        document["extends"] = profile.extends
    return json.dumps(document, indent=1, sort_keys=True)


def profile_from_json(text: str | bytes) -> ReferenceProfile:
    """Parse and validate a profile; any defect raises ReferenceDataError naming it.

    Checks: the format tag, field types, finite strictly increasing edges (at most
    MAX_EDGES), at most MAX_TOP_K categories and MAX_VOCABULARY vocabulary entries, counts of
    the right length, integers in [0, MAX_COUNT], at least one valued count per feature, no
    number beyond the float range where a float belongs, and that
    the stored reference_id matches the content (a hand-edited profile is refused); the
    optional `segments` object is checked by `monitor.segment_slices.slices_from_json`.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ReferenceDataError(f"reference profile is not valid JSON: {exc}") from exc
    try:
        return _profile_from_data(data)
    except OverflowError as exc:  # an integer beyond the float range where a float belongs
        raise ReferenceDataError(f"reference profile: a number is out of range ({exc})") from exc


def _check_joint(joint: dict[str, Any]) -> None:
    """The multivariate sections a daemon reads (`correlation`, `reconstruction`) must load:
    checked here, so a profile whose section a daemon would refuse is refused at the door
    (file, registry, `reference push`) instead of when a model activates it."""
    for key, load in (
        ("correlation", CorrelationReference.from_json),
        ("reconstruction", PcaBasis.from_json),
    ):
        if key in joint:
            try:
                load(joint[key])
            except ValueError as exc:
                raise ReferenceDataError(f"reference profile: joint.{exc}") from exc


def _profile_from_data(data: Any) -> ReferenceProfile:
    """`profile_from_json` of the parsed document."""
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ReferenceDataError(
            f"not a driftmon reference profile (expected format {PROFILE_FORMAT!r})"
        )
    features_data = data.get("features")
    if not isinstance(features_data, list) or not features_data:
        raise ReferenceDataError("reference profile has no features")
    features = tuple(_feature_from_json(item, i) for i, item in enumerate(features_data))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise ReferenceDataError(f"reference profile: feature {twice[:100]!r} appears twice")
    joint = data.get("joint")
    if joint is not None and not isinstance(joint, dict):
        raise ReferenceDataError("reference profile: joint must be an object")
    _check_joint(joint or {})
    segments = (
        slices_from_json(data["segments"], {f.name: f.counts for f in features})
        if data.get("segments") is not None
        else None
    )
    profile = build_profile(
        model=_str(data, "model"),
        features=features,
        events=_int(data, "events"),
        model_version=_str(data, "model_version", ""),
        created_at=_str(data, "created_at", ""),
        source=_str(data, "source", ""),
        joint=joint,
        segments=segments,
        extends=_extends(data),
    )
    stored = data.get("reference_id")
    if stored != profile.reference_id:
        raise ReferenceDataError(
            f"reference_id {stored!r:.80} does not match the profile content "
            f"({profile.reference_id})"
        )
    return profile


def _extends(data: dict[str, Any]) -> str:
    """The optional `extends` of a profile document: a reference id (`sha256:` and 16 hex)."""
    value = data.get("extends", "")
    if value == "":
        return ""
    if not isinstance(value, str) or not _REFERENCE_ID.fullmatch(value):
        raise ReferenceDataError("reference profile: extends must be a reference id (sha256:...)")
    return value


def _feature_from_json(item: object, index: int) -> FeatureProfile:
    where = f"features[{index}]"
    if not isinstance(item, dict):
        raise ReferenceDataError(f"{where} is not an object")
    name = item.get("name")
    if not isinstance(name, str) or _FEATURE_NAME.fullmatch(name) is None:
        raise ReferenceDataError(
            f"{where}.name must be 1 to 256 characters without control characters "
            "(as a configured feature's)"
        )
    where = f"feature {name!r}"
    try:
        kind = FeatureKind(str(item.get("kind")))
    except ValueError as exc:
        raise ReferenceDataError(f"{where}: kind must be numeric or categorical") from exc
    bins: NumericBins | CategoricalBins
    if kind is FeatureKind.NUMERIC:
        edges = item.get("edges")
        if not isinstance(edges, list) or not all(isinstance(e, int | float) for e in edges):
            raise ReferenceDataError(f"{where}: edges must be a list of numbers")
        if len(edges) > MAX_EDGES:
            raise ReferenceDataError(f"{where}: {len(edges)} edges, at most {MAX_EDGES} allowed")
        try:
            bins = NumericBins(validate_edges(np.asarray(edges, dtype=np.float64)))
        except ReferenceDataError as exc:
            raise ReferenceDataError(f"{where}: {exc}") from exc
    else:
        categories = item.get("categories")
        vocabulary = item.get("vocabulary")
        fraction = item.get("singleton_fraction")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ReferenceDataError(f"{where}: categories must be a list of strings")
        if not isinstance(vocabulary, list) or not all(isinstance(c, str) for c in vocabulary):
            raise ReferenceDataError(f"{where}: vocabulary must be a list of strings")
        if len(categories) > MAX_TOP_K or len(vocabulary) > MAX_VOCABULARY:
            raise ReferenceDataError(
                f"{where}: at most {MAX_TOP_K} categories and {MAX_VOCABULARY} vocabulary "
                "entries allowed"
            )
        if max(map(len, vocabulary), default=0) > MAX_CATEGORY_CHARS:
            raise ReferenceDataError(
                f"{where}: a vocabulary entry is longer than {MAX_CATEGORY_CHARS} characters "
                "(such values are invalid, never a category)"
            )
        if not set(categories) <= set(vocabulary) or len(set(categories)) != len(categories):
            raise ReferenceDataError(f"{where}: categories must be distinct and in the vocabulary")
        if not isinstance(fraction, int | float) or not 0.0 <= float(fraction) <= 1.0:
            raise ReferenceDataError(f"{where}: singleton_fraction must be in [0, 1]")
        doubles = item.get("doubleton_fraction")
        if doubles is not None and (
            not isinstance(doubles, int | float) or not 0.0 <= float(doubles) <= 0.5
        ):
            raise ReferenceDataError(f"{where}: doubleton_fraction must be in [0, 0.5]")
        bins = CategoricalBins(
            tuple(categories),
            frozenset(vocabulary),
            float(fraction),
            None if doubles is None else float(doubles),
        )
    counts = item.get("counts")
    if (
        not isinstance(counts, list)
        or len(counts) != bins.value_slots + 2
        or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_COUNT for c in counts
        )
    ):
        raise ReferenceDataError(
            f"{where}: counts must be {bins.value_slots + 2} integers in [0, {MAX_COUNT}]"
        )
    if sum(counts[:-2]) == 0:
        raise ReferenceDataError(f"{where}: the reference has no valid value")
    return FeatureProfile(name, kind, bins, tuple(counts))


def _str(data: Mapping[str, object], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ReferenceDataError(f"reference profile field {key!r} must be a string")
    return value


def _int(data: Mapping[str, object], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReferenceDataError(f"reference profile field {key!r} must be a non-negative integer")
    return value


PLACEHOLDER_EDGES = (0.0,)
"""Edges of a numeric feature that has no reference yet (its reference counts are all 0)."""


def placeholder(spec: FeatureSpec) -> FeatureProfile:
    """Bins for a configured feature without a reference: one edge / no category, zero counts.

    The feature keeps its row in the model's histograms, so adding its reference later only
    changes that row; zero reference counts mean it is never tested.
    """
    bins: NumericBins | CategoricalBins
    if spec.kind is FeatureKind.NUMERIC:
        bins = NumericBins(np.asarray(PLACEHOLDER_EDGES, dtype=np.float64))
    else:
        bins = CategoricalBins((), frozenset(), 0.0)
    return FeatureProfile(spec.name, spec.kind, bins, (0,) * (bins.value_slots + 2))


def layout_for(
    profile: ReferenceProfile, specs: Sequence[FeatureSpec], *, partial: bool = False
) -> tuple[ModelLayout, CountMatrix, tuple[FeatureSpec, ...]]:
    """The layout, the reference count matrix and the specs in layout order for a model.

    Every configured feature must be in the profile with the configured kind (with
    `partial`, a configured feature absent from the profile, or there of another kind, gets
    `placeholder` bins: a warm-up fits it again); profile features that are not configured
    are ignored. Raises ReferenceDataError naming the first mismatch.
    """
    numeric: list[tuple[FeatureSpec, FeatureProfile]] = []
    categorical: list[tuple[FeatureSpec, FeatureProfile]] = []
    by_name = {f.name: f for f in reversed(profile.features)}  # the first of a name, as feature()
    for spec in specs:
        feature = by_name.get(spec.name)
        if partial and (feature is None or feature.kind is not spec.kind):
            feature = placeholder(spec)
        if feature is None:
            raise ReferenceDataError(
                f"feature {spec.name!r} is configured but not in reference {profile.reference_id}"
            )
        if feature.kind is not spec.kind:
            raise ReferenceDataError(
                f"feature {spec.name!r} is {spec.kind.value} in the config but "
                f"{feature.kind.value} in reference {profile.reference_id}"
            )
        (numeric if spec.kind is FeatureKind.NUMERIC else categorical).append((spec, feature))
    layout = ModelLayout(
        [(s.name, f.bins) for s, f in numeric if isinstance(f.bins, NumericBins)],
        [(s.name, f.bins) for s, f in categorical if isinstance(f.bins, CategoricalBins)],
    )
    matrix = layout.empty()
    for row, (_, feature) in enumerate(numeric + categorical):
        value = feature.counts[:-2]
        matrix[row, : len(value)] = value
        matrix[row, layout.missing_col] = feature.counts[-2]
        matrix[row, layout.invalid_col] = feature.counts[-1]
    ordered = tuple(s for s, _ in numeric + categorical)
    return layout, np.asarray(matrix, dtype=np.int64), ordered


def fit_features(
    specs: Sequence[FeatureSpec],
    numeric: Mapping[str, npt.ArrayLike],
    categorical: Mapping[str, Sequence[object] | npt.NDArray[np.object_]],
    *,
    max_bins: int = DEFAULT_MAX_BINS,
    top_k: Mapping[str, int] | None = None,
    min_values: int = 1,
) -> tuple[list[FeatureProfile], dict[str, str]]:
    """Fit every feature on its own: (fitted profiles in spec order, {name: why not} of the rest).

    A feature without a column, without a usable value, with fewer than `min_values` finite
    values (numeric), or whose values make fitting fail in any other way is reported in the
    second result instead of raising, so one bad feature never costs the others theirs.
    """
    fitted: list[FeatureProfile] = []
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            if spec.kind is FeatureKind.NUMERIC:
                if spec.name not in numeric:
                    raise ReferenceDataError(
                        f"feature {spec.name!r}: no column in the reference data"
                    )
                column = np.asarray(numeric[spec.name], dtype=np.float64)
                fitted.append(fit_numeric(spec.name, column, max_bins, min_values))
            else:
                if spec.name not in categorical:
                    raise ReferenceDataError(
                        f"feature {spec.name!r}: no column in the reference data"
                    )
                k = (top_k or {}).get(spec.name, DEFAULT_TOP_K)
                fitted.append(fit_categorical(spec.name, categorical[spec.name], k))
        except (ReferenceDataError, ValueError, ArithmeticError, TypeError) as exc:
            errors[spec.name] = str(exc)
    return fitted, errors


def fit_profile(
    model: str,
    specs: Sequence[FeatureSpec],
    numeric: Mapping[str, npt.ArrayLike],
    categorical: Mapping[str, Sequence[object] | npt.NDArray[np.object_]],
    *,
    max_bins: int = DEFAULT_MAX_BINS,
    top_k: Mapping[str, int] | None = None,
    min_values: int = 1,
    model_version: str = "",
    created_at: str = "",
    source: str = "",
    joint: Mapping[str, Any] | None = None,
) -> ReferenceProfile:
    """Fit a whole model's profile from raw columns keyed by feature name.

    ReferenceDataError naming the first feature that cannot be fitted (see `fit_features`).
    `joint`: the multivariate references to record (see `build_profile`).
    """
    fitted, errors = fit_features(
        specs, numeric, categorical, max_bins=max_bins, top_k=top_k, min_values=min_values
    )
    if errors:
        raise ReferenceDataError(next(iter(errors.values())))
    events = max((sum(f.counts) for f in fitted), default=0)
    return build_profile(
        model,
        fitted,
        events,
        model_version=model_version,
        created_at=created_at,
        source=source,
        joint=joint,
    )


def check_limits(profile: ReferenceProfile, *, max_bins: int, min_values: int) -> None:
    """Refuse a profile a model must not load: ReferenceDataError naming the feature.

    A numeric feature may have at most `max_bins + 1` edges (what `reference fit` and the
    warm-up produce with that `max_bins`) and at least `min_values` valued reference counts.
    """
    for feature in profile.features:
        if not isinstance(feature.bins, NumericBins):
            continue
        if feature.bins.edges.size > max_bins + 1:
            raise ReferenceDataError(
                f"feature {feature.name!r} has {feature.bins.edges.size} edges; this model's "
                f"max_bins {max_bins} allows at most {max_bins + 1}"
            )
        if feature.samples < min_values:
            raise ReferenceDataError(
                f"feature {feature.name!r} has only {feature.samples} reference values, "
                f"at least {min_values} are needed"
            )

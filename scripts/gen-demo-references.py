#!/usr/bin/env python3
"""Generate the demo models' reference profiles shipped for the fleet configurations.

A fleet (`state.backend: kafka`) needs `reference.mode: file` for now (docs/fleet.md), so the
example fleet deployments (deploy/k8s/base and compose's `fleet` profile) ship a reference
profile per demo model: `fraud` and `churn` fitted on 20,000 clean events each of the demo
scenarios (monitor/tools/scenarios.py, the events `driftmon simulate` produces before any
drift), written to deploy/references/ and, identical, to deploy/k8s/base/references/
(kustomize reads files below its own directory only). Replace them with profiles of your
own models (`driftmon reference fit`).

    python scripts/gen-demo-references.py            # rewrite the profiles
    python scripts/gen-demo-references.py --check    # exit 1 if a committed one differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.reference import fit_profile, profile_to_json  # noqa: E402
from monitor.tools.scenarios import DEMO_FEATURES, MODEL_VERSION, EventGenerator  # noqa: E402

MODELS = ("fraud", "churn")
EVENTS = 20_000
SEED = 20261203
TARGETS = (ROOT / "deploy" / "references", ROOT / "deploy" / "k8s" / "base" / "references")


def profile_text(model: str) -> str:
    """The demo model's profile as JSON: clean events, fixed seed, no timestamps."""
    columns = EventGenerator(model, "none", seed=SEED).columns(EVENTS, 0.0, 100.0)
    profile = fit_profile(
        model,
        DEMO_FEATURES,
        columns.numeric,
        columns.categorical,
        model_version=MODEL_VERSION,
        source=f"scripts/gen-demo-references.py ({EVENTS} clean demo events, seed {SEED})",
    )
    return profile_to_json(profile) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check compare) every profile in every target directory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for model in MODELS:
        text = profile_text(model)
        for directory in TARGETS:
            path = directory / f"{model}.json"
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write("stale demo references (run scripts/gen-demo-references.py): ")
        sys.stderr.write(", ".join(stale) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

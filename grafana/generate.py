"""Generate driftmon's Grafana dashboards: `python grafana/generate.py` writes grafana/dashboards/.

The JSON files are committed (Grafana provisioning reads them as they are); this script is
their source, so that every panel is built the same way: one fixed datasource uid
(`driftmon-prometheus`, see grafana/provisioning/datasources/prometheus.yml), sequential
panel ids, explicit grid positions, and PromQL that uses only the metrics driftmon exports
(README.md, Metrics). `--check` exits 1 when the committed files differ from the output.

One module per dashboard (`overview.py`, `feature.py`, `pipeline.py`) on shared helpers
(`panels.py`); this file is the entry point.

Stdlib only. tests/ops/test_grafana.py validates the output against Grafana's dashboard JSON
schema and checks every expression with promtool.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from feature import feature
from overview import overview
from panels import OUT_DIR
from pipeline import pipeline

DASHBOARDS = {
    "driftmon-overview.json": overview,
    "driftmon-feature.json": feature,
    "driftmon-pipeline.json": pipeline,
}


def render() -> dict[str, str]:
    """File name -> JSON text (2-space indent, trailing newline) of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards to grafana/dashboards/, or with --check report stale files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cost of joint drift end to end: 20 + 2 features with and without the joint groups.

    python -m bench.e2e_joint [--reps 3]

Runs `bench.e2e` (driftmon daemon loop vs raw kafka-python through the embedded broker, A B
pairs in fresh processes) at 20 numeric + 2 categorical features four times in one run:
plain, with the 20-feature correlation group, with the correlation group plus the
reconstruction-error feature, and with 10 segments plus the correlation group (issue 13's
cost criterion: >= 0.6 of raw); 1 MiB partition fetches (the default). Each row's driftmon /
raw ratio is taken within its own A B pairs, so the rows compare under the same machine load.
The table is printed as markdown and written to bench/results/e2e-joint.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from bench import e2e
from bench.procs import REPO, log_stderr
from bench.report import load_average, machine_info, write_markdown_page

PLAIN = e2e.WIDTHS[0]
VARIANTS: tuple[e2e.Width, ...] = (
    PLAIN,
    dataclasses.replace(PLAIN, correlation=True),
    dataclasses.replace(PLAIN, correlation=True, reconstruction=True),
    dataclasses.replace(e2e.SEGMENTED, correlation=True),
)
TARGET_RATIO = 0.6
"""Issue 13: with 10 segments and the 20-feature correlation group, >= 0.6 of raw."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three variants and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_joint", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="A B pairs per variant (3)")
    args = parser.parse_args(argv)
    machine = machine_info()
    start_load = load_average()
    tables = e2e.run(reps=args.reps, log=log_stderr, widths=VARIANTS, fetches=(None,))
    combined = VARIANTS[-1].label
    for table in tables:
        row = next((r for r in table.rows if r[0] == combined), None)
        if row is not None and row[6] is not None:
            ratio = float(row[6])
            verdict = "MET" if ratio >= TARGET_RATIO else "NOT MET"
            sign = ">=" if ratio >= TARGET_RATIO else "<"
            table.notes.insert(
                0, f"Issue-13 target at {combined}: {verdict} ({ratio:.2f} of raw {sign} 0.6)"
            )
    out = REPO / "bench" / "results" / "e2e-joint.md"
    print(write_markdown_page(tables, machine, start_load, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

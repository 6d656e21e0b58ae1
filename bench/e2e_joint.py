"""The cost of joint drift end to end: 20 + 2 features with and without the joint groups.

    python -m bench.e2e_joint [--reps 3]

Runs `bench.e2e` (driftmon daemon loop vs raw kafka-python through the embedded broker, A B
pairs in fresh processes) at 20 numeric + 2 categorical features three times in one run:
plain, with the 20-feature correlation group, and with the correlation group plus the
reconstruction-error feature; 1 MiB partition fetches (the default). Each row's driftmon /
raw ratio is taken within its own A B pairs, so the rows compare under the same machine load.
The table is printed as markdown and written to bench/results/e2e-joint.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

from bench import e2e
from bench.procs import REPO
from bench.report import load_average, machine_info, machine_markdown, to_markdown

PLAIN = e2e.WIDTHS[0]
VARIANTS: tuple[e2e.Width, ...] = (
    PLAIN,
    dataclasses.replace(PLAIN, correlation=True),
    dataclasses.replace(PLAIN, correlation=True, reconstruction=True),
)


def _log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three variants and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_joint", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="A B pairs per variant (3)")
    args = parser.parse_args(argv)
    machine = machine_info()
    start_load = load_average()
    tables = e2e.run(reps=args.reps, log=_log, widths=VARIANTS, fetches=(None,))
    lines = [
        machine_markdown(machine),
        f"Load average at start {start_load}, end {load_average()}.",
    ]
    lines += [to_markdown(table) for table in tables]
    text = "\n\n".join(lines) + "\n"
    out = REPO / "bench" / "results" / "e2e-joint.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m monitor` runs the driftmon CLI."""

from monitor.cli import main

raise SystemExit(main())

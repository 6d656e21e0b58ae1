"""Peer drift tools on the benchmark workload, each run in its own virtualenv.

Every module here is a script `python -m bench.peers.<name> --data workload.npz` that imports
only numpy, its peer (and pandas where the peer needs it) and `bench.dataset` /
`bench.harness`, fits on the reference, computes the peer's per-feature drift decision for
every window at the peer's default settings, and prints one `RESULT {json}` line
(`bench.harness.stats_result`). `bench.venvs` builds the virtualenvs (`.bench-venvs/<peer>`)
from `bench/requirements/<peer>.txt`.
"""

"""driftmon's benchmark suite: `python -m bench` (driftmon alone), `python -m bench --peers`.

Importing this package imports nothing: the peer scripts under `bench.peers` run in their own
virtualenvs (numpy + one peer, no driftmon) and still import `bench.dataset` from here.
"""

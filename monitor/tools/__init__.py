"""User tools around the daemon: terminal status view, simulator, scenarios, reference-data readers.

None of them is on the daemon's runtime path (`driftmon run`); the CLI imports them lazily.
"""

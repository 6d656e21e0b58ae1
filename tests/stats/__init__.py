"""Statistical acceptance simulations of the drift decision rule (docs/statistics.md)."""

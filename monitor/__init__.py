"""driftmon: a streaming data-drift monitor (Kafka in, PSI/KS drift out as Prometheus metrics)."""

__version__ = "0.1.0"

"""Test helpers that run real components (a tansu Kafka broker) on 127.0.0.1."""

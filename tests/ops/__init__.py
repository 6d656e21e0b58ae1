"""Tests of the operations artefacts: alert rules, Alertmanager, dashboards, container, k8s."""

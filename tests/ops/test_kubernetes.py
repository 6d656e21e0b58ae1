"""Static tests of deploy/k8s/base: kustomize render, schema validation, security, rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ops_services import (
    DEPLOY,
    REPO_ROOT,
    RULES_FILE,
    assert_tool_ok,
    load_yaml,
    run_tool,
)

BASE = DEPLOY / "k8s" / "base"
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kubectl kustomize deploy/k8s/base`, written to a file."""
    output = run_tool(["kubectl", "kustomize", BASE])
    assert_tool_ok(output)
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(output.stdout)
    return path


@pytest.fixture(scope="module")
def objects(rendered: Path) -> dict[str, dict[str, Any]]:
    """The rendered objects by kind (each kind occurs once)."""
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "a kind occurs twice"
    return by_kind


def test_kustomize_renders_every_resource(objects: dict[str, dict[str, Any]]) -> None:
    """The base renders the ConfigMap, Deployment, Service, PVC, NetworkPolicy, ServiceMonitor and
    PrometheusRule."""
    assert set(objects) == CORE_KINDS | CRD_KINDS


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_rendered_manifests_pass_kubernetes_validate_strict(rendered: Path, version: str) -> None:
    """kubernetes-validate --strict passes every core object (CRDs only warn: no schema)."""
    proc = run_tool(["kubernetes-validate", "--strict", "-k", version, rendered])
    output = assert_tool_ok(proc)
    passed = {
        line.split("resource ")[1].split("/")[0]
        for line in output.splitlines()
        if " passed " in line
    }
    assert passed == {k.lower() for k in CORE_KINDS}
    assert "ERROR" not in output


def test_kubernetes_validate_rejects_a_broken_deployment(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """A Deployment with a string replica count fails strict validation."""
    broken = {**objects["Deployment"], "spec": {**objects["Deployment"]["spec"], "replicas": "one"}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    proc = run_tool(["kubernetes-validate", "--strict", path])
    assert proc.returncode != 0
    assert "replicas" in proc.stdout + proc.stderr


def test_pod_security_is_restricted(objects: dict[str, dict[str, Any]]) -> None:
    """Non-root uid 10001, read-only root fs, no privilege escalation, all caps dropped,
    RuntimeDefault seccomp, no service-account token."""
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_probes_resources_and_volumes(objects: dict[str, dict[str, Any]]) -> None:
    """Probes hit /livez and /readyz, resources are bounded, state and /tmp are writable."""
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["run", "--config", "/etc/driftmon/driftmon.yaml"]
    assert c["ports"] == [{"name": "http-metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/etc/driftmon", "/var/lib/driftmon", "/tmp"}
    assert mounts["/etc/driftmon"]["readOnly"] is True
    state = volumes[mounts["/var/lib/driftmon"]["name"]]
    assert (
        state["persistentVolumeClaim"]["claimName"]
        == objects["PersistentVolumeClaim"]["metadata"]["name"]
    )
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "RWO volume: no rolling update"


def test_config_map_is_generated_from_the_config_file_and_mounted(
    objects: dict[str, dict[str, Any]],
) -> None:
    """The hashed ConfigMap name is what the pod mounts; it holds driftmon.yaml unchanged."""
    cm = objects["ConfigMap"]
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == cm["metadata"]["name"]
    assert cm["metadata"]["name"].startswith("driftmon-config-")
    assert cm["data"]["driftmon.yaml"] == (BASE / "driftmon.yaml").read_text()
    config = yaml.safe_load(cm["data"]["driftmon.yaml"])
    assert config["http"]["port"] == 9108
    assert config["state"]["dir"] == "/var/lib/driftmon"


def test_service_and_service_monitor_select_the_pods(objects: dict[str, dict[str, Any]]) -> None:
    """Service (named driftmon = the scrape job) and ServiceMonitor agree on port and labels."""
    service, monitor = objects["Service"], objects["ServiceMonitor"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["name"] == "driftmon"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9108, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http-metrics", "/metrics")


def test_prometheus_rule_carries_exactly_the_rules_file(
    objects: dict[str, dict[str, Any]],
) -> None:
    """The rendered PrometheusRule's spec.groups equal the groups of driftmon.rules.yml."""
    assert objects["PrometheusRule"]["spec"]["groups"] == load_yaml(RULES_FILE)["groups"]


def test_prometheus_rule_manifest_is_up_to_date() -> None:
    """scripts/gen-prometheusrule.py --check finds the committed manifest fresh."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen-prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_generator_detects_a_stale_manifest(tmp_path: Path) -> None:
    """--check fails when the manifest does not match the rules file."""
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text((BASE / "prometheusrule.yaml").read_text().replace("for: 10m", "for: 9m", 1))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "gen-prometheusrule.py"),
            "--check",
            "--out",
            str(stale),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "stale" in proc.stderr


def test_prometheus_rule_spec_passes_promtool(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The PrometheusRule's spec, dumped as a rules file, passes `promtool check rules`."""
    path = tmp_path / "spec.rules.yml"
    path.write_text(yaml.safe_dump(objects["PrometheusRule"]["spec"]))
    assert_tool_ok(run_tool(["promtool", "check", "rules", path]))


def test_network_policy_admits_only_prometheus_on_the_metrics_port(
    objects: dict[str, dict[str, Any]],
) -> None:
    """The policy selects the driftmon pods, denies by default both ways, and lets in only
    Prometheus from the monitoring namespace, on the metrics port alone."""
    policy = objects["NetworkPolicy"]["spec"]
    pod = objects["Deployment"]["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    (container,) = pod["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert rule["ports"][0]["port"] in port_names


def test_network_policy_egress_is_kafka_and_dns_only(objects: dict[str, dict[str, Any]]) -> None:
    """Egress reaches the Kafka namespace on the configured bootstrap port and kube-dns on 53."""
    policy = objects["NetworkPolicy"]["spec"]
    kafka_rule, dns_rule = policy["egress"]
    config = yaml.safe_load(objects["ConfigMap"]["data"]["driftmon.yaml"])
    bootstrap_ports = {int(s.rsplit(":", 1)[1]) for s in [config["kafka"]["bootstrap_servers"]]}
    kafka_ports = {p["port"] for p in kafka_rule["ports"]}
    assert bootstrap_ports <= kafka_ports
    assert {p["protocol"] for p in kafka_rule["ports"]} == {"TCP"}
    (kafka_peer,) = kafka_rule["to"]
    assert kafka_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kafka"
    }
    host = config["kafka"]["bootstrap_servers"].split(":")[0]
    assert host.split(".")[1] == "kafka", "the bootstrap service lives in the namespace allowed"
    (dns_peer,) = dns_rule["to"]
    assert dns_peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert sorted((p["port"], p["protocol"]) for p in dns_rule["ports"]) == [
        (53, "TCP"),
        (53, "UDP"),
    ]


def test_kubernetes_validate_rejects_a_broken_network_policy(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """A misspelt key in the policy fails strict validation (the check can fail)."""
    spec = {**objects["NetworkPolicy"]["spec"], "ingres": []}
    path = tmp_path / "broken-policy.yaml"
    path.write_text(yaml.safe_dump({**objects["NetworkPolicy"], "spec": spec}))
    proc = run_tool(["kubernetes-validate", "--strict", path])
    assert proc.returncode != 0

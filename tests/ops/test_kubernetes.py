"""Static tests of deploy/k8s: kustomize render, schema validation, security, rules.

The base is a fleet (a stateless Deployment of 3 replicas with state.backend: kafka and a
PodDisruptionBudget); overlays/single-node is one replica with the file backend and a PVC.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.compose import fleet_factory
from monitor.config import load_settings
from monitor.metrics import PipelineMetrics
from monitor.reference import profile_from_json
from tests.support.ops_services import (
    DEPLOY,
    REPO_ROOT,
    RULES_FILE,
    assert_tool_ok,
    load_yaml,
    run_tool,
)

BASE = DEPLOY / "k8s" / "base"
SINGLE_NODE = DEPLOY / "k8s" / "overlays" / "single-node"
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
#: The references ConfigMap besides the config one (a fleet needs file references for now).
REFERENCES = "ConfigMap:references"
FLEET_KINDS = CORE_KINDS | {"PodDisruptionBudget"}
SINGLE_NODE_KINDS = CORE_KINDS | {"PersistentVolumeClaim"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
KUSTOMIZATIONS = {"base": (BASE, FLEET_KINDS), "single-node": (SINGLE_NODE, SINGLE_NODE_KINDS)}


def _render(directory: Path, dest: Path) -> Path:
    output = run_tool(["kubectl", "kustomize", directory])
    assert_tool_ok(output)
    dest.write_text(output.stdout)
    return dest


def _key(doc: dict[str, Any]) -> str:
    """The kind, and for the references ConfigMap `ConfigMap:references`."""
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("driftmon-references-"):
        return "ConfigMap:references"
    return str(doc["kind"])


def _by_kind(rendered: Path) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind = {_key(d): d for d in docs}
    assert len(by_kind) == len(docs), "a kind occurs twice"
    return by_kind


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`kubectl kustomize` of the base and of the single-node overlay, written to files."""
    out = tmp_path_factory.mktemp("k8s")
    return {name: _render(d, out / f"{name}.yaml") for name, (d, _) in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="module")
def rendered(renders: dict[str, Path]) -> Path:
    """The rendered base."""
    return renders["base"]


@pytest.fixture(scope="module")
def objects(rendered: Path) -> dict[str, dict[str, Any]]:
    """The rendered base's objects by kind (each kind occurs once)."""
    return _by_kind(rendered)


@pytest.fixture(scope="module")
def single_node(renders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The rendered single-node overlay's objects by kind (each kind occurs once)."""
    return _by_kind(renders["single-node"])


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomize_renders_every_resource(renders: dict[str, Path], name: str) -> None:
    """The base renders the fleet's objects (PDB, no PVC), the overlay the single node's
    (PVC, no PDB), both with the ServiceMonitor and PrometheusRule."""
    assert set(_by_kind(renders[name])) == KUSTOMIZATIONS[name][1] | CRD_KINDS | {REFERENCES}


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_rendered_manifests_pass_kubernetes_validate_strict(
    renders: dict[str, Path], name: str, version: str
) -> None:
    """kubernetes-validate --strict passes every core object (CRDs only warn: no schema)."""
    proc = run_tool(["kubernetes-validate", "--strict", "-k", version, renders[name]])
    output = assert_tool_ok(proc)
    passed = {
        line.split("resource ")[1].split("/")[0]
        for line in output.splitlines()
        if " passed " in line
    }
    assert passed == {k.lower() for k in KUSTOMIZATIONS[name][1]}
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


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_container_probes_and_resources(renders: dict[str, Path], name: str) -> None:
    """Probes hit /livez and /readyz, resources are bounded, config is read-only, /tmp is a
    memory emptyDir."""
    pod = _by_kind(renders[name])["Deployment"]["spec"]["template"]["spec"]
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
    assert mounts["/etc/driftmon"]["readOnly"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_base_is_a_stateless_fleet(objects: dict[str, dict[str, Any]]) -> None:
    """The base runs 3 replicas with no volume but config and /tmp, rolls one pod at a time,
    spreads the pods over nodes, and its config keeps the state on the state topic."""
    deployment = objects["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    (c,) = pod["containers"]
    assert {m["mountPath"] for m in c["volumeMounts"]} == {
        "/etc/driftmon",
        "/etc/driftmon-references",
        "/tmp",
    }
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    spread = {s["topologyKey"]: s for s in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for s in spread.values():
        assert s["labelSelector"]["matchLabels"].items() <= (
            spec["template"]["metadata"]["labels"].items()
        )
    config = yaml.safe_load(objects["ConfigMap"]["data"]["driftmon.yaml"])
    assert config["state"]["backend"] == "kafka"
    assert "dir" not in config["state"]


def test_pod_disruption_budget_keeps_the_fleet_up(objects: dict[str, dict[str, Any]]) -> None:
    """The PDB selects the fleet's pods and lets a drain take one replica at a time, fewer
    than the replicas, so a drain never takes the whole fleet."""
    pdb = objects["PodDisruptionBudget"]["spec"]
    deployment = objects["Deployment"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= (
        deployment["template"]["metadata"]["labels"].items()
    )
    assert pdb["maxUnavailable"] == 1 < deployment["replicas"]
    assert "minAvailable" not in pdb


def test_single_node_overlay_is_one_replica_with_a_volume(
    single_node: dict[str, dict[str, Any]],
) -> None:
    """The overlay pins 1 replica with Recreate (ReadWriteOnce volume), mounts the PVC at the
    config's state.dir, and uses the file backend."""
    deployment = single_node["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "RWO volume: no rolling update"
    (c,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {
        "/etc/driftmon",
        "/etc/driftmon-references",
        "/var/lib/driftmon",
        "/tmp",
    }
    state = volumes[mounts["/var/lib/driftmon"]["name"]]
    pvc = single_node["PersistentVolumeClaim"]
    assert state["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    config = yaml.safe_load(single_node["ConfigMap"]["data"]["driftmon.yaml"])
    assert config["state"]["dir"] == "/var/lib/driftmon"
    assert config["state"].get("backend", "file") == "file"


def test_single_node_config_differs_from_the_base_only_in_state() -> None:
    """The overlay's driftmon.yaml is the base's with another `state` section (one config to
    maintain, two places)."""
    base = yaml.safe_load((BASE / "driftmon.yaml").read_text())
    overlay = yaml.safe_load((SINGLE_NODE / "driftmon.yaml").read_text())
    assert base.pop("state") != overlay.pop("state")
    assert overlay == base


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_reference_is_a_mounted_profile_of_its_model(
    renders: dict[str, Path], name: str
) -> None:
    """Each model's reference is a file (the mode a fleet supports) in the mounted references
    ConfigMap, and that profile is a valid profile of the model with the model's features."""
    objects = _by_kind(renders[name])
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    references = objects[REFERENCES]
    assert (
        mounts["/etc/driftmon-references"]["configMap"]["name"] == (references["metadata"]["name"])
    )
    config = yaml.safe_load(objects["ConfigMap"]["data"]["driftmon.yaml"])
    for model in config["models"]:
        assert model["reference"]["mode"] == "file"
        directory, _, filename = model["reference"]["path"].rpartition("/")
        assert directory == "/etc/driftmon-references"
        profile = profile_from_json(references["data"][filename])
        assert profile.model == model["name"]
        assert {f.name for f in profile.features} == {f["name"] for f in model["features"]}


def test_demo_references_are_fresh() -> None:
    """scripts/gen-demo-references.py --check finds the shipped profiles up to date."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen-demo-references.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_single_node_config_loads() -> None:
    """The single-node overlay's config passes driftmon's own validation."""
    settings = load_settings(SINGLE_NODE / "driftmon.yaml", env={})
    assert settings.state.dir == Path("/var/lib/driftmon")


def test_fleet_config_loads_and_builds_a_fleet_node() -> None:
    """The base's fleet config passes driftmon's own validation with the kafka backend, and
    the composition root accepts it for a fleet (file references only, for now)."""
    settings = load_settings(BASE / "driftmon.yaml", env={})
    assert settings.state.backend == "kafka"
    metrics = PipelineMetrics(
        CollectorRegistry(),
        topics=settings.kafka.topics,
        features={m.name: [f.name for f in m.features] for m in settings.models},
        evaluation_interval_seconds=settings.evaluation.interval,
    )
    assert callable(fleet_factory(settings, metrics, time.time, time.monotonic))


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

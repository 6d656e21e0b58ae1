"""Static tests of the container artefacts: Dockerfile, .dockerignore, docker-compose.

There is no Docker engine on the CI machine, so nothing is built or run: hadolint lints the
Dockerfile, `docker-compose config` and the compose-spec JSON schema check the compose file,
and the tests below check that the pieces agree with each other.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.reference import profile_from_json
from tests.support.ops_services import (
    ALERTMANAGER_CONFIG,
    DEPLOY,
    PROMETHEUS_CONFIG,
    REPO_ROOT,
    assert_tool_ok,
    load_yaml,
    run_tool,
)

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_CONFIG = DEPLOY / "driftmon.compose.yaml"
COMPOSE_FLEET_CONFIG = DEPLOY / "driftmon.fleet.compose.yaml"
K8S_CONFIG = DEPLOY / "k8s" / "overlays" / "single-node" / "driftmon.yaml"
K8S_FLEET_CONFIG = DEPLOY / "k8s" / "base" / "driftmon.yaml"
FLEET_REPLICAS = ("driftmon-fleet-1", "driftmon-fleet-2")
SCENARIOS = {"none", "mean-shift", "variance", "new-category", "missing-spike", "outliers"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last build stage."""
    ins = instructions()
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    return ins[last_from:]


def test_dockerfile_passes_hadolint_without_ignores() -> None:
    """hadolint reports nothing, even at style level, and no rule is ignored inline."""
    assert "hadolint ignore" not in DOCKERFILE.read_text()
    proc = run_tool(["hadolint", "--no-color", "--failure-threshold", "style", DOCKERFILE])
    assert (proc.returncode, proc.stdout.strip()) == (0, "")


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """hadolint fails an unpinned base image and an apt install without pins."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    proc = run_tool(["hadolint", "--no-color", bad])
    assert proc.returncode == 1
    assert "DL3006" in proc.stdout and "DL3008" in proc.stdout


def test_dockerfile_is_multi_stage_with_pinned_slim_base() -> None:
    """Two stages on the same pinned python 3.11 slim-bookworm tag; the builder makes a venv."""
    froms = [args for k, args in instructions() if k == "FROM"]
    assert len(froms) == 2
    images = {args.split()[0] for args in froms}
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    assert froms[0].endswith("AS builder")
    runs = " ".join(a for k, a in instructions() if k == "RUN")
    assert "python -m venv /opt/venv" in runs
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in runs
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in runs
    copy_from = [a for k, a in final_stage() if k == "COPY" and a.startswith("--from=")]
    assert copy_from == ["--from=builder /opt/venv /opt/venv"]


def test_runtime_stage_runs_as_uid_10001_with_healthcheck_and_entrypoint() -> None:
    """Non-root user, read-only-friendly env, /livez healthcheck, exec-form ENTRYPOINT/CMD."""
    stage = dict(final_stage())
    assert stage["USER"] == "10001:10001"
    assert stage["EXPOSE"] == "9108"
    env = " ".join(a for k, a in final_stage() if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "/opt/venv/bin" in env
    assert '"/var/lib/driftmon"' in stage["VOLUME"]
    assert "http://127.0.0.1:{int(port)}/livez" in stage["HEALTHCHECK"]
    assert "curl" not in stage["HEALTHCHECK"] and "wget" not in stage["HEALTHCHECK"]
    assert json.loads(stage["ENTRYPOINT"]) == ["driftmon"]
    assert json.loads(stage["CMD"]) == ["run", "--config", "/etc/driftmon/driftmon.yaml"]
    runs = " ".join(a for k, a in final_stage() if k == "RUN")
    assert "--uid 10001" in runs and "chown 10001:10001 /var/lib/driftmon" in runs


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes
        ):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    """Every COPY source reaches the build context; .venv, .git, tests and state do not."""
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources.extend(args.split()[:-1])
    assert sources == ["deploy/requirements.lock", "pyproject.toml", "README.md", "monitor"]
    for src in [*sources, "monitor/cli.py"]:
        assert not _ignored(src, patterns), src
    for unwanted in [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/support/ops_services.py",
        "deploy/Dockerfile",
        "state/x",
        "bench/a.py",
    ]:
        assert _ignored(unwanted, patterns), unwanted
    assert _ignored("monitor/__pycache__/cli.cpython-311.pyc", patterns)


def test_compose_file_passes_docker_compose_config() -> None:
    """`docker-compose -f deploy/docker-compose.yml config -q` accepts the file (no daemon)."""
    assert_tool_ok(run_tool(["docker-compose", "-f", COMPOSE, "config", "-q"]))


def test_compose_file_matches_the_compose_spec_schema() -> None:
    """check-jsonschema validates the file against the compose-spec JSON schema."""
    proc = run_tool(["check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE])
    assert "ok -- validation done" in assert_tool_ok(proc)


def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return dict(load_yaml(COMPOSE))


def test_compose_services_and_pinned_images() -> None:
    """The stack has its services (two of them the fleet profile's replicas); every
    third-party image carries an explicit version."""
    services = compose()["services"]
    assert set(services) == {
        "kafka",
        "driftmon",
        *FLEET_REPLICAS,
        "simulate",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image}"
        if "build" in service:
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_bind_mounts_exist() -> None:
    """Every host path mounted into a container exists in the repository."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_compose_driftmon_runs_hardened_with_its_config() -> None:
    """driftmon and simulate run as 10001 on a read-only root fs; driftmon mounts its config."""
    services = compose()["services"]
    for name in ("driftmon", "simulate"):
        assert services[name]["user"] == "10001:10001"
        assert services[name]["read_only"] is True
        assert services[name]["tmpfs"] == ["/tmp"]
    volumes = services["driftmon"]["volumes"]
    assert "./driftmon.compose.yaml:/etc/driftmon/driftmon.yaml:ro" in volumes
    assert any(v.endswith(":/var/lib/driftmon") for v in volumes)
    assert services["driftmon"]["command"] == ["run", "--config", "/etc/driftmon/driftmon.yaml"]


def test_compose_fleet_profile_runs_two_stateless_replicas() -> None:
    """Profile `fleet` adds two hardened replicas with the fleet config and no volume, on
    distinct localhost ports; the default stack runs neither (a service with `profiles`
    starts only when one of them is enabled)."""
    services = compose()["services"]
    ports = set()
    for name in FLEET_REPLICAS:
        replica = services[name]
        assert replica["profiles"] == ["fleet"]
        assert replica["user"] == "10001:10001"
        assert replica["read_only"] is True
        assert replica["tmpfs"] == ["/tmp"]
        assert replica["volumes"] == [
            "./driftmon.fleet.compose.yaml:/etc/driftmon/driftmon.yaml:ro",
            "./references:/etc/driftmon-references:ro",
        ]
        assert replica["command"] == ["run", "--config", "/etc/driftmon/driftmon.yaml"]
        (port,) = replica["ports"]
        assert port.endswith(":9108")
        ports.add(port)
    assert len(ports) == len(FLEET_REPLICAS)
    assert all("profiles" not in s for n, s in services.items() if n not in FLEET_REPLICAS)


def test_compose_fleet_config_is_the_single_config_on_the_state_topic() -> None:
    """The fleet config is the single-node one with a consumer group of its own,
    state.backend: kafka and file references (the demo profiles of each model, mounted);
    Prometheus scrapes both replicas in job `driftmon`."""
    single, fleet = load_yaml(COMPOSE_CONFIG), load_yaml(COMPOSE_FLEET_CONFIG)
    assert fleet["state"]["backend"] == "kafka"
    assert "dir" not in fleet["state"]
    assert fleet["kafka"].pop("group_id") != single["kafka"].pop("group_id")
    fleet.pop("state")
    single.pop("state")
    for model in fleet["models"]:
        reference = model.pop("reference")
        assert reference["mode"] == "file"
        assert reference["path"] == f"/etc/driftmon-references/{model['name']}.json"
        profile = profile_from_json((DEPLOY / "references" / f"{model['name']}.json").read_text())
        assert profile.model == model["name"]
        assert {f.name for f in profile.features} == {f["name"] for f in model["features"]}
    for model in single["models"]:
        model.pop("reference")
    assert fleet == single
    prom = load_yaml(PROMETHEUS_CONFIG)
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "driftmon")
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == list(FLEET_REPLICAS)
    assert dns["port"] == fleet["http"]["port"]


def test_compose_simulate_produces_a_known_drift_scenario() -> None:
    """The producer runs `driftmon simulate` for driftmon's models on its broker and topic, and
    drifts only after the warmup references are learned."""
    services = compose()["services"]
    command = services["simulate"]["command"]
    assert command[0] == "simulate"
    args = dict(zip(command[1::2], command[2::2], strict=True))
    config = load_yaml(COMPOSE_CONFIG)
    assert args["--bootstrap"] == config["kafka"]["bootstrap_servers"] == "kafka:9092"
    assert args["--topic"] in config["kafka"]["topics"]
    assert args["--drift"] == "mean-shift"
    assert args["--drift"] in SCENARIOS
    models = args["--models"].split(",")
    assert models == [m["name"] for m in config["models"]]
    assert args["--drift-models"] in models
    # Each model's warmup reference must be complete before its drift starts.
    per_model_rate = float(args["--rate"]) / len(models)
    for model in config["models"]:
        warmup_s = model["reference"]["warmup_events"] / per_model_rate
        assert warmup_s < float(args["--drift-after"]) / 2, model["name"]


def test_compose_prometheus_and_alertmanager_wiring() -> None:
    """Prometheus mounts the config and rules side by side and targets compose's services."""
    services = compose()["services"]
    prom_mounts = dict(v.rsplit(":", 2)[:2] for v in services["prometheus"]["volumes"])
    assert prom_mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert prom_mounts["./prometheus/driftmon.rules.yml"] == "/etc/prometheus/driftmon.rules.yml"
    am_mounts = dict(v.rsplit(":", 2)[:2] for v in services["alertmanager"]["volumes"])
    assert am_mounts["./alertmanager/alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"
    assert "--cluster.listen-address=" in services["alertmanager"]["command"]
    prom = load_yaml(PROMETHEUS_CONFIG)
    am_target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert am_target.split(":")[0] in services and ALERTMANAGER_CONFIG.is_file()
    driftmon_target = next(j for j in prom["scrape_configs"] if j["job_name"] == "driftmon")
    host, port = driftmon_target["static_configs"][0]["targets"][0].split(":")
    assert host in services and int(port) == load_yaml(COMPOSE_CONFIG)["http"]["port"]


def test_compose_publishes_ports_on_localhost_only() -> None:
    """Every published port is bound to 127.0.0.1."""
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_compose_grafana_is_anonymous_viewer() -> None:
    """Grafana allows anonymous read-only access for the demo."""
    env = compose()["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


@pytest.mark.parametrize(
    "path",
    [COMPOSE_CONFIG, K8S_CONFIG, COMPOSE_FLEET_CONFIG, K8S_FLEET_CONFIG],
    ids=["compose", "k8s-single-node", "compose-fleet", "k8s-fleet"],
)
def test_shipped_driftmon_configs_pass_check_config(path: Path) -> None:
    """`driftmon check-config` accepts the driftmon configs shipped for compose and Kubernetes."""
    if importlib.util.find_spec("monitor.cli") is None:
        pytest.skip("monitor.cli (driftmon check-config) is not implemented yet")
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

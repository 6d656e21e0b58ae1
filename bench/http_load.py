"""HTTP server under load: concurrent scrapes, dribbling clients, basic-auth cost.

    .venv/bin/python -m bench.http_load                      # the current monitor.http
    .venv/bin/python -m bench.http_load --baseline acf21c1   # + the old server at that commit

Measurements on an in-process server over a realistic registry (pipeline metrics of one
model with 50 features plus its drift families, ~1,000 series):

0. idle: 50 scrapes one after the other, p50;
1. burst: `--clients` (200) scrapes of /metrics released at once by a barrier; latency p50 /
   p95 / max and failures;
   The same with TLS (a trustme certificate) and basic auth (bcrypt cost 10) on every scrape;
2. slowloris: `--dribblers` (150) sockets that send a request line, then a header byte every
   0.1 s; the process's thread count (`/proc/self/task`) before and while they hang, and the
   latency of 10 scrapes made meanwhile;
3. basic auth (current server only): a scrape with a bcrypt cost-10 password, the first one
   (one bcrypt round) and the p50 of the next 20 (the verified-credentials cache).

`--baseline REV` loads `monitor/http.py` as it was at REV (`git show`) and measures 1 and 2 on
it too. Prints a markdown table; the machine is shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import trustme
from prometheus_client import CollectorRegistry

from bench.procs import REPO
from monitor.http import HttpServer, WebConfig, load_web_config
from monitor.metrics import DriftCollector, PipelineMetrics
from monitor.model import Correction, FeatureKind, FeatureResult, ModelEvaluation, Snapshot

FEATURES = 50
PASSWORD = "scrape-secret"


def _snapshot() -> Snapshot:
    features = tuple(
        FeatureResult(
            name=f"f{i:02d}",
            kind=FeatureKind.NUMERIC,
            reference_samples=10_000,
            current_samples=5_000,
            reference_missing_ratio=0.0,
            current_missing_ratio=0.0,
            evaluated=True,
            psi=0.01 * i,
            ks_statistic=0.02,
            ks_pvalue=0.5,
        )
        for i in range(FEATURES)
    )
    model = ModelEvaluation(
        model="fraud",
        evaluated_at=1.0,
        features=features,
        correction=Correction.BH,
        fdr_q=1e-3,
        reference_id="r",
        reference_mode="file",
        watermark=1.0,
    )
    return Snapshot(created_at=1.0, models=(model,))


class _Health:
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def reason(self) -> str:
        return ""


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    PipelineMetrics(
        registry,
        topics=("features",),
        features={"fraud": tuple(f"f{i:02d}" for i in range(FEATURES))},
        evaluation_interval_seconds=15.0,
    )
    DriftCollector(registry, _snapshot())
    return registry


ServerFactory = Callable[[], Any]


def _factory(server_class: Any, **extra: Any) -> ServerFactory:
    def make() -> Any:
        registry = _registry()
        return server_class(
            "127.0.0.1",
            0,
            registry=registry,
            snapshot=_snapshot,
            health=_Health(),
            **extra,
        )

    return make


@dataclass(frozen=True)
class Client:
    """How the load generator talks to a server: TLS context and extra headers."""

    context: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


PLAIN = Client()


def _get(url: str, client: Client = PLAIN, timeout: float = 60.0) -> float:
    """Seconds one GET took; raises on anything but 200."""
    start = time.perf_counter()
    request = urllib.request.Request(url, headers=dict(client.headers))
    with urllib.request.urlopen(request, timeout=timeout, context=client.context) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - start


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _quantiles(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{statistics.median(ordered):.3f} / {p95:.3f} / {ordered[-1]:.3f}"


def idle(server: Any, client: Client = PLAIN) -> dict[str, str]:
    """50 scrapes one after the other."""
    times = [_get(server.url + "/metrics", client) for _ in range(50)]
    return {"idle scrape s p50": f"{statistics.median(times):.4f}"}


def burst(server: Any, clients: int, client: Client = PLAIN) -> dict[str, str]:
    """`clients` concurrent scrapes released by a barrier."""
    barrier = threading.Barrier(clients)
    times: list[float] = []
    failures: list[str] = []

    def scraper() -> None:
        barrier.wait()
        try:
            times.append(_get(server.url + "/metrics", client))
        except Exception as exc:
            failures.append(type(exc).__name__)

    threads = [threading.Thread(target=scraper) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "scrape s p50 / p95 / max": _quantiles(times) if times else "-",
        "failures": f"{len(failures)} of {clients}",
    }


def slowloris(server: Any, dribblers: int) -> dict[str, str]:
    """Thread count and scrape latency while `dribblers` sockets dribble a request head."""
    before = _threads()
    stop = threading.Event()
    with ExitStack() as stack:
        sockets = []
        for _ in range(dribblers):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            sockets.append(sock)

        def dribble() -> None:
            while not stop.wait(0.1):
                for sock in sockets:
                    with suppress(OSError):
                        sock.sendall(b"x")

        dribbler = threading.Thread(target=dribble)
        dribbler.start()
        try:
            time.sleep(1.0)
            during = _threads()
            times = [_get(server.url + "/metrics") for _ in range(10)]
        finally:
            stop.set()
            dribbler.join()
    return {
        "threads before → with dribblers": f"{before} → {during - 1}",  # minus the dribbler
        "scrape s p50 / p95 / max (dribbling)": _quantiles(times),
    }


def tls_viewer(directory: Path) -> tuple[WebConfig, Client]:
    """A web config with a trustme certificate and one bcrypt cost-10 user, and its client."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = directory / "server.crt", directory / "server.key", directory / "ca.pem"
    leaf.private_key_pem.write_to_path(str(key))
    for index, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=index > 0)
    ca.cert_pem.write_to_path(str(ca_file))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    config = directory / "web.yml"
    config.write_text(
        f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n"
        f"basic_auth_users: {{prometheus: '{hashed}'}}\n",
        encoding="utf-8",
    )
    credentials = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    client = Client(
        context=ssl.create_default_context(cafile=str(ca_file)),
        headers={"Authorization": f"Basic {credentials}"},
    )
    return load_web_config(config), client


def auth_cost() -> dict[str, str]:
    """First and cached scrape latency with a bcrypt cost-10 password."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10))
    config = WebConfig(path=Path("bench"), users={"prometheus": hashed})
    credentials = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    client = Client(headers={"Authorization": f"Basic {credentials}"})
    with _factory(HttpServer, web_config=config)() as server:
        first = _get(server.url + "/metrics", client)
        cached = [_get(server.url + "/metrics", client) for _ in range(20)]
    return {"first (bcrypt) s": f"{first:.3f}", "cached p50 s": f"{statistics.median(cached):.3f}"}


def _baseline_class(rev: str) -> Any:
    """`HttpServer` from monitor/http.py at git revision `rev`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:monitor/http.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("driftmon_http_baseline", handle.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(handle.name)
    return module.HttpServer


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print one markdown table per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--dribblers", type=int, default=150)
    parser.add_argument("--baseline", metavar="REV", help="also measure monitor/http.py at REV")
    args = parser.parse_args(argv)
    servers: list[tuple[str, ServerFactory]] = [("current", _factory(HttpServer))]
    if args.baseline:
        servers.append((f"baseline {args.baseline}", _factory(_baseline_class(args.baseline))))
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rows: list[tuple[str, dict[str, str]]] = []
    for name, make in servers:
        with make() as server:
            rows.append((name, {**idle(server), **burst(server, args.clients)}))
        with make() as server:
            rows[-1][1].update(slowloris(server, args.dribblers))
    with tempfile.TemporaryDirectory() as directory:
        web_config, client = tls_viewer(Path(directory))
        with _factory(HttpServer, web_config=web_config)() as server:
            measured = {**idle(server, client), **burst(server, args.clients, client)}
            rows.append(("current, TLS + basic auth", measured))
    columns = list(rows[0][1])
    print("| server | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, values in rows:
        print(f"| {name} | " + " | ".join(values.get(c, "-") for c in columns) + " |")
    auth = auth_cost()
    print()
    print("| basic auth (bcrypt cost 10) | " + " | ".join(auth) + " |")
    print("|---|---|---|")
    print("| current | " + " | ".join(auth.values()) + " |")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

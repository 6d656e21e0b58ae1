"""The HTTP surface: /metrics, /livez, /readyz and /status, with the viewer role's TLS and
basic auth from a `--web.config.file` (the Prometheus exporter toolkit format).

Modules: `routes` (the WSGI dispatcher around prometheus_client's /metrics app), `jsonview`
(the /status document), `wsgiserver` (the bounded server: backlog, connection cap, handler
pool, per-connection deadlines), `webconfig` (the web config file), `auth` (bcrypt basic auth)
and `server` (`HttpServer`, which puts them together).
"""

from monitor.http.jsonview import snapshot_to_json, to_jsonable
from monitor.http.routes import Health
from monitor.http.server import HttpServer
from monitor.http.webconfig import WebConfig, load_web_config
from monitor.http.wsgiserver import Limits

__all__ = [
    "Health",
    "HttpServer",
    "Limits",
    "WebConfig",
    "load_web_config",
    "snapshot_to_json",
    "to_jsonable",
]

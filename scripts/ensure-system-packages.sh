#!/usr/bin/env bash
# Install the Debian packages the test suite runs for real (Prometheus, Alertmanager,
# docker-compose for `docker-compose config`, ss, stunnel4 + openssl for Kafka over TLS, setpriv,
# bubblewrap for the container run without Docker, Java and Maven for a real Apache Kafka).
# Idempotent: does nothing when present.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# ss (iproute2): the HTTP tests read the listen backlog of the server socket from the kernel
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)   # TLS in front of tansu
command -v openssl >/dev/null 2>&1 || need+=(openssl)     # throw-away test CA
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)  # read-only state dir under root
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)    # the container run without Docker
# Apache Kafka from Maven Central for the SASL/ACL tests (tests/support/apache_kafka.py)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ((${#need[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

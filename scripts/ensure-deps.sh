#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages the tests use and this machine
# lacks; nothing here starts a service.
#   - postgresql: initdb/pg_ctl/postgres and the postgres OS user; the tests
#     start their own throwaway cluster (internal/pgtest).
#   - chromium: the dashboard test drives it headless (monitoring/httpapi).
#     QUANTUM_FLOW_CHROMIUM may name another browser binary instead.
#   - prometheus: for promtool, which checks deploy/prometheus/alerts.yml.
set -euo pipefail

missing=()
if [ -z "${QUANTUM_FLOW_TEST_DATABASE_URL:-}" ]; then
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && id postgres >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
fi
if [ -n "${QUANTUM_FLOW_CHROMIUM:-}" ]; then
	[ -x "$QUANTUM_FLOW_CHROMIUM" ] || { echo "ensure-deps: QUANTUM_FLOW_CHROMIUM=$QUANTUM_FLOW_CHROMIUM is not executable" >&2; exit 1; }
else
	command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
fi
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-deps: installing Debian packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "ensure-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Packaged services (a main PostgreSQL cluster, a Prometheus server) must not
# start: the tests run their own. policy-rc.d forbids starts during install.
$SUDO mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres)
# and the postgres OS user exist, installing them with apt-get when missing.
# The tests start their own throwaway cluster from these binaries
# (internal/pgtest); nothing here starts a server.
set -euo pipefail

have_server() {
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && id postgres >/dev/null 2>&1
}

if have_server; then
	exit 0
fi
if [ -n "${QUANTUM_FLOW_TEST_DATABASE_URL:-}" ]; then
	echo "ensure-postgres: no local server binaries; tests use QUANTUM_FLOW_TEST_DATABASE_URL" >&2
	exit 0
fi
echo "ensure-postgres: PostgreSQL server binaries missing; installing Debian's postgresql package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "ensure-postgres: need root (or sudo) to apt-get install postgresql" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# postgresql-common would create and start a system cluster; the tests use
# their own, so ask it not to.
$SUDO mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
$SUDO apt-get install -y -q --no-install-recommends postgresql postgresql-contrib
have_server || { echo "ensure-postgres: install finished but initdb or the postgres user is still missing" >&2; exit 1; }

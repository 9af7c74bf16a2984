#!/usr/bin/env bash
# govulncheck (golang.org/x/vuln) over the whole module, offline: the
# vulnerability database is built from the golang.org/x/vulndb module at a
# pinned version, which the Go module proxy serves
# (internal/tools/vulndb), instead of vuln.go.dev, which the CI machine
# cannot reach. It fails (govulncheck's exit status 3) when the code calls
# a function that an entry names, in a dependency or in the standard
# library of the Go it runs with; vulnerable code that is only required or
# imported is reported but does not fail it.
#
#   scripts/vulncheck.sh                   # text report, as .ci/run runs it
#   scripts/vulncheck.sh -show verbose     # more flags go to govulncheck
#   scripts/vulncheck.sh -format json
#
# The database is as fresh as VULNDB_VERSION, a pseudo-version whose date
# is the vulndb commit's. To bump it, set it below to the newest one the
# proxy has: go list -m golang.org/x/vulndb@latest
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018 # 2026-11-05
GOVULNCHECK_VERSION=v1.9.0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./internal/tools/vulndb -version "$VULNDB_VERSION" -out "$tmp/db"
# Installed rather than `go run`, which would turn its exit status 3
# (vulnerabilities found) into 1.
GOBIN="$tmp/bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
"$tmp/bin/govulncheck" -db "file://$tmp/db" "$@" ./...

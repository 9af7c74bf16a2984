package reliability

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Passed reports whether every result passed.
func (rep *Report) Passed() bool {
	for _, r := range rep.Results {
		if !r.Pass {
			return false
		}
	}
	return true
}

// WriteJSON writes the report as one JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteMarkdown writes the report as Markdown: a summary table, then each
// scenario with its rule and, per backend, what was done, the accounting
// and the scenario's figures.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# QuantumFlow reliability report\n\n")
	b.WriteString("Written by `scripts/reliability.sh` (`go run ./cmd/quantumflow-reliability`); see package reliability for what each scenario does and how messages are counted.\n\n")
	fmt.Fprintf(&b, "- Mode: **%s**", rep.Mode)
	if rep.Mode == "short" {
		b.WriteString(" (every scenario at CI size: fewer messages, shorter faults and outages; `scripts/reliability.sh` without --short runs the full sizes: a 30s outage, a 20s blackhole, a 60s transaction, 10k malformed messages, a million-message soak)")
	}
	b.WriteString("\n")
	if rep.Command != "" {
		fmt.Fprintf(&b, "- Command: `%s`\n", rep.Command)
	}
	fmt.Fprintf(&b, "- Started: %s, took %.0fs\n", rep.Started.Format("2006-01-02 15:04 MST"), rep.Seconds)
	fmt.Fprintf(&b, "- Machine: %s; load average at the start %s (other work on the machine slows every figure)\n\n", rep.Machine, rep.Load)

	b.WriteString("## Summary\n\n")
	b.WriteString("| scenario | backend | result | published | consumed | dead-lettered | duplicated | lost | publish errors | RSS MiB start → end (peak) | goroutines start → end (peak) | seconds |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %.0f → %.0f (%.0f) | %d → %d (%d) | %.0f |\n",
			r.Scenario, r.Backend, verdict(r), r.Published, r.Consumed, r.DeadLettered, r.Duplicated, r.Lost, r.PublishErrors,
			r.Start.RSSMiB, r.End.RSSMiB, r.Peak.RSSMiB, r.Start.Goroutines, r.End.Goroutines, r.Peak.Goroutines, r.Seconds)
	}
	b.WriteString("\n")
	for _, sc := range scenarios {
		var rs []*Result
		for _, r := range rep.Results {
			if r.Scenario == sc.name {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\nRule: %s.\n\n", sc.name, sc.rule)
		for _, r := range rs {
			writeResult(&b, r)
		}
	}
	b.WriteString(hostileInput)
	_, err := io.WriteString(w, b.String())
	return err
}

// hostileInput points at the tests of bad and hostile input, which go
// test runs (they need no fault and no load).
const hostileInput = `## Hostile input, fuzzing and secrets (run by go test, not this harness)

Two tables (issue #15) give bad input the way a user does, against PostgreSQL and NATS holding a
message (and, for the HTTP API, a dead letter). Every row must be refused naming what is wrong
(the CLI: exit 2, in text and in JSON; the HTTP API: a 4xx with a JSON error), write nothing (every
queue's figures and pause, the instances and the audit log are compared before and after:
internal/testutil.Contents) and show neither the backend's password nor the admin token. 145 rows:

| what | rows | table |
|---|---:|---|
| CLI flags and arguments | 39 | cmd/cli TestHostileInput, hostileFlags: counts and their limits, schedules, dedup keys, --to and --instance, queue names (path traversal, "..", SQL-injection shapes, NUL, unicode, empty, too long, unknown), dead-letter selectors and ids (NUL, not UTF-8, empty), show and delete ids, serve --http |
| environment variables | 10 | hostileEnv: workers, retries, retry delay, instance_ttl, broadcast_retention, profile, instance id (traversal, NUL) |
| YAML | 15 | hostileYAML: unknown keys, wrong types and shapes, bad durations, negative counts, bad queue names, not YAML, two documents, duplicate keys, NUL |
| URL parameters | 12 | hostileURLs: PostgreSQL sslmode, unknown parameter, port, schema; NATS unknown parameter, timeout, replicas; unknown scheme; unparseable; by flag, environment and file |
| payloads | 8 | hostilePayloads: not JSON, empty, NUL, contract fields (missing, wrong type, out of range), schema version, over the backend's limit |
| metadata | 12 | hostileMetadata: NUL, not UTF-8, malformed priority, delivery time, expiry, dedup key, origin, recipient and contract metadata; on an instance queue and a broadcast copy |
| HTTP API | 49 | monitoring/httpapi TestHostileRequests: malformed JSON 10; limits 5 (413 over 1 MiB); wrong methods 4 (405); queue names and ids 22 (path traversal and %2e%2e 7, SQL-injection shapes 5, NUL 5, unicode 3, empty 2); query parameters and tokens 8 (400, 401, 403) |

Found by the tables and fixed: an id no message can have (NUL, not UTF-8) given to dlq
retry/purge --id or POST /api/dlq/retry and /purge wrote an audit entry and failed with
PostgreSQL's encoding error, and on NATS "purged 0" with success (now refused on every backend before
anything changes: pubsub.ValidateMessageID, the conformance case InvalidEnvelope); publish with
malformed metadata to an addressed or broadcast queue declared the instance queue before the message
was refused (now checked before anything is opened); a quantumflow_origin or quantumflow_to that is
not an instance id was stored, a message no reply could be sent for (now refused at Publish); the
queue names "." and ".." were valid but unreachable through URLs (now invalid); serve --http with
a port out of range exited 1 (now 2).

| what | further tests |
|---|---|
| CLI flags and arguments | cmd/cli TestUsageErrorsExit2 (15 cases), TestHelpForEveryCommand; cmd/quantumflow TestBinaryNeverShowsUnparseableURL (the built binary) |
| environment variables | cmd/cli TestInvalidWorkerEnvExit2NamingIt; topology's env tests |
| YAML | topology's config tests; FuzzLoadYAML (loads and validates, or ErrInvalidConfig) |
| URL parameters | cmd/cli TestBadURLNeverShowsPassword (flag, environment, file; text and JSON); FuzzParseURL in backends/postgres and backends/nats (no password in any error) |
| HTTP API | monitoring/httpapi TestMutationBodyIsOneJSONDocument, TestOversizedBodyIs413, TestWrongMethodIs405, TestQueryParametersAreChecked, TestMutationsNeedTheToken; FuzzRequest (no 5xx, no token in any answer; corpus: path traversal, SQL-injection shapes, NUL, wrong methods) |
| payloads and metadata | conformance case InvalidEnvelope on every backend (id or metadata not UTF-8 or with NUL, origin or recipient not an instance id: ErrInvalidArgument, nothing stored; an id no message can have refused by every operation taking ids); FuzzEnvelope in backends/postgres and backends/nats; the poison scenario above |
| secrets | cmd/cli TestSecretsNeverShown: every command with a PostgreSQL and a NATS URL password, the admin token, nkey and creds files, at debug level in text and JSON |
| PostgreSQL role owning only its schema | backends/postgres TestConformanceSchemaOwnerRole (docs/operations.md) |

scripts/fuzz.sh runs every fuzz target (10s each in .ci/run); seed corpora are under each package's testdata/fuzz.
`

func verdict(r *Result) string {
	if r.Pass {
		return "pass"
	}
	return "**FAIL**"
}

func writeResult(b *strings.Builder, r *Result) {
	fmt.Fprintf(b, "### %s: %s\n\n", r.Backend, verdict(r))
	if r.Done != "" {
		fmt.Fprintf(b, "Done: %s.\n\n", r.Done)
	}
	if !r.Pass {
		fmt.Fprintf(b, "Why: %s.\n\n", oneLine(r.Why))
	}
	fmt.Fprintf(b, "Published %d, consumed %d, dead-lettered %d, duplicated %d, lost %d; %d publish call(s) failed and were tried again.\n\n",
		r.Published, r.Consumed, r.DeadLettered, r.Duplicated, r.Lost, r.PublishErrors)
	if len(r.Figures) > 0 {
		b.WriteString("| figure | value |\n|---|---|\n")
		for _, f := range r.Figures {
			fmt.Fprintf(b, "| %s | %s |\n", f.Name, f.Value)
		}
		b.WriteString("\n")
	}
}

// oneLine keeps a reason on one Markdown line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "|", "/")), " ")
}

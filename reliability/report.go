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

| what | tests |
|---|---|
| CLI flags and arguments | cmd/cli TestUsageErrorsExit2 (15 cases, exit 2 naming what is wrong), TestHelpForEveryCommand |
| environment variables | cmd/cli TestInvalidWorkerEnvExit2NamingIt; topology's env tests |
| YAML | topology's config tests; FuzzLoadYAML (loads and validates, or ErrInvalidConfig) |
| URL parameters | cmd/cli TestBadURLNeverShowsPassword (flag, environment, file; text and JSON); FuzzParseURL in backends/postgres and backends/nats (no password in any error) |
| HTTP API | monitoring/httpapi TestMutationBodyIsOneJSONDocument, TestOversizedBodyIs413, TestWrongMethodIs405, TestQueryParametersAreChecked, TestMutationsNeedTheToken; FuzzRequest (no 5xx, no token in any answer; corpus: path traversal, SQL-injection shapes, NUL, wrong methods) |
| payloads and metadata | conformance case InvalidEnvelope on every backend (id or metadata not UTF-8 or with NUL: ErrInvalidArgument, nothing stored); FuzzEnvelope in backends/postgres and backends/nats; the poison scenario above |
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

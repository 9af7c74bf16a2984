package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/bench"
)

type result struct {
	code           int
	stdout, stderr string
}

func runBench(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"UnknownScenario", []string{"--scenario", "teleport"}, `--scenario "teleport": unknown`},
		{"UnknownSubject", []string{"--subject", "kafka"}, `--subject "kafka": unknown`},
		{"UnknownFlag", []string{"--frob"}, "unknown flag: --frob"},
		{"Argument", []string{"quick"}, `unexpected argument "quick"`},
		{"LogLevel", []string{"--log-level", "loud"}, `--log-level "loud"`},
		{"NATSParamsSyntax", []string{"--nats-params", "a=%zz"}, `--nats-params "a=%zz"`},
		// Refused by the backend, before anything is measured.
		{"NATSParamsUnknown", []string{"--quick", "--scenario", "publish", "--subject", "nats", "--nats-params", "consumer_storage=ram"}, "parameter consumer_storage"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := runBench(t, c.args...)
			require.Equal(t, exitUsage, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout)
		})
	}
}

// TestWritesOutputs runs a tiny in-process selection (no servers) and
// checks the files and the JSON report the command writes.
func TestWritesOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	results := filepath.Join(dir, "RESULTS.md")
	r := runBench(t, "--quick", "--scenario", "publish_batch", "--subject", "mem,gochannel",
		"--out", out, "--results", results, "--json")
	require.Equal(t, exitOK, r.code, "stderr: %s", r.stderr)
	require.Contains(t, r.stderr, "bench: quick run", "progress goes to stderr")

	var rep bench.Report
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	require.Equal(t, "quick", rep.Mode)
	require.Len(t, rep.Results, 4, "mem and gochannel at 256 B and 4 KiB")
	for _, res := range rep.Results {
		require.Empty(t, res.Error)
		require.Positive(t, res.Throughput)
		if res.Subject == "mem" {
			require.Equal(t, "gochannel", res.Ratios[0].Baseline)
		}
	}
	for _, f := range []string{bench.FileJSON, bench.FileMarkdown, bench.FileSVG} {
		require.FileExists(t, filepath.Join(out, f))
	}
	md, err := os.ReadFile(results)
	require.NoError(t, err)
	require.Contains(t, string(md), "go run ./cmd/quantumflow-bench")
	require.Contains(t, string(md), "--results "+results, "the regenerate line repeats the flags")
	require.Contains(t, string(md), "](RESULTS.svg)", "the chart is written beside the results file and linked")
	require.FileExists(t, filepath.Join(dir, "RESULTS.svg"))
	require.FileExists(t, filepath.Join(dir, "RESULTS.json"))
}

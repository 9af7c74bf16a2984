package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/demo"
	"github.com/quantumflow/quantumflow/topology"
)

// The demo itself is tested in package demo; these tests check the
// command over it: flags, the two output forms, exit statuses.

func TestDemoJSON(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "demo", "--json", "--url", "mem://demo-json", "--instances", "2", "--rounds", "8", "--interval", "0s")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stderr, "demo: ", "progress goes to stderr")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stdout), "\n")+1, "one JSON object")
	var s demo.Summary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
	require.True(t, s.Settled)
	require.Zero(t, s.Lost)
	require.Equal(t, "mem://demo-json", s.Backend)
	require.Equal(t, 2, s.Instances)
	require.Len(t, s.Queues, 6)
	require.Equal(t, 16, s.Queues[0].Published, "8 proposals per instance")
	require.Positive(t, s.Total.DeadLettered)
}

func TestDemoText(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "demo", "--url", "mem://demo-text", "--rounds", "14", "--interval", "0s")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	for _, q := range topology.QueueNames() {
		require.Contains(t, r.stdout, q)
	}
	require.Contains(t, r.stdout, "DEAD-LETTERED")
	require.Contains(t, r.stdout, "lost: 0")
	require.Contains(t, r.stderr, "dead letter on proposals_for_consensus_queue after 4 attempt(s)")
}

func TestDemoBadFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--instances", "0"}, "--instances must be at least 1, got 0"},
		{[]string{"--rounds", "-1"}, "--rounds must be at least 1"},
		{[]string{"--max-retries", "-1"}, "--max-retries must not be negative"},
		{[]string{"--timeout", "0s"}, "--timeout and --progress must be positive"},
		{[]string{"--url", "mem://x", "--data-dir", "/tmp/x"}, "--data-dir is for the embedded NATS server"},
		{[]string{"--url", "kafka://x"}, "kafka"},
	} {
		r := noEnv().run(t, append([]string{"demo"}, c.args...)...)
		require.Equal(t, cli.ExitUsage, r.code, "%v: %s", c.args, r.stderr)
		require.Contains(t, r.stderr, c.want, c.args)
		require.Empty(t, r.stdout, "no summary for a run that did not start")
	}
}

// TestDemoBadConfig: configuration the demo reads (worker counts from the
// environment) is checked like every command's: exit 2 naming the variable.
func TestDemoBadConfig(t *testing.T) {
	t.Parallel()
	b := &bundle{env: map[string]string{"QUANTUM_FLOW_METRICS_WORKERS": "lots"}}
	r := b.run(t, "demo", "--url", "mem://demo-bad-config")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "QUANTUM_FLOW_METRICS_WORKERS")
	require.Empty(t, r.stdout)
}

// TestLogFormatJSON checks that --log-format json turns every log line on
// stderr into a JSON object (the routers log at info while the demo runs).
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "demo", "--url", "mem://demo-logjson", "--rounds", "2", "--interval", "0s",
		"--log-level", "info", "--log-format", "json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var routerLines int
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !strings.HasPrefix(l, "{") {
			continue // the demo's own progress lines are for people
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "log line %q", l)
		if m["msg"] == "router running" {
			routerLines++
		}
	}
	require.Positive(t, routerLines, "no JSON log line from a router in:\n%s", r.stderr)
}

func TestBenchMoved(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "bench", "--quick")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "go run ./cmd/quantumflow-bench --quick")
	require.Empty(t, r.stdout)
}

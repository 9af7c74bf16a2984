package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/topology"
)

type demoSummary struct {
	Backend   string `json:"backend"`
	Settled   bool   `json:"settled"`
	Lost      int    `json:"lost"`
	Instances int    `json:"instances"`
	Queues    []struct {
		Queue        string `json:"queue"`
		Published    int    `json:"published"`
		Consumed     int    `json:"consumed"`
		Retried      int    `json:"retried"`
		DeadLettered int    `json:"dead_lettered"`
		Pending      int    `json:"pending"`
		InFlight     int    `json:"in_flight"`
		Lost         int    `json:"lost"`
	} `json:"queues"`
	Total struct {
		Published    int `json:"published"`
		Consumed     int `json:"consumed"`
		Retried      int `json:"retried"`
		DeadLettered int `json:"dead_lettered"`
		Pending      int `json:"pending"`
		InFlight     int `json:"in_flight"`
		Lost         int `json:"lost"`
		Recovered    int `json:"recovered"`
	} `json:"total"`
	Events map[string]int64 `json:"events"`
}

func runDemo(t *testing.T, args ...string) demoSummary {
	t.Helper()
	r := noEnv().run(t, append([]string{"demo", "--json"}, args...)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stderr, "demo: ", "progress goes to stderr")
	var s demoSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stdout), "\n")+1, "one JSON object")
	return s
}

// checkDemo asserts what the demo promises: nothing lost, all six queues
// used, retries and dead letters present, the seed's events emitted.
func checkDemo(t *testing.T, s demoSummary) {
	t.Helper()
	require.True(t, s.Settled)
	require.Zero(t, s.Lost)
	require.Len(t, s.Queues, 6)
	for i, q := range s.Queues {
		require.Equal(t, topology.QueueNames()[i], q.Queue)
		require.Positive(t, q.Published, q.Queue)
		require.Positive(t, q.Consumed, q.Queue)
		require.Zero(t, q.Lost, q.Queue)
		require.Zero(t, q.Pending, q.Queue)
		require.Zero(t, q.InFlight, q.Queue)
		require.Equal(t, q.Published, q.Consumed+q.DeadLettered, q.Queue)
	}
	require.Positive(t, s.Total.Retried)
	require.Positive(t, s.Total.DeadLettered)
	byQueue := map[string]int{}
	for _, q := range s.Queues {
		byQueue[q.Queue] = q.DeadLettered
	}
	require.Positive(t, byQueue[topology.ProposalsQueue], "poison proposals dead-lettered after retries")
	require.Positive(t, byQueue[topology.PatternsQueue], "malformed pattern dead-lettered at once")
	for name, n := range s.Events {
		if name == "publish_failed" {
			require.Zero(t, n)
			continue
		}
		require.Positive(t, n, name)
	}
	require.Len(t, s.Events, 14)
}

func TestDemoOnMem(t *testing.T) {
	t.Parallel()
	s := runDemo(t, "--url", "mem://demo-test", "--instances", "3", "--rounds", "20", "--interval", "0s")
	checkDemo(t, s)
	require.Equal(t, "mem://demo-test", s.Backend)
	require.Equal(t, 3, s.Instances)
	require.Equal(t, 60, s.Queues[0].Published, "20 proposals per instance")
}

func TestDemoDefault(t *testing.T) {
	t.Parallel()
	checkDemo(t, runDemo(t))
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
	for _, args := range [][]string{
		{"--instances", "0"},
		{"--rounds", "-1"},
		{"--max-retries", "-1"},
		{"--url", "mem://x", "--data-dir", "/tmp/x"},
	} {
		r := noEnv().run(t, append([]string{"demo"}, args...)...)
		require.Equal(t, cli.ExitUsage, r.code, "%v: %s", args, r.stderr)
	}
}

// signalWriter is a stderr that calls fn with everything written so far.
type signalWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  func(string)
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	w.fn(w.buf.String())
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var retriesRE = regexp.MustCompile(`, retries [1-9]`)

// TestDemoDataDirSurvivesRestart interrupts a demo while retries are
// scheduled far ahead, and checks that the next demo on the same data
// directory delivers what the first one left.
func TestDemoDataDirSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lookup := func(string) (string, bool) { return "", false }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out1 bytes.Buffer
	errw := &signalWriter{fn: func(s string) {
		if retriesRE.MatchString(s) {
			cancel()
		}
	}}
	code := cli.Run(ctx, []string{"demo", "--json", "--data-dir", dir, "--retry-delay", "2s", "--rounds", "500", "--interval", "5ms", "--progress", "20ms"},
		cli.Env{Stdout: &out1, Stderr: errw, LookupEnv: lookup})
	require.Equal(t, cli.ExitFailure, code, errw.String())
	var first demoSummary
	require.NoError(t, json.Unmarshal(out1.Bytes(), &first), out1.String())
	require.False(t, first.Settled)
	require.Zero(t, first.Lost, "an interrupted run loses nothing either: %s\n%s", out1.String(), errw.String())
	require.Positive(t, first.Total.Pending+first.Total.InFlight, "retries were waiting when the run was interrupted: %s\n%s", out1.String(), errw.String())

	second := runDemo(t, "--data-dir", dir, "--rounds", "1")
	require.True(t, second.Settled)
	require.Zero(t, second.Lost)
	require.Equal(t, first.Total.Pending+first.Total.InFlight, second.Total.Recovered, "what the first run left, the second delivered")
}

func TestDemoOnPostgres(t *testing.T) {
	t.Parallel()
	url := postgresURL(t)
	s := runDemo(t, "--url", url, "--rounds", "14", "--interval", "0s")
	checkDemo(t, s)
	require.True(t, strings.HasPrefix(s.Backend, "postgres://"), s.Backend)
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

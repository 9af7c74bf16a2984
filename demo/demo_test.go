package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	neturl "net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/demo"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) { pgtest.MainCheckingLeaks(m, nil) }

// postgresURL returns the URL of a fresh database on the shared throwaway
// PostgreSQL server.
func postgresURL(t *testing.T) string { return pgtest.Database(t) }

// options are o without the process environment: worker counts are the
// seed's whatever the machine has set.
func options(o demo.Options) demo.Options {
	o.Config.LookupEnv = testutil.Env(nil)
	return o
}

// run runs the demo, which must settle, and returns its summary and
// progress output.
func run(t *testing.T, o demo.Options) (demo.Summary, string) {
	t.Helper()
	var progress bytes.Buffer
	s, err := demo.Run(context.Background(), options(o), &progress)
	require.NoError(t, err, progress.String())
	require.Contains(t, progress.String(), "demo: ", "progress goes to w")
	return s, progress.String()
}

// checkDemo asserts what the demo promises: nothing lost, all six queues
// used, retries and dead letters present, the seed's events emitted.
func checkDemo(t *testing.T, s demo.Summary) {
	t.Helper()
	require.True(t, s.Settled)
	require.Zero(t, s.Lost)
	require.Empty(t, s.Error)
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
	require.Equal(t, "total", s.Total.Queue)
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

func TestRunOnMem(t *testing.T) {
	t.Parallel()
	s, progress := run(t, demo.Options{URL: "mem://demo-test", Instances: 3, Rounds: 20})
	checkDemo(t, s)
	require.Equal(t, "mem://demo-test", s.Backend)
	require.False(t, s.Embedded)
	require.Equal(t, 3, s.Instances)
	require.Equal(t, 60, s.Queues[0].Published, "20 proposals per instance")
	require.Contains(t, progress, "dead letter on proposals_for_consensus_queue after 4 attempt(s)")
}

// TestRunDefault runs the zero Options: the embedded NATS server.
func TestRunDefault(t *testing.T) {
	t.Parallel()
	s, progress := run(t, demo.Options{})
	checkDemo(t, s)
	require.True(t, s.Embedded)
	require.True(t, s.Durable)
	require.Equal(t, demo.DefaultInstances, s.Instances)
	require.Equal(t, demo.DefaultRounds, s.Rounds)
	require.Contains(t, progress, "demo: embedded NATS JetStream server at nats://")
}

func TestRunOnPostgres(t *testing.T) {
	t.Parallel()
	url := postgresURL(t)
	s, _ := run(t, demo.Options{URL: url, Rounds: 14})
	checkDemo(t, s)
	require.True(t, strings.HasPrefix(s.Backend, "postgres://"), s.Backend)
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	if pw, ok := u.User.Password(); ok {
		require.NotContains(t, s.Backend, pw, "the password is redacted")
	}
}

func TestRunMaxRetriesZero(t *testing.T) {
	t.Parallel()
	zero := 0
	s, progress := run(t, demo.Options{URL: "mem://demo-no-retries", Rounds: 4, MaxRetries: &zero})
	require.True(t, s.Settled)
	require.Zero(t, s.Lost)
	require.Zero(t, s.Total.Retried, "MaxRetries 0: no retry")
	require.Positive(t, s.Total.DeadLettered)
	require.Contains(t, progress, "max retries 0")
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	minus := -1
	for name, o := range map[string]demo.Options{
		"NegativeInstances":  {Instances: -1},
		"NegativeRounds":     {Rounds: -2},
		"NegativeInterval":   {Interval: -time.Second},
		"NegativeMaxRetries": {MaxRetries: &minus},
		"DataDirWithURL":     {URL: "mem://x", DataDir: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var progress bytes.Buffer
			s, err := demo.Run(context.Background(), o, &progress)
			require.ErrorIs(t, err, demo.ErrInvalidOptions)
			require.Nil(t, s.Queues)
			require.Empty(t, progress.String(), "nothing ran")
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	o := demo.Options{URL: "mem://demo-bad-config"}
	o.Config.LookupEnv = testutil.Env(map[string]string{"QUANTUM_FLOW_PROPOSALS_WORKERS": "many"})
	s, err := demo.Run(context.Background(), o, nil)
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
	require.Contains(t, err.Error(), "QUANTUM_FLOW_PROPOSALS_WORKERS")
	require.Nil(t, s.Queues)
}

func TestSummaryText(t *testing.T) {
	t.Parallel()
	s, _ := run(t, demo.Options{URL: "mem://demo-text", Rounds: 14})
	var out bytes.Buffer
	require.NoError(t, s.WriteText(&out))
	text := out.String()
	require.True(t, strings.HasPrefix(text, "QuantumFlow demo on mem://demo-text: centralcloud + 3 singularity instances, 14 rounds, "), text)
	require.Regexp(t, `(?m)^QUEUE\s+PUBLISHED\s+CONSUMED\s+RETRIED\s+DEAD-LETTERED\s+PENDING\s+LOST$`, text)
	for _, q := range append(topology.QueueNames(), "total") {
		require.Regexp(t, `(?m)^`+q+`\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+0$`, text)
	}
	require.Contains(t, text, "lost: 0 — every message was consumed or dead-lettered")

	// The JSON form is the one --json prints.
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var back demo.Summary
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, s.Total, back.Total)
}

var retriesRE = regexp.MustCompile(`, retries [1-9]`)

// signalWriter is a progress writer that calls fn with everything written
// so far.
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

// TestDataDirSurvivesRestart interrupts a demo while retries are scheduled
// far ahead, and checks that the next demo on the same data directory
// delivers what the first one left.
func TestDataDirSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &signalWriter{fn: func(s string) {
		if retriesRE.MatchString(s) {
			cancel()
		}
	}}
	retryDelay := 2 * time.Second
	first, err := demo.Run(ctx, options(demo.Options{DataDir: dir, RetryDelay: &retryDelay, Rounds: 500, Interval: 5 * time.Millisecond, ProgressEvery: 20 * time.Millisecond}), w)
	require.Error(t, err, w.String())
	require.False(t, errors.Is(err, demo.ErrInvalidOptions))
	require.Equal(t, "interrupted", first.Error)
	require.False(t, first.Settled)
	require.Zero(t, first.Lost, "an interrupted run loses nothing either: %+v\n%s", first, w.String())
	require.Positive(t, first.Total.Pending+first.Total.InFlight, "retries were waiting when the run was interrupted: %+v\n%s", first, w.String())

	second, _ := run(t, demo.Options{DataDir: dir, Rounds: 1})
	require.True(t, second.Settled)
	require.Zero(t, second.Lost)
	require.Equal(t, dir, second.DataDir)
	// A publish the interruption cancelled while its ack was on the way
	// failed (publish_failed) and may have stored its message all the
	// same (on NATS): the second run delivers that too.
	left := first.Total.Pending + first.Total.InFlight
	require.GreaterOrEqual(t, second.Total.Recovered, left, "what the first run left, the second delivered")
	require.LessOrEqual(t, int64(second.Total.Recovered), int64(left)+first.Events["publish_failed"], "the second run delivered only what the first left or failed to publish")
}

// checkNamespace runs the demo on url, where an application's queue
// already holds a message, and checks that the demo neither consumed nor
// re-declared it, and removed what it made (or kept it with Keep).
func checkNamespace(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	app, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	defer app.Close()
	require.NoError(t, app.Init(ctx))
	mine := pubsub.QueueSpec{Name: topology.ProposalsQueue, MaxRetries: 5, RetryDelay: 7 * time.Second}
	require.NoError(t, app.DeclareQueue(ctx, mine))
	require.NoError(t, app.Publisher().Publish(topology.ProposalsQueue, message.NewMessage("app-message", []byte(`{}`))))

	s, _ := run(t, demo.Options{URL: url, Rounds: 14}) // every kind of message and failure at least once
	checkDemo(t, s)
	require.NotEmpty(t, s.Namespace)
	require.False(t, s.Kept)

	queues, err := app.ListQueues(ctx)
	require.NoError(t, err)
	require.Len(t, queues, 1, "the demo made nothing outside its namespace: %v", queues)
	require.Equal(t, mine.MaxRetries, queues[0].MaxRetries, "not re-declared")
	require.Equal(t, mine.RetryDelay, queues[0].RetryDelay, "not re-declared")
	st, err := app.Stats(ctx, topology.ProposalsQueue)
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending, "the application's message is untouched")

	if !app.Capabilities().Has(pubsub.CapDurable) {
		return // an in-memory storage goes with its last backend: nothing to keep
	}
	kept, _ := run(t, demo.Options{URL: url, Rounds: 2, Keep: true})
	require.True(t, kept.Kept)
	ns, err := pubsub.Open(ctx, url, pubsub.WithNamespace(kept.Namespace))
	require.NoError(t, err)
	queues, err = ns.ListQueues(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, queues, "kept")
	require.NoError(t, ns.DropNamespace(ctx))
}

func TestNamespaceOnMem(t *testing.T) {
	t.Parallel()
	checkNamespace(t, "mem://namespace-test")
}

func TestNamespaceOnPostgres(t *testing.T) {
	t.Parallel()
	checkNamespace(t, postgresURL(t))
}

func TestNamespaceOnNATS(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	checkNamespace(t, srv.ClientURL())
}

package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) { pgtest.MainCheckingLeaks(m, nil) }

// postgresURL returns the URL of a fresh database on the shared throwaway
// PostgreSQL server.
func postgresURL(t *testing.T) string { return pgtest.Database(t) }

// result is what one run of the tool did.
type result struct {
	code           int
	stdout, stderr string
}

// lines returns stdout's JSON lines decoded.
func (r result) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "line %q", l)
		out = append(out, m)
	}
	return out
}

// bundle is a test's environment: the variables the tool sees and, for
// mem:// URLs, a backend held open so that the storage outlives each run
// (mem storage is dropped when its last backend closes).
type bundle struct {
	env     map[string]string
	url     string
	backend *pubsub.Backend
}

func setup(t *testing.T) *bundle {
	t.Helper()
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	url := "mem://" + name
	b, err := pubsub.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return &bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": url}, url: url, backend: b}
}

func (b *bundle) run(t *testing.T, args ...string) result {
	t.Helper()
	return b.runCtx(t, context.Background(), nil, args...)
}

func (b *bundle) runCtx(t *testing.T, ctx context.Context, stdout *bytes.Buffer, args ...string) result {
	t.Helper()
	if stdout == nil {
		stdout = &bytes.Buffer{}
	}
	var stderr bytes.Buffer
	code := cli.Run(ctx, args, cli.Env{
		Stdout: stdout, Stderr: &stderr,
		LookupEnv: func(k string) (string, bool) { v, ok := b.env[k]; return v, ok },
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func noEnv() *bundle { return &bundle{env: map[string]string{}} }

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"NoCommand", nil, "missing command"},
		{"UnknownCommand", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"UnknownFlag", []string{"queues", "--frob"}, "unknown flag: --frob"},
		{"UnknownGlobalFlagValue", []string{"--log-level", "loud", "queues"}, `--log-level "loud"`},
		{"UnknownLogFormat", []string{"--log-format", "xml", "queues"}, `--log-format "xml": use text or json`},
		{"MissingArgument", []string{"stats"}, "takes 1 argument(s) QUEUE, got 0"},
		{"ExtraArgument", []string{"pending", "a", "b"}, "got 2"},
		{"ArgumentToNoArgCommand", []string{"queues", "extra"}, `unknown command "extra"`},
		{"GroupWithoutSubcommand", []string{"dlq"}, "needs a subcommand: list, purge, retry"},
		{"UnknownSubcommand", []string{"config", "edit"}, `unknown command "edit"`},
		{"BadFlagValue", []string{"pending", "q", "--limit", "x"}, `invalid argument "x"`},
		{"NonPositiveLimit", []string{"pending", "q", "--limit", "0"}, "--limit must be positive"},
		{"UnknownService", []string{"--service", "nope", "queues"}, `service "nope": unknown service`},
		{"UnknownProfile", []string{"--profile", "huge", "queues"}, `--profile="huge": unknown profile`},
		{"InvalidQueueName", []string{"--url", "mem://", "stats", "bad queue!"}, "invalid queue name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := noEnv().run(t, c.args...)
			require.Equal(t, cli.ExitUsage, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout)
		})
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	cmds := [][]string{
		{}, {"init"}, {"queues"}, {"stats"}, {"pending"}, {"publish"}, {"consume"}, {"instances"},
		{"pause"}, {"resume"}, {"show"}, {"delete"},
		{"dlq"}, {"dlq", "list"}, {"dlq", "retry"}, {"dlq", "purge"},
		{"config"}, {"config", "show"}, {"config", "check"}, {"demo"}, {"version"}, {"serve"},
	}
	for _, c := range cmds {
		t.Run(strings.Join(append([]string{"help"}, c...), "_"), func(t *testing.T) {
			t.Parallel()
			r := noEnv().run(t, append(c, "--help")...)
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			require.Contains(t, r.stdout, "Usage:")
			require.Contains(t, r.stdout, "--json", "global flags are listed")
		})
	}
}

func TestInitQueuesStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.run(t, "init", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	got := r.lines(t)
	require.Len(t, got, 1)
	require.Equal(t, true, got[0]["initialized"])
	require.Len(t, got[0]["queues"], 6)

	r = b.run(t, "queues", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rows := r.lines(t)
	require.Len(t, rows, 6)
	names := map[string]map[string]any{}
	for _, row := range rows {
		names[row["queue"].(string)] = row
	}
	for _, q := range topology.QueueNames() {
		require.Contains(t, names, q)
	}
	require.EqualValues(t, pubsub.PriorityHigh, names[topology.RollbackQueue]["priority"])
	require.EqualValues(t, 1000, names[topology.ProposalsQueue]["retry_delay_ms"])

	r = b.run(t, "queues")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "QUEUE")
	require.Contains(t, r.stdout, topology.SafetyProfilesQueue)

	r = b.run(t, "stats", topology.ProposalsQueue, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	st := r.lines(t)
	require.Len(t, st, 1)
	require.Equal(t, topology.ProposalsQueue, st[0]["queue"])
	require.EqualValues(t, 0, st[0]["pending"])

	r = b.run(t, "stats", topology.ProposalsQueue)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "pending")
}

func TestUnknownQueueExit2(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	for _, args := range [][]string{
		{"stats", "no_such_queue"},
		{"publish", "--raw", "no_such_queue", "--payload", "{}"},
		{"consume", "no_such_queue", "--max", "1"},
	} {
		r := b.run(t, args...)
		require.Equal(t, cli.ExitUsage, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "no_such_queue", args)
		require.Contains(t, r.stderr, "queue not found", args)
	}
}

func TestPublishPendingConsume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.ProposalsQueue

	r := b.run(t, "publish", q, "--payload", `{"id":"p1","instance":"s1","change":"tune cache","risk":0.2}`, "--count", "3", "--metadata", "source=test", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	pub := r.lines(t)
	require.Len(t, pub, 3)
	var ids []string
	for _, p := range pub {
		require.Equal(t, q, p["queue"])
		ids = append(ids, p["id"].(string))
	}

	// Text mode prints one id per line.
	r = b.run(t, "publish", "--raw", q, "--payload", `"high"`, "--priority", "high")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	highID := strings.TrimSpace(r.stdout)
	require.NotEmpty(t, highID)

	r = b.run(t, "pending", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	pend := r.lines(t)
	require.Len(t, pend, 4)
	require.Equal(t, highID, pend[0]["id"], "the high-priority message is first")
	var pendIDs []string
	for _, p := range pend[1:] {
		pendIDs = append(pendIDs, p["id"].(string))
	}
	require.Equal(t, ids, pendIDs)
	require.Equal(t, map[string]any{"id": "p1", "instance": "s1", "change": "tune cache", "risk": 0.2}, pend[1]["payload"])
	require.NotContains(t, pend[1], "instance", "a work queue's messages are for no instance")

	r = b.run(t, "pending", q, "--limit", "2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 3, "header and two rows")

	// One worker: delivery order is the pending order.
	r = b.run(t, "consume", q, "--max", "4", "--workers", "1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	got := r.lines(t)
	require.Len(t, got, 4)
	var gotIDs []string
	for _, m := range got {
		require.Equal(t, q, m["queue"])
		require.EqualValues(t, 1, m["attempt"])
		require.NotContains(t, m, "instance")
		require.Contains(t, m, "payload")
		require.Contains(t, m, "metadata")
		gotIDs = append(gotIDs, m["id"].(string))
	}
	require.Equal(t, append([]string{highID}, ids...), gotIDs)
	require.Equal(t, "high", got[0]["payload"])
	md := got[1]["metadata"].(map[string]any)
	require.Equal(t, "test", md["source"])
	require.Equal(t, "quantumflow.proposal/v1", md[contracts.MetadataSchema], "a checked payload carries its contract")
	require.Equal(t, contracts.ContentTypeJSON, md[contracts.MetadataContentType])
	require.NotContains(t, got[0]["metadata"], contracts.MetadataSchema, "--raw adds no contract")

	st, err := b.backend.Stats(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, st.Pending+st.InFlight+st.Scheduled, "every consumed message was acked")
}

func TestPublishRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"NotJSON", []string{"--payload", "{not json"}, "--payload is not valid JSON"},
		{"MissingPayload", nil, "publish needs --payload"},
		{"BadCount", []string{"--payload", "{}", "--count", "0"}, "--count must be positive"},
		{"BadPriority", []string{"--payload", "{}", "--priority", "urgent"}, `--priority "urgent"`},
	}
	for _, c := range cases {
		r := b.run(t, append([]string{"publish", "--raw", topology.ProposalsQueue}, c.args...)...)
		require.Equal(t, cli.ExitUsage, r.code, c.name)
		require.Contains(t, r.stderr, c.want, c.name)
		require.Empty(t, r.stdout, c.name)
	}
	st, err := b.backend.Stats(context.Background(), topology.ProposalsQueue)
	if err == nil {
		require.Zero(t, st.Pending, "nothing was published")
	}
}

// ackWatcher is a stdout that records, on every write, how many messages
// of the queue are not acked yet (pending or in flight: the backend may
// have received some ahead), to check that the line is out before the ack.
type ackWatcher struct {
	t              *testing.T
	backend        *pubsub.Backend
	queue          string
	mu             sync.Mutex
	buf            bytes.Buffer
	flushes        int
	unackedAtWrite []int64
}

func (w *ackWatcher) Write(p []byte) (int, error) {
	st, err := w.backend.Stats(context.Background(), w.queue)
	require.NoError(w.t, err)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unackedAtWrite = append(w.unackedAtWrite, st.Pending+st.InFlight)
	return w.buf.Write(p)
}

func (w *ackWatcher) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushes++
	return nil
}

func TestConsumeWritesAndFlushesBeforeAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.MetricsQueue
	require.Equal(t, cli.ExitOK, b.run(t, "publish", "--raw", q, "--payload", `{"error_rate":0.1}`, "--count", "5").code)

	w := &ackWatcher{t: t, backend: b.backend, queue: q}
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"consume", q, "--workers", "1", "--max", "5", "--json"}, cli.Env{
		Stdout: w, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := b.env[k]; return v, ok },
	})
	require.Equal(t, cli.ExitOK, code, stderr.String())
	require.Equal(t, 5, w.flushes, "flushed once per message")
	require.Len(t, w.unackedAtWrite, 5)
	for i, n := range w.unackedAtWrite {
		// One worker: message i is written after the i before it, and
		// neither it nor any later one may be acked yet.
		require.GreaterOrEqual(t, n, int64(5-i), "message %d was acked before its line was written", i)
	}
	require.Len(t, strings.Split(strings.TrimSpace(w.buf.String()), "\n"), 5)
}

// failingWriter fails every write, like a closed pipe.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestConsumeDoesNotAckWhatItCouldNotWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.PatternsQueue
	require.Equal(t, cli.ExitOK, b.run(t, "publish", "--raw", q, "--payload", `{"name":"x"}`).code)
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"consume", q, "--max", "1", "--json"}, cli.Env{
		Stdout: failingWriter{}, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := b.env[k]; return v, ok },
	})
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, stderr.String(), "write output")
	require.Eventually(t, func() bool {
		st, err := b.backend.Stats(context.Background(), q)
		return err == nil && st.Pending == 1
	}, 5*time.Second, 10*time.Millisecond, "the message went back to the queue")
}

func TestConsumeStopsOnCancelAndIdle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.PatternsQueue
	require.Equal(t, cli.ExitOK, b.run(t, "publish", "--raw", q, "--payload", `{}`, "--count", "2").code)

	r := b.run(t, "consume", q, "--idle", "200ms", "--workers", "2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 2)
	require.Contains(t, r.stdout, "attempt=1")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- b.runCtx(t, ctx, nil, "consume", q) }()
	cancel()
	select {
	case r := <-done:
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("consume did not stop on cancel")
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q := topology.ProposalsQueue
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	ids := deadLetter(t, b.backend, q, 3)

	r := b.run(t, "dlq", "list", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rows := r.lines(t)
	require.Len(t, rows, 3)
	for _, row := range rows {
		require.Contains(t, ids, row["id"])
		require.Equal(t, q, row["queue"])
		require.Equal(t, "boom", row["error"])
		require.Equal(t, "handle_proposal_for_consensus", row["handler"])
	}
	r = b.run(t, "dlq", "list", "--queue", topology.MetricsQueue, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Empty(t, r.lines(t))
	r = b.run(t, "dlq", "list")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, ids[0])

	for _, verb := range []string{"retry", "purge"} {
		r = b.run(t, "dlq", verb)
		require.Equal(t, cli.ExitUsage, r.code, verb)
		require.Contains(t, r.stderr, "needs a selector", verb)
		r = b.run(t, "dlq", verb, "--all", "--queue", q)
		require.Equal(t, cli.ExitUsage, r.code, verb)
		require.Contains(t, r.stderr, "--all cannot be combined", verb)
	}

	r = b.run(t, "dlq", "retry", "--id", ids[0], "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 1, r.lines(t)[0]["retried"])
	st, err := b.backend.Stats(ctx, q)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Pending)
	require.EqualValues(t, 2, st.DeadLetters)

	r = b.run(t, "dlq", "retry", "--queue", q)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "retried 2 dead letter(s) (queue "+q+")")

	deadLetter(t, b.backend, q, 3) // the three retried ones, back again
	r = b.run(t, "dlq", "purge", "--all", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 3, r.lines(t)[0]["purged"])
	st, err = b.backend.Stats(ctx, q)
	require.NoError(t, err)
	require.Zero(t, st.DeadLetters)
}

// deadLetter publishes n messages to queue if it is empty, then takes n
// messages and dead-letters them as the middleware does, returning their
// ids.
func deadLetter(t *testing.T, b *pubsub.Backend, queue string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	if st.Pending == 0 {
		for range n {
			require.NoError(t, b.Publisher().Publish(queue, message.NewMessage(watermill.NewUUID(), []byte(`{"id":"p"}`))))
		}
	}
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	var ids []string
	for range n {
		select {
		case msg := <-ch:
			pubsub.DeliveryOf(msg).MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom", Handler: "handle_proposal_for_consensus", Service: "centralcloud"})
			msg.Ack()
			ids = append(ids, msg.UUID)
		case <-time.After(5 * time.Second):
			t.Fatal("no message to dead-letter")
		}
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, queue)
		return err == nil && st.DeadLetters >= int64(n) && st.InFlight == 0
	}, 5*time.Second, 10*time.Millisecond)
	return ids
}

func TestBadURLNeverShowsPassword(t *testing.T) {
	t.Parallel()
	urls := []string{
		"postgres://app:s3cretpw@db:notaport/x",
		"nosuch://app:s3cretpw@host/x",
		"mem://x?password=s3cretpw",
		"postgres://app:s3cretpw@db/x?sslmode=bogus&password=s3cretpw",
	}
	for _, u := range urls {
		for _, via := range []string{"flag", "env", "file"} {
			b := noEnv()
			args := []string{"queues"}
			switch via {
			case "flag":
				args = append(args, "--url", u)
			case "env":
				b.env["QUANTUM_FLOW_DATABASE_URL"] = u
			case "file":
				path := filepath.Join(t.TempDir(), "qf.yaml")
				require.NoError(t, os.WriteFile(path, []byte("singularity:\n  database_url: \""+u+"\"\n"), 0o600))
				args = append(args, "--config", path)
			}
			for _, jsonOut := range []bool{false, true} {
				a := args
				if jsonOut {
					a = append(a, "--json")
				}
				r := b.run(t, a...)
				require.NotEqual(t, cli.ExitOK, r.code, "%s via %s", u, via)
				require.NotContains(t, r.stderr+r.stdout, "s3cretpw", "%s via %s", u, via)
				require.NotEmpty(t, r.stderr)
			}
		}
	}
	// A well-formed URL of an unknown scheme, or a bad one, is bad
	// configuration.
	r := noEnv().run(t, "queues", "--url", "nosuch://app:s3cretpw@host/x")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "nosuch")
	require.Contains(t, r.stderr, "app:xxxxx@host")
}

func TestInvalidWorkerEnvExit2NamingIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env["QUANTUM_FLOW_CONSENSUS_WORKERS"] = "many"
	for _, args := range [][]string{{"queues"}, {"config", "check"}, {"config", "show"}, {"consume", topology.ConsensusQueue, "--max", "1"}} {
		r := b.run(t, args...)
		require.Equal(t, cli.ExitUsage, r.code, args)
		require.Contains(t, r.stderr, `QUANTUM_FLOW_CONSENSUS_WORKERS="many"`, args)
		require.Contains(t, r.stderr, "not an integer", args)
	}
	b.env["QUANTUM_FLOW_CONSENSUS_WORKERS"] = "0"
	r := b.run(t, "config", "check", "--json")
	require.Equal(t, cli.ExitUsage, r.code)
	rows := r.lines(t)
	require.Len(t, rows, 2, "one line per service")
	require.Equal(t, false, rows[0]["ok"])
	require.Contains(t, rows[0]["error"], "QUANTUM_FLOW_CONSENSUS_WORKERS")
	require.Equal(t, true, rows[1]["ok"], "centralcloud does not read QUANTUM_FLOW_CONSENSUS_WORKERS")
}

func TestConfigShowAndCheck(t *testing.T) {
	t.Parallel()
	b := noEnv()
	b.env["QUANTUM_FLOW_DATABASE_URL"] = "postgres://app:s3cretpw@db/singularity"
	b.env["QUANTUM_FLOW_PROPOSALS_WORKERS"] = "7"

	r := b.run(t, "config", "show")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.NotContains(t, r.stdout, "s3cretpw")
	require.Contains(t, r.stdout, "database_url: postgres://app:xxxxx@db/singularity")
	require.Contains(t, r.stdout, "QUANTUM_FLOW_RETRY_DELAY_MS")
	require.Contains(t, r.stdout, "QUANTUM_FLOW_CONSENSUS_RESULTS_WORKERS", "the table lists both services' variables")

	// The YAML part reads back as a configuration file.
	path := filepath.Join(t.TempDir(), "shown.yaml")
	require.NoError(t, os.WriteFile(path, []byte(r.stdout), 0o600))
	r2 := noEnv().run(t, "config", "show", "--json", "--config", path)
	require.Equal(t, cli.ExitOK, r2.code, r2.stderr)
	cfg := r2.lines(t)[0]["config"].(map[string]any)
	require.Equal(t, "postgres://app:xxxxx@db/singularity", cfg["database_url"])
	require.EqualValues(t, 7, cfg["producers"].([]any)[0].(map[string]any)["workers"], "the env value was saved in the file")

	r = b.run(t, "config", "show", "--json", "--service", "centralcloud", "--url", "mem://flag-wins")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	row := r.lines(t)[0]
	require.Equal(t, "centralcloud", row["service"])
	cfg = row["config"].(map[string]any)
	require.Equal(t, "mem://flag-wins", cfg["messaging_url"], "--url is the messaging backend")
	require.Equal(t, "postgres://app:xxxxx@db/singularity", cfg["database_url"])
	require.EqualValues(t, 7, cfg["consumers"].([]any)[0].(map[string]any)["workers"], "QUANTUM_FLOW_PROPOSALS_WORKERS is centralcloud's proposals consumer")
	require.NotEmpty(t, row["env"])

	r = b.run(t, "config", "check")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "singularity: ok")
	require.Contains(t, r.stdout, "centralcloud: ok")
	require.NotContains(t, r.stdout, "s3cretpw")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("singularity:\n  consumers:\n    consensus_results:\n      handler: handle_nothing\n"), 0o600))
	r = b.run(t, "config", "check", "--config", bad)
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, `handler "handle_nothing" is not registered`)

	r = b.run(t, "config", "check", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, "missing.yaml")
}

func TestJSONErrors(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "stats", "--json")
	require.Equal(t, cli.ExitUsage, r.code)
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &e), r.stderr)
	require.EqualValues(t, 2, e["exit"])
	require.Contains(t, e["error"], "QUEUE")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "version", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	v := r.lines(t)[0]
	require.NotEmpty(t, v["version"])
	require.Contains(t, v["schemes"], "mem")
	r = noEnv().run(t, "version")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "quantumflow "))
}

// bufferedStdout checks that a *bufio.Writer stdout is flushed line by line.
func TestBufferedStdoutIsFlushed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var under bytes.Buffer
	w := bufio.NewWriterSize(&under, 1<<16)
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"publish", "--raw", topology.PatternsQueue, "--payload", "{}", "--json"}, cli.Env{
		Stdout: w, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := b.env[k]; return v, ok },
	})
	require.Equal(t, cli.ExitOK, code, stderr.String())
	require.Contains(t, under.String(), `"id"`, "written through without the caller flushing")
}

func TestRuntimeFailureExit1(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"nats://127.0.0.1:1", "postgres://app:s3cretpw@127.0.0.1:1/x"} {
		r := noEnv().run(t, "queues", "--url", url)
		require.Equal(t, cli.ExitFailure, r.code, "%s: %s", url, r.stderr)
		require.NotContains(t, r.stderr, "s3cretpw")
		require.Contains(t, r.stderr, "Error: open ")
	}
}

// TestCommandsOnPostgres runs the operator's round trip on a durable
// backend, where every command is its own connection and nothing is shared
// in memory: init, publish, pending, consume, dead letters.
func TestCommandsOnPostgres(t *testing.T) {
	t.Parallel()
	b := &bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": postgresURL(t)}}
	q := topology.ProposalsQueue

	r := b.run(t, "queues")
	if r.code != cli.ExitOK {
		require.Contains(t, r.stderr, "quantumflow init", "an uninitialised database says what to do")
	}
	r = b.run(t, "init")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, cli.ExitOK, b.run(t, "init").code, "init is idempotent")
	r = b.run(t, "queues", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 6)

	r = b.run(t, "publish", q, "--payload", `{"id":"p1","instance":"s1","change":"x"}`, "--count", "3", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 3)
	r = b.run(t, "pending", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 3)
	r = b.run(t, "consume", q, "--max", "2", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 2)
	r = b.run(t, "stats", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 1, r.lines(t)[0]["pending"])

	r = b.run(t, "dlq", "list", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Empty(t, r.lines(t))
	r = b.run(t, "dlq", "purge", "--all", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 0, r.lines(t)[0]["purged"])
}

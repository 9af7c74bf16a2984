package cli_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// TestPublishScheduleFlagsRefuseBadInput checks --delay, --at and --ttl:
// bad values and both of --delay and --at are usage errors naming the
// flag, and nothing is published.
func TestPublishScheduleFlagsRefuseBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	q := topology.MetricsQueue
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--delay", "soon"}, `--delay "soon"`},
		{[]string{"--delay", "-5s"}, `--delay "-5s"`},
		{[]string{"--at", "tomorrow"}, `--at "tomorrow": use an RFC 3339 time`},
		{[]string{"--delay", "30s", "--at", "2026-12-24T18:00:00Z"}, "--delay and --at both"},
		{[]string{"--ttl", "0s"}, `--ttl "0s"`},
	} {
		r := b.run(t, append([]string{"publish", q, "--payload", "{}"}, c.args...)...)
		require.Equal(t, cli.ExitUsage, r.code, "%v: %s", c.args, r.stderr)
		require.Contains(t, r.stderr, c.want)
	}
	st, err := b.backend.Stats(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, st.Pending+st.Scheduled, "nothing published")
}

// TestPauseShowDelete drives the controls through the CLI: a delayed and
// a scheduled publish count as scheduled and are listed with their time;
// pause and resume show in stats and queues; show prints a message's
// state; delete removes a waiting message, refuses a held one (exit 1)
// and an unknown id (exit 2).
func TestPauseShowDelete(t *testing.T) {
	t.Parallel()
	t.Run("Mem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		pauseShowDelete(t, b, b.backend)
	})
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		url := postgresURL(t)
		backend, err := pubsub.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = backend.Close() })
		pauseShowDelete(t, &bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": url}}, backend)
	})
}

// pauseShowDelete runs TestPauseShowDelete's commands on b; backend is
// another process's view of the same storage, which holds a message.
func pauseShowDelete(t *testing.T, b *bundle, backend *pubsub.Backend) {
	ctx := context.Background()
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	q := topology.MetricsQueue

	r := b.run(t, "publish", q, "--payload", `{"n":1}`, "--raw", "--delay", "1h", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	delayed := r.lines(t)[0]["id"].(string)
	r = b.run(t, "publish", q, "--payload", `{"n":2}`, "--raw", "--at", "2099-12-24T18:00:00Z", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = b.run(t, "stats", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 2, r.lines(t)[0]["scheduled"])
	r = b.run(t, "pending", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rows := r.lines(t)
	require.Len(t, rows, 2)
	require.Equal(t, "2099-12-24T18:00:00Z", rows[1]["available_at"])

	r = b.run(t, "show", delayed, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	m := r.lines(t)[0]
	require.Equal(t, "scheduled", m["state"])
	require.Equal(t, q, m["queue"])
	require.Equal(t, map[string]any{"n": 1.0}, m["payload"])
	r = b.run(t, "show", delayed)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "scheduled")

	r = b.run(t, "pause", q)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "queue "+q+" paused")
	r = b.run(t, "stats", q, "--json")
	require.Equal(t, true, r.lines(t)[0]["paused"])
	r = b.run(t, "queues")
	require.Contains(t, r.stdout, "PAUSED")
	require.Equal(t, cli.ExitOK, b.run(t, "resume", q).code)
	r = b.run(t, "stats", q, "--json")
	require.Equal(t, false, r.lines(t)[0]["paused"])
	r = b.run(t, "pause", "no_such_queue")
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, "queue not found")

	require.Equal(t, cli.ExitOK, b.run(t, "delete", delayed).code)
	r = b.run(t, "show", delayed)
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, "message not found")
	r = b.run(t, "delete", delayed)
	require.Equal(t, cli.ExitUsage, r.code)
	// The mutations that happened are in the audit log, as the CLI's.
	r = b.run(t, "audit", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var actions []string
	for _, e := range r.lines(t) {
		require.Equal(t, pubsub.AuditRoleCLI, e["role"])
		actions = append(actions, e["action"].(string))
	}
	require.Equal(t, []string{"message.delete", "queue.resume", "queue.pause"}, actions, "newest first")

	r = b.run(t, "publish", topology.ProposalsQueue, "--payload", `{}`, "--raw", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	held := r.lines(t)[0]["id"].(string)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := backend.Subscriber().Subscribe(sctx, topology.ProposalsQueue)
	require.NoError(t, err)
	msg := <-ch
	require.Equal(t, held, msg.UUID)
	r = b.run(t, "delete", held)
	require.Equal(t, cli.ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, pubsub.ErrMessageInFlight.Error())
	msg.Ack()
}

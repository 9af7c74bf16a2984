package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestIdleReceivePolls: a receive waiting on an empty queue makes no
// claim of its own at each poll interval; the poller's look at all
// waiting queues finds a row written by hand (no NOTIFY) and wakes it.
func TestIdleReceivePolls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := pgtest.Database(t)
	b := open(t, withParams(base, "poll_interval", "20ms"))
	d := b.Driver().(*postgres.Driver)
	conn := connect(t, base)

	type result struct {
		ms  []*pubsub.Received
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		ms, err := d.ReceiveBatch(rctx, "idle", 10)
		done <- result{ms, err}
	}()
	time.Sleep(500 * time.Millisecond) // 25 poll intervals
	require.LessOrEqual(t, postgres.Claims(d, "idle"), uint64(2), "an idle receive claims once, not every poll interval")

	_, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{d.Schema()}.Sanitize()+`.quantum_flow_messages (id, queue_name, payload) VALUES ('by-hand', 'idle', '\x01')`)
	require.NoError(t, err)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.Len(t, r.ms, 1)
		require.Equal(t, "by-hand", r.ms[0].ID)
	case <-time.After(20 * time.Second):
		t.Fatal("a row written without a notification was not found by polling")
	}
}

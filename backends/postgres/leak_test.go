package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestCloseLeavesNoGoroutines uses every part of a backend (publish,
// subscribe, settle, listen, leases, notify) and checks that Close stops
// all of them.
//
// Not parallel: other tests' goroutines would count.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	db := withParams(pgtest.Database(t), "lease", "300ms")
	ctx := context.Background()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := pubsub.Open(ctx, db)
	require.NoError(t, err)
	require.NoError(t, b.Init(ctx))
	subCtx, cancel := context.WithCancel(ctx)
	ch, err := b.Subscriber().Subscribe(subCtx, "q")
	require.NoError(t, err)
	require.NoError(t, b.Publisher().Publish("q", newMsg("1"), newMsg("2")))
	m := <-ch
	m.Nack()
	m = <-ch
	m.Ack()
	// Let the lease keeper and the trailing notifier run once.
	time.Sleep(400 * time.Millisecond)
	_, err = b.Stats(ctx, "q")
	require.NoError(t, err)
	require.NoError(t, b.Close())
	cancel()
	for range ch {
	}
}

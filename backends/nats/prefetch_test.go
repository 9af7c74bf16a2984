package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestGiveBackThenRedeliveredHere checks messages received ahead and
// given back when the last subscription ends, then taken by a new
// subscription of the same backend (the state written at the give-back is
// found without reading it back): each counts one attempt, and nothing of
// the delivery state is left once they are acked. A message the ending
// subscription still handed out (read by the drain below, never settled)
// reached its consumer: it counts two.
func TestGiveBackThenRedeliveredHere(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url+"?prefetch=200")
	const queue = "putback"
	msgs := newMessages(20000, "p")
	require.NoError(t, b.Publisher().Publish(queue, msgs...))

	seen := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	// Fast for a while: the engine receives ahead.
	start := time.Now()
	for time.Since(start) < 200*time.Millisecond && len(seen) < 18000 {
		msg := pubsubtest.Receive(t, ch)
		seen[msg.UUID] = pubsub.DeliveryOf(msg).Attempt
		msg.Ack()
	}
	cancel()
	interrupted := map[string]bool{}
	for msg := range ch {
		interrupted[msg.UUID] = true
	}

	ch = subscribe(t, b, queue)
	for len(seen) < len(msgs) {
		msg := pubsubtest.Receive(t, ch)
		_, dup := seen[msg.UUID]
		require.False(t, dup, "message %s delivered again after its ack", msg.UUID)
		seen[msg.UUID] = pubsub.DeliveryOf(msg).Attempt
		msg.Ack()
	}
	for id, attempt := range seen {
		want := 1
		if interrupted[id] {
			want = 2
		}
		require.Equal(t, want, attempt, "attempt of %s", id)
	}
	cons, err := rawStream(t, url, "QF_"+queue).Consumer(t.Context(), "workers")
	require.NoError(t, err)
	require.Greater(t, cons.CachedInfo().Delivered.Consumer, uint64(len(msgs)), "some messages were given back and delivered again")
	require.Eventually(t, func() bool {
		st, err := rawStream(t, url, "QF-STATE").Info(t.Context())
		return err == nil && st.State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond, "delivery state left behind")
}

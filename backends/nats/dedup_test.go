package nats_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

func keyedMsg(id, key string) *message.Message {
	m := message.NewMessage(id, []byte(id))
	pubsub.SetDedupKey(m, key)
	return m
}

// TestDedupAfterConsumed shows where the first id stops being known: a
// duplicate of a message already consumed reports its id to the process
// that stored it (from its cache), and "" to another process (the stream
// no longer holds the message the ack names).
func TestDedupAfterConsumed(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	a, other := openBackend(t, url), openBackend(t, url)
	const queue = "dedup_consumed"
	require.NoError(t, a.Publisher().Publish(queue, keyedMsg("first", "k")))
	m := pubsubtest.Receive(t, subscribe(t, a, queue))
	require.Equal(t, "first", m.UUID)
	m.Ack()
	require.Eventually(t, func() bool {
		st, err := a.Stats(context.Background(), queue)
		return err == nil && st.Pending+st.InFlight == 0
	}, 10*time.Second, 10*time.Millisecond)

	same := keyedMsg("second", "k")
	require.NoError(t, a.Publisher().Publish(queue, same))
	require.Equal(t, "first", same.UUID, "the process that stored the key remembers its id")
	elsewhere := keyedMsg("third", "k")
	require.NoError(t, other.Publisher().Publish(queue, elsewhere))
	require.Empty(t, elsewhere.UUID, "another process cannot know the id of a message gone from the stream")
}

// TestDedupWindowIsStreamWindow: a queue's dedup window is its stream's
// duplicate window; a queue used without a declaration has the URL's
// dedup_window.
func TestDedupWindowIsStreamWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := openBackend(t, server(t).ClientURL()+"?dedup_window=5s")
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "declared", DedupWindow: time.Minute}))
	require.NoError(t, b.Publisher().Publish("undeclared", message.NewMessage("x", nil)))
	qs, err := b.ListQueues(ctx)
	require.NoError(t, err)
	window := func(name string) time.Duration {
		i := slices.IndexFunc(qs, func(q pubsub.QueueInfo) bool { return q.Name == name })
		require.GreaterOrEqual(t, i, 0, name)
		return qs[i].DedupWindow
	}
	require.Equal(t, time.Minute, window("declared"))
	require.Equal(t, 5*time.Second, window("undeclared"))

	// Declared again with another window: the stream follows.
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "declared", DedupWindow: 10 * time.Second}))
	qs, err = b.ListQueues(ctx)
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, window("declared"))
}

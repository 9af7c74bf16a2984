package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestLargeBatchesAreCopied publishes batches of 2 KiB payloads, which go
// in with COPY: each message keeps its payload, metadata and priority
// (its own, or its queue's), and they are delivered in priority order,
// then in publish order.
func TestLargeBatchesAreCopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, pgtest.Database(t))
	const queue = "bulk"
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, Priority: pubsub.PriorityHigh}))

	payload := func(i int) []byte {
		return append([]byte(fmt.Sprintf("%04d:", i)), bytes.Repeat([]byte{byte('a' + i%26)}, 2<<10)...)
	}
	var plain, mixed []*message.Message
	for i := range 40 {
		plain = append(plain, newMsg(string(payload(i)))) // no metadata: COPY leaves the column out
	}
	for i := 40; i < 80; i++ {
		m := newMsg(string(payload(i)))
		switch {
		case i%4 == 1:
			m.Metadata.Set("k", fmt.Sprintf("v%d", i))
		case i%4 == 2:
			pubsub.SetPriority(m, pubsub.PriorityHigh+5)
		}
		mixed = append(mixed, m)
	}
	// Published alone (no COPY), just below the queue's priority: the
	// copied messages without a priority of their own come before it.
	below := newMsg("below")
	pubsub.SetPriority(below, pubsub.PriorityHigh-1)
	require.NoError(t, b.Publisher().Publish(queue, below))
	require.NoError(t, b.Publisher().Publish(queue, plain...))
	require.NoError(t, b.Publisher().Publish(queue, mixed...))

	// Messages with a priority of their own (above the queue's) come
	// first, then the others, which have the queue's.
	var want []*message.Message
	for _, m := range mixed {
		if _, ok, _ := pubsub.PriorityOf(m); ok {
			want = append(want, m)
		}
	}
	for _, m := range append(plain, mixed...) {
		if _, ok, _ := pubsub.PriorityOf(m); !ok {
			want = append(want, m)
		}
	}
	want = append(want, below)
	ch := subscribe(t, b, queue)
	for i, w := range want {
		m := pubsubtest.Receive(t, ch)
		require.Equal(t, w.UUID, m.UUID, "delivery %d", i)
		require.Equal(t, []byte(w.Payload), []byte(m.Payload))
		for k, v := range w.Metadata {
			require.Equal(t, v, m.Metadata.Get(k), "message %d: metadata %s", i, k)
		}
		m.Ack()
	}
}

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
// then in publish order. No notification is due after the first publish,
// so the copies are transactions of their own.
func TestLargeBatchesAreCopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, withParams(pgtest.Database(t), "notify_debounce", "1h"))
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

// TestFailedCopyStoresNothing publishes a copied batch that the table
// refuses part-way (a check constraint the test adds) to a queue nobody
// declared: the publish fails and leaves nothing, neither messages nor
// the queue it would have created in the same transaction, and the next
// publish goes through. Then the same on the queue, now known, with no
// notification due (the copy alone is the transaction).
func TestFailedCopyStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, withParams(db, "notify_debounce", "1h"))
	conn := connect(t, db)
	_, err := conn.Exec(ctx, `ALTER TABLE quantum_flow_messages ADD CONSTRAINT test_no_bad CHECK (substr(payload, 1, 3) <> 'bad'::bytea)`)
	require.NoError(t, err)

	batch := func(bad int) []*message.Message {
		var msgs []*message.Message
		for i := range 40 {
			p := bytes.Repeat([]byte{'a'}, 2<<10)
			if i == bad {
				copy(p, "bad")
			}
			msgs = append(msgs, newMsg(string(p)))
		}
		return msgs
	}
	const queue = "fresh"
	err = b.Publisher().Publish(queue, batch(30)...)
	require.ErrorContains(t, err, "test_no_bad")
	count := func(query string) int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, query, queue).Scan(&n))
		return n
	}
	require.Zero(t, count(`SELECT count(*) FROM quantum_flow_messages WHERE queue_name = $1`))
	require.Zero(t, count(`SELECT count(*) FROM quantum_flow_queues WHERE name = $1`))

	require.NoError(t, b.Publisher().Publish(queue, batch(-1)...))
	require.Equal(t, 40, count(`SELECT count(*) FROM quantum_flow_messages WHERE queue_name = $1`))
	require.Equal(t, 1, count(`SELECT count(*) FROM quantum_flow_queues WHERE name = $1`))

	err = b.Publisher().Publish(queue, batch(0)...)
	require.ErrorContains(t, err, "test_no_bad")
	require.Equal(t, 40, count(`SELECT count(*) FROM quantum_flow_messages WHERE queue_name = $1`))
	require.NoError(t, b.Publisher().Publish(queue, batch(-1)...))
	require.Equal(t, 80, count(`SELECT count(*) FROM quantum_flow_messages WHERE queue_name = $1`))
}

package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/pubsub"
)

// payloads lists the messages' payloads in order.
func payloads(ms []*pubsub.Received) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

// withPriority returns a message with a priority of its own.
func withPriority(payload string, p pubsub.Priority) *message.Message {
	m := newMsg(payload)
	m.Metadata.Set(pubsub.MetadataPriority, strconv.Itoa(int(p)))
	return m
}

// TestClaimFloor: once a queue has a claim floor, claims start there and
// still take messages in delivery order: a higher priority first, the
// floor's priority from the floor on, then lower priorities; a give-back
// puts the next claim back to the queue's start.
func TestClaimFloor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	require.NoError(t, postgres.Heartbeat(ctx, f.d))
	claim := func(n int) []*pubsub.Received {
		t.Helper()
		ms, err := postgres.Claim(ctx, f.d, "q", n)
		require.NoError(t, err)
		return ms
	}
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("one"), newMsg("two"), newMsg("three")))
	require.False(t, postgres.Floored(f.d, "q"), "a queue's first claim reads it in full")
	first := claim(1)
	require.Equal(t, []string{"one"}, payloads(first))
	postgres.KeepFloor(f.d, "q")
	require.True(t, postgres.Floored(f.d, "q"), "the claim set a floor")

	require.NoError(t, f.d.GiveBack(ctx, "q", first))
	require.False(t, postgres.Floored(f.d, "q"), "a give-back rewinds")
	require.Equal(t, []string{"one", "two"}, payloads(claim(2)))
	postgres.KeepFloor(f.d, "q")

	require.NoError(t, f.b.Publisher().Publish("q", withPriority("urgent", pubsub.PriorityHigh), withPriority("later", -1)))
	require.True(t, postgres.Floored(f.d, "q"))
	require.Equal(t, []string{"urgent"}, payloads(claim(1)), "a higher priority than the floor's comes first")
	require.True(t, postgres.Floored(f.d, "q"))
	require.Equal(t, []string{"three", "later"}, payloads(claim(10)), "the lower priorities follow the floor's")
}

// TestRowsBehindFloorDelivered: messages that become ready behind a
// queue's claim floor are delivered all the same: one published in a
// transaction that began before the floor's message and committed after
// its claim, and one given back by another backend.
func TestRowsBehindFloorDelivered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	other := open(t, f.db)
	od := other.Driver().(*postgres.Driver)

	require.NoError(t, f.b.Publisher().Publish("q", newMsg("given back")))
	taken, err := od.ReceiveBatch(ctx, "q", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"given back"}, payloads(taken))

	tx, err := f.d.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, postgres.PublishTx(ctx, f.b, tx, "q", newMsg("late")))
	time.Sleep(200 * time.Millisecond) // the floor's margin is 50 ms
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("floor")))
	require.Equal(t, []string{"floor"}, payloads(f.receive(t, "q", 10)))

	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, od.GiveBack(ctx, "q", taken))
	var got []string
	require.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ms, err := f.d.ReceiveBatch(rctx, "q", 10)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) { // a receive waits until woken
			t.Error(err)
		}
		got = append(got, payloads(ms)...)
		return len(got) >= 2
	}, 20*time.Second, 10*time.Millisecond)
	require.ElementsMatch(t, []string{"late", "given back"}, got)
}

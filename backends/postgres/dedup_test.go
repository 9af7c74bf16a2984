package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

func keyedMsg(payload, key string) *message.Message {
	m := newMsg(payload)
	pubsub.SetDedupKey(m, key)
	return m
}

// TestDedupGroupCommit publishes keyed and plain messages from many
// goroutines of one backend, so that their publishes share transactions
// and statements: each key stores one message, every publisher of a key
// learns the same id, plain messages are all stored.
func TestDedupGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, pgtest.Database(t))
	const queue, publishers, keys = "group_dedup", 60, 7
	require.NoError(t, b.DeclareQueue(ctx, pubsub.DefaultQueueSpec(queue)))
	learned := make([]string, publishers)
	var wg sync.WaitGroup
	for i := range publishers {
		wg.Go(func() {
			k := keyedMsg("k", fmt.Sprint("key-", i%keys))
			require.NoError(t, b.Publisher().Publish(queue, newMsg("plain"), k))
			learned[i] = k.UUID
		})
	}
	wg.Wait()
	for i := range publishers {
		require.Equal(t, learned[i%keys], learned[i], "publisher %d", i)
	}
	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	require.EqualValues(t, publishers+keys, st.Pending)
	pending, err := b.ListPending(ctx, queue, 1000)
	require.NoError(t, err)
	stored := map[string]bool{}
	for _, p := range pending {
		stored[p.ID] = true
	}
	for i := range keys {
		require.True(t, stored[learned[i]], "the id learned for key-%d is stored", i)
	}
}

// TestDedupTableBounded checks that expired claims are deleted, so the
// dedup table holds about one window's keys.
func TestDedupTableBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	d := b.Driver().(*postgres.Driver)
	const queue = "bounded_dedup"
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, DedupWindow: pubsub.MinDedupWindow}))
	msgs := make([]*message.Message, 300)
	for i := range msgs {
		msgs[i] = keyedMsg("x", fmt.Sprint("k", i))
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	conn := connect(t, db)
	count := func() (n int) {
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM quantum_flow_dedup WHERE queue_name = $1`, queue).Scan(&n))
		return n
	}
	require.Equal(t, 300, count())
	time.Sleep(2 * pubsub.MinDedupWindow)
	require.NoError(t, postgres.ExpireDedup(ctx, d))
	require.Zero(t, count(), "expired claims are deleted")

	// An expired claim that was not deleted yet is taken over.
	m := keyedMsg("y", "k1")
	require.NoError(t, b.Publisher().Publish(queue, m))
	time.Sleep(2 * pubsub.MinDedupWindow)
	again := keyedMsg("y", "k1")
	id := again.UUID
	require.NoError(t, b.Publisher().Publish(queue, again))
	require.Equal(t, id, again.UUID)
	require.Equal(t, 1, count())
}

// TestDedupPublishTx: keys claimed inside a transaction count once it
// commits; a rollback releases them.
func TestDedupPublishTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, pgtest.Database(t))
	d := b.Driver().(*postgres.Driver)
	const queue = "tx_dedup"

	tx, err := d.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, d.PublishTx(ctx, tx, queue, keyedMsg("a", "k")))
	require.NoError(t, tx.Rollback(ctx))

	first, second := keyedMsg("b", "k"), keyedMsg("c", "k")
	firstID := first.UUID
	tx, err = d.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, d.PublishTx(ctx, tx, queue, first))
	require.NoError(t, d.PublishTx(ctx, tx, queue, second))
	require.Equal(t, firstID, first.UUID, "the rolled-back claim is gone")
	require.Equal(t, firstID, second.UUID, "a second statement of the transaction sees the claim")
	require.NoError(t, tx.Commit(ctx))

	third := keyedMsg("d", "k")
	require.NoError(t, b.Publisher().Publish(queue, third))
	require.Equal(t, firstID, third.UUID)
	ch := subscribe(t, b, queue)
	got := pubsubtest.Receive(t, ch)
	require.Equal(t, firstID, got.UUID)
	got.Ack()
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, queue)
		return err == nil && st.Pending+st.InFlight == 0
	}, 10*time.Second, 10*time.Millisecond, "one message stored")

	big := message.NewMessage("big", make([]byte, b.MaxPayload()+1))
	tx, err = d.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.ErrorIs(t, d.PublishTx(ctx, tx, queue, big), pubsub.ErrPayloadTooLarge)
}

// TestMaxPayloadParameter: max_payload sets the limit, within bounds.
func TestMaxPayloadParameter(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	b := open(t, withParams(db, "max_payload", "16"))
	require.Equal(t, 16, b.MaxPayload())
	require.NoError(t, b.Publisher().Publish("limit16", message.NewMessage("a", make([]byte, 16))))
	err := b.Publisher().Publish("limit16", message.NewMessage("b", make([]byte, 17)))
	require.ErrorIs(t, err, pubsub.ErrPayloadTooLarge)
	require.ErrorContains(t, err, "publish to queue limit16")
	require.ErrorContains(t, err, "17 bytes, over the backend's limit of 16 bytes")
	for _, v := range []string{"0", "x", fmt.Sprint(64<<20 + 1)} {
		_, err := pubsub.Open(context.Background(), withParams(db, "max_payload", v))
		require.ErrorIs(t, err, pubsub.ErrInvalidURL, "max_payload=%s", v)
	}
}

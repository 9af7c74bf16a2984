package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// createForeignStream creates a queue's stream as another client (or an
// earlier version) would: no metadata, no fast batches, a 2-minute
// duplicate window.
func createForeignStream(t *testing.T, url, queue string) {
	t.Helper()
	_, err := rawJetStream(t, url).CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "QF_" + queue, Subjects: []string{"QF.q." + queue}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
	})
	require.NoError(t, err)
}

// rawJetStream is a JetStream client of its own on the server at url,
// closed when the test ends.
func rawJetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// rawStream returns a queue's stream as another client sees it.
func rawStream(t *testing.T, url, stream string) jetstream.Stream {
	t.Helper()
	st, err := rawJetStream(t, url).Stream(t.Context(), stream)
	require.NoError(t, err)
	return st
}

// TestBatchPublish checks that a publish of many messages (several
// batches) stores each exactly once and in order, that publishing them
// again, all or some, stores nothing new, and that a subscription then
// receives each once. (The order of delivery is JetStream's: stream order,
// but a message the engine gives back, when its consumer is slow, goes
// behind those given back before it; the stream's order is checked
// directly.)
func TestBatchPublish(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url)
	const queue = "batches"
	msgs := newMessages(1001, "b") // batches of 500, 500 and 1
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	require.True(t, rawStream(t, url, "QF_"+queue).CachedInfo().Config.AllowBatchPublish)

	// A publisher retry after a lost answer, whole or in part.
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	require.NoError(t, b.Publisher().Publish(queue, msgs[600:700]...))
	st, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(len(msgs)), st.Pending)

	stream := rawStream(t, url, "QF_"+queue)
	for i, want := range msgs {
		m, err := stream.GetMsg(t.Context(), uint64(i+1))
		require.NoError(t, err)
		require.Equal(t, want.UUID, m.Header.Get("Nats-Msg-Id"), "message %d", i)
	}

	ch := subscribe(t, b, queue)
	seen := map[string]bool{}
	for range msgs {
		got := pubsubtest.Receive(t, ch)
		require.False(t, seen[got.UUID], "message %s received twice", got.UUID)
		seen[got.UUID] = true
		got.Ack()
	}
	for _, want := range msgs {
		require.True(t, seen[want.UUID], "message %s received", want.UUID)
	}
	requireNothing(t, ch, 300*time.Millisecond)
}

// TestBatchPublishFullQueue checks that a batch the queue has room for in
// part fails, naming the queue and saying why, at once (a refusal is not
// retried), and that the messages it stored are there once.
func TestBatchPublishFullQueue(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL()+"?max_msgs=150&publish_timeout=5s")
	const queue = "fullbatch"
	require.NoError(t, b.Publisher().Publish(queue, newMessages(100, "x")...))
	msgs := newMessages(100, "y")
	start := time.Now()
	err := b.Publisher().Publish(queue, msgs...)
	require.ErrorContains(t, err, queue)
	require.ErrorContains(t, err, "maximum messages")
	require.Less(t, time.Since(start), 5*time.Second, "a refusal is not retried until the timeout")
	st, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(150), st.Pending)

	// Room again: the retry stores the rest, and only the rest.
	ch := subscribe(t, b, queue)
	for range 100 {
		pubsubtest.Receive(t, ch).Ack()
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	for _, want := range msgs {
		got := pubsubtest.Receive(t, ch)
		require.Equal(t, want.UUID, got.UUID)
		got.Ack()
	}
	requireNothing(t, ch, 300*time.Millisecond)
}

// TestBatchPublishOlderStream checks a queue whose stream was created
// without fast batch publishing (by an earlier version): Publish works
// through the per-message path, and DeclareQueue turns batches on once.
func TestBatchPublishOlderStream(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	const queue = "older"
	createForeignStream(t, url, queue)

	b := openBackend(t, url)
	msgs := newMessages(300, "o")
	require.NoError(t, b.Publisher().Publish(queue, msgs[:150]...))
	require.False(t, rawStream(t, url, "QF_"+queue).CachedInfo().Config.AllowBatchPublish, "Publish does not change the stream")

	require.NoError(t, b.DeclareQueue(context.Background(), pubsub.QueueSpec{Name: queue}))
	cfg := rawStream(t, url, "QF_"+queue).CachedInfo().Config
	require.True(t, cfg.AllowBatchPublish)
	require.Equal(t, 2*time.Minute, cfg.Duplicates, "a stream from before keeps its dedup window: it may hold keys")
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	st, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(len(msgs)), st.Pending)
}

// TestBatchPublishTurnedOff checks a stream whose fast batch publishing an
// operator turned off while the backend runs: publishes of many messages
// still store every message, through the per-message path.
func TestBatchPublishTurnedOff(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url)
	const queue = "turnedoff"
	require.NoError(t, b.Publisher().Publish(queue, newMessages(10, "a")...))

	st := rawStream(t, url, "QF_"+queue)
	cfg := st.CachedInfo().Config
	require.True(t, cfg.AllowBatchPublish)
	cfg.AllowBatchPublish = false
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.UpdateStream(t.Context(), cfg)
	require.NoError(t, err)

	for range 3 {
		require.NoError(t, b.Publisher().Publish(queue, newMessages(100, "b")...))
	}
	stats, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(310), stats.Pending)
}

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

// TestDedupWindowListed: a queue's dedup window is listed as declared; a
// queue used without a declaration has the URL's dedup_window.
func TestDedupWindowListed(t *testing.T) {
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

	// Declared again with another window.
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "declared", DedupWindow: 10 * time.Second}))
	qs, err = b.ListQueues(ctx)
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, window("declared"))
}

// TestDuplicateWindowFollowsKeys: a queue's stream remembers message ids
// for publish_timeout plus a try (35s by default) until a message with a
// dedup key is published to it, then for the queue's dedup window; the
// dedup window is listed throughout, another process declaring the queue
// again does not narrow the window, and a keyed duplicate published there
// is dropped.
func TestDuplicateWindowFollowsKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := server(t).ClientURL()
	a, other := openBackend(t, url), openBackend(t, url)
	const queue = "keys_later"
	spec := pubsub.QueueSpec{Name: queue, MaxRetries: 3, DedupWindow: 2 * time.Minute}
	require.NoError(t, a.DeclareQueue(ctx, spec))
	streamWindow := func() (time.Duration, string) {
		cfg := rawStream(t, url, "QF_"+queue).CachedInfo().Config
		return cfg.Duplicates, cfg.Metadata["quantumflow_keyed"]
	}
	listed := func() time.Duration {
		qs, err := other.ListQueues(ctx)
		require.NoError(t, err)
		i := slices.IndexFunc(qs, func(q pubsub.QueueInfo) bool { return q.Name == queue })
		require.GreaterOrEqual(t, i, 0)
		return qs[i].DedupWindow
	}
	requireWindow := func(want time.Duration, keyed string) {
		t.Helper()
		got, mark := streamWindow()
		require.Equal(t, want, got, "the stream's duplicate window")
		require.Equal(t, keyed, mark)
		require.Equal(t, spec.DedupWindow, listed(), "the queue's dedup window is listed")
	}

	requireWindow(35*time.Second, "")
	require.NoError(t, a.Publisher().Publish(queue, message.NewMessage("plain", nil)))
	requireWindow(35*time.Second, "")

	first := keyedMsg("first", "k")
	require.NoError(t, a.Publisher().Publish(queue, first))
	requireWindow(2*time.Minute, "true")

	// Another process starting declares the queue again: not narrowed.
	require.NoError(t, other.DeclareQueue(ctx, spec))
	requireWindow(2*time.Minute, "true")
	dup := keyedMsg("again", "k")
	require.NoError(t, other.Publisher().Publish(queue, dup))
	require.Equal(t, "first", dup.UUID, "a duplicate of the stored key")
	st, err := other.Stats(ctx, queue)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Pending, "plain and first")

	// Another window declared: a keyed queue's stream takes it as it is.
	spec.DedupWindow = 3 * time.Minute
	require.NoError(t, other.DeclareQueue(ctx, spec))
	requireWindow(3*time.Minute, "true")
}

// TestDuplicateWindowBeforeKeysFollowsDeclaration: a queue without keys
// declared with another dedup window keeps the short id window, and one
// whose dedup window is shorter has that.
func TestDuplicateWindowBeforeKeysFollowsDeclaration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := server(t).ClientURL()
	b := openBackend(t, url)
	for _, c := range []struct {
		window, stream time.Duration
	}{{time.Minute, 35 * time.Second}, {10 * time.Second, 10 * time.Second}, {5 * time.Minute, 35 * time.Second}} {
		require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "no_keys", DedupWindow: c.window}))
		require.Equal(t, c.stream, rawStream(t, url, "QF_no_keys").CachedInfo().Config.Duplicates, "declared %s", c.window)
	}
}

// TestKeyedPublishOnForeignStream: a queue stream created by another
// client, without metadata, takes a keyed publish: it is marked keyed and
// keeps its duplicate window, and the key deduplicates.
func TestKeyedPublishOnForeignStream(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	const queue = "foreign"
	createForeignStream(t, url, queue)

	b := openBackend(t, url)
	require.NoError(t, b.Publisher().Publish(queue, keyedMsg("first", "k")))
	dup := keyedMsg("second", "k")
	require.NoError(t, b.Publisher().Publish(queue, dup))
	require.Equal(t, "first", dup.UUID)
	cfg := rawStream(t, url, "QF_"+queue).CachedInfo().Config
	require.Equal(t, "true", cfg.Metadata["quantumflow_keyed"])
	require.Equal(t, 2*time.Minute, cfg.Duplicates)
}

// TestKeyedMetadata: a keyed message is delivered with its metadata as
// published, the dedup key included, though the key travels only in
// Nats-Msg-Id.
func TestKeyedMetadata(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL())
	const queue = "keyed_metadata"
	alone := keyedMsg("alone", "k1")
	withMore := keyedMsg("more", "k2")
	withMore.Metadata.Set("a", "b")
	require.NoError(t, b.Publisher().Publish(queue, alone, withMore))
	msgs := subscribe(t, b, queue)
	for _, want := range []*message.Message{alone, withMore} {
		got := pubsubtest.Receive(t, msgs)
		require.Equal(t, want.UUID, got.UUID)
		for k, v := range want.Metadata {
			require.Equal(t, v, got.Metadata.Get(k), k)
		}
		got.Ack()
	}
}

package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// keyed returns a new message with payload and dedup key.
func keyed(payload, key string) *message.Message {
	m := newMessage(payload)
	pubsub.SetDedupKey(m, key)
	return m
}

// receiveAll consumes n messages of queue, acking each, then checks that
// the queue is empty, and returns the ids received.
func receiveAll(t *testing.T, b *pubsub.Backend, queue string, n int) []string {
	t.Helper()
	ch := subscribe(t, b, queue)
	var got []string
	for range n {
		m := Receive(t, ch)
		got = append(got, m.UUID)
		m.Ack()
	}
	requireCounts(t, b, queue, counts{})
	return got
}

// testDedup checks publish-side deduplication within a queue's window: a
// second publish with a key stores nothing and reports the first id, in
// one call or in two, and messages without a key are untouched.
func (s *suite) testDedup(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, MaxRetries: 3, RetryDelay: time.Second}))
	queues, err := b.ListQueues(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(queues, func(q pubsub.QueueInfo) bool { return q.Name == queue })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, pubsub.DefaultDedupWindow, queues[i].DedupWindow, "a queue declared without a window has the default")

	first := keyed("first", "order-1")
	publish(t, b, queue, first)
	firstID := first.UUID
	dup := keyed("again", "order-1")
	publish(t, b, queue, dup)
	require.Equal(t, firstID, dup.UUID, "a duplicate reports the first message's id")

	// In one call: the second of two with a key is the duplicate, and the
	// message without one, and the one with another key, are stored.
	a, plain, a2, other := keyed("a", "order-2"), newMessage("plain"), keyed("a2", "order-2"), keyed("other", "order-3")
	plainID, otherID, aID := plain.UUID, other.UUID, a.UUID
	publish(t, b, queue, a, plain, a2, other)
	require.Equal(t, aID, a2.UUID)
	require.Equal(t, plainID, plain.UUID)
	require.Equal(t, otherID, other.UUID)

	// From another backend (process) too.
	again := keyed("from elsewhere", "order-2")
	publish(t, s.open(t), queue, again)
	require.Equal(t, aID, again.UUID)

	got := receiveAll(t, b, queue, 4)
	require.ElementsMatch(t, []string{firstID, aID, plainID, otherID}, got, "each key's first message is delivered once")

	// The same key on another queue is another key.
	queue2 := newQueueName()
	m := keyed("elsewhere", "order-1")
	id := m.UUID
	publish(t, b, queue2, m)
	require.Equal(t, id, m.UUID)
	require.Equal(t, []string{id}, receiveAll(t, b, queue2, 1))
}

// testDedupWindowEnds checks that a key is forgotten once its queue's
// window ended: the same key then stores a second message.
func (s *suite) testDedupWindowEnds(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	const window = 500 * time.Millisecond
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, MaxRetries: 3, DedupWindow: window}))
	queues, err := b.ListQueues(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(queues, func(q pubsub.QueueInfo) bool { return q.Name == queue })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, window, queues[i].DedupWindow, "the declared window is listed back")

	first := keyed("first", "k")
	publish(t, b, queue, first)
	firstID := first.UUID
	start := time.Now()
	within := keyed("within", "k")
	publish(t, b, queue, within)
	if time.Since(start) < window {
		require.Equal(t, firstID, within.UUID, "within the window: a duplicate")
	}
	// Past the window, with room for a backend that forgets expired keys
	// on a timer (NATS).
	time.Sleep(time.Until(start.Add(3 * window)))
	after := keyed("after", "k")
	afterID := after.UUID
	publish(t, b, queue, after)
	require.Equal(t, afterID, after.UUID, "after the window the key stores a new message")
	require.ElementsMatch(t, []string{firstID, afterID}, receiveAll(t, b, queue, 2))
}

// testDedupConcurrent publishes one key from many backends at once: one
// message is stored, and every publisher learns its id.
func (s *suite) testDedupConcurrent(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	require.NoError(t, b.DeclareQueue(context.Background(), pubsub.DefaultQueueSpec(queue)))
	const publishers = 12
	backends := make([]*pubsub.Backend, 4)
	for i := range backends {
		backends[i] = s.open(t)
	}
	sent := make([]string, publishers)
	learned := make([]string, publishers)
	errs := make([]error, publishers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range publishers {
		m := keyed(fmt.Sprint(i), "race")
		sent[i] = m.UUID
		wg.Go(func() {
			<-start
			errs[i] = backends[i%len(backends)].Publisher().Publish(queue, m)
			learned[i] = m.UUID
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	winner := learned[0]
	require.Contains(t, sent, winner, "the id learned is one of the ids published")
	for i, id := range learned {
		require.Equal(t, winner, id, "publisher %d learned another id", i)
	}
	require.Equal(t, []string{winner}, receiveAll(t, b, queue, 1))
}

// testPayloadLimit checks the backend's payload limit: a payload of the
// limit is stored, one byte more is refused with an error naming the
// queue, the size and the limit, and nothing of that publish is stored.
func (s *suite) testPayloadLimit(t *testing.T) {
	b := s.open(t)
	limit := b.MaxPayload()
	require.Positive(t, limit, "every backend states its payload limit (pubsub.PayloadLimiter)")
	queue := newQueueName()
	fits := message.NewMessage(newMessage("").UUID, make([]byte, limit))
	publish(t, b, queue, fits)

	big := message.NewMessage(newMessage("").UUID, make([]byte, limit+1))
	err := b.Publisher().Publish(queue, newMessage("small"), big)
	require.ErrorIs(t, err, pubsub.ErrInvalidArgument)
	require.ErrorIs(t, err, pubsub.ErrPayloadTooLarge)
	for _, want := range []string{queue, big.UUID, fmt.Sprint(limit + 1), fmt.Sprint(limit)} {
		require.True(t, strings.Contains(err.Error(), want), "error %q names %s", err, want)
	}
	require.Equal(t, []string{fits.UUID}, receiveAll(t, b, queue, 1), "nothing of the refused publish is stored")
}

// testDedupInvalid checks the refusals: a window out of range, an empty or
// overlong key.
func (s *suite) testDedupInvalid(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	for _, w := range []time.Duration{-time.Second, time.Millisecond, pubsub.MaxDedupWindow + time.Second} {
		err := b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, DedupWindow: w})
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "window %s", w)
		require.ErrorContains(t, err, queue)
	}
	for _, k := range []string{"", strings.Repeat("k", pubsub.MaxDedupKeyLen+1), "line\nbreak", "\xff"} {
		err := b.Publisher().Publish(queue, keyed("x", k))
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "key of %d bytes", len(k))
		require.ErrorContains(t, err, pubsub.MetadataDedupKey)
	}
}

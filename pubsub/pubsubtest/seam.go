package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
)

// testZeroSpec checks that a queue declared with MaxRetries 0 and
// RetryDelay 0 (the seed's "never retry") is listed back as declared, and
// that the middleware, configured from that listing, dead-letters the
// first failure.
func (s *suite) testZeroSpec(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, MaxRetries: 0, RetryDelay: 0}))
	queues, err := b.ListQueues(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(queues, func(q pubsub.QueueInfo) bool { return q.Name == queue })
	require.GreaterOrEqual(t, i, 0, "declared queue %s not listed", queue)
	info := queues[i]
	require.Equal(t, 0, info.MaxRetries, "max_retries 0 is listed back as 0")
	require.Zero(t, info.RetryDelay, "retry delay 0 is listed back as 0")

	msg := newMessage("fails once")
	publish(t, b, queue, msg)
	consumer := middleware.Consumer{Service: "conformance", Handler: "always_fails", Queue: queue}
	policy := middleware.RetryPolicy{MaxRetries: info.MaxRetries, Delay: -1} // the listed delay: 0, at once
	h := middleware.Wrap(func(*message.Message) ([]*message.Message, error) {
		return nil, errors.New("boom")
	}, middleware.Stack(middleware.StackConfig{Consumer: consumer, Retry: policy})...)
	got := Receive(t, subscribe(t, b, queue))
	_, _ = h(got) // the poison middleware marks the delivery dead-lettered
	got.Ack()     // and the router acks: the backend moves it
	var dls []pubsub.DeadLetter
	require.Eventually(t, func() bool {
		dls = listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue})
		return len(dls) == 1
	}, eventually, tick, "the first failure dead-letters")
	require.Equal(t, msg.UUID, dls[0].ID)
	require.Equal(t, 1, dls[0].Attempts)
	requireCounts(t, b, queue, counts{DeadLetters: 1})
}

// testPublishContext checks that Publish honours the first message's
// context: a context already done stores nothing and returns its error.
func (s *suite) testPublishContext(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	publish(t, b, queue, newMessage("stored"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	late := newMessage("never stored")
	late.SetContext(ctx)
	err := b.Publisher().Publish(queue, late, newMessage("nor this"))
	require.ErrorIs(t, err, context.Canceled)
	requireCounts(t, b, queue, counts{Pending: 1})
}

// testErrorShape checks that the same failure reads the same on every
// backend: the operation, the queue, then the sentinel.
func (s *suite) testErrorShape(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	unknown := newQueueName()
	_, err := b.Stats(ctx, unknown)
	require.EqualError(t, err, fmt.Sprintf("stats of queue %s: %s", unknown, pubsub.ErrQueueNotFound))
	_, err = b.ListPending(ctx, unknown, 10)
	require.EqualError(t, err, fmt.Sprintf("list pending of queue %s: %s", unknown, pubsub.ErrQueueNotFound))

	require.NoError(t, b.Close())
	queue := newQueueName()
	err = b.Publisher().Publish(queue, newMessage("late"))
	require.EqualError(t, err, fmt.Sprintf("publish to queue %s: %s", queue, pubsub.ErrClosed))
	_, err = b.Subscriber().Subscribe(ctx, queue)
	require.EqualError(t, err, fmt.Sprintf("subscribe to queue %s: %s", queue, pubsub.ErrClosed))
	_, err = b.Stats(ctx, queue)
	require.EqualError(t, err, fmt.Sprintf("stats of queue %s: %s", queue, pubsub.ErrClosed))
}

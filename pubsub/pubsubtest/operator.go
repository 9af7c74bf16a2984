package pubsubtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// declare declares queue with the default spec.
func declare(t *testing.T, b *pubsub.Backend, queue string) {
	t.Helper()
	require.NoError(t, b.DeclareQueue(context.Background(), pubsub.DefaultQueueSpec(queue)))
}

// testPause checks pause and resume across two backends on one storage
// (two processes): once paused, the consumer's backend takes no new
// message within the bound (pubsub.PausePoll, twice), the message its
// consumer holds is settled normally, publishing goes on; resumed, it
// receives what waited.
func (s *suite) testPause(t *testing.T) {
	ctx := context.Background()
	consumer, operator := s.open(t), s.open(t)
	queue := newQueueName()
	declare(t, operator, queue)
	ch := subscribe(t, consumer, queue)

	held := newMessage("held")
	publish(t, operator, queue, held)
	msg := Receive(t, ch)
	require.Equal(t, held.UUID, msg.UUID)

	require.NoError(t, operator.PauseQueue(ctx, queue))
	// Another process learns of it a moment later (NATS: from a watch
	// of the registry); its engine then within a poll, and two make
	// sure it has.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		paused, err := consumer.PausedQueues(ctx)
		if assert.NoError(c, err) {
			assert.Contains(c, paused, queue)
		}
	}, eventually, tick)
	<-time.After(2 * pubsub.PausePoll)

	later := []string{}
	for _, p := range []string{"a", "b", "c"} {
		m := newMessage("while paused " + p)
		publish(t, operator, queue, m)
		later = append(later, string(m.Payload))
	}
	msg.Ack() // in flight when paused: finishes
	requireNothingMore(t, ch, "the consumer of a paused queue")
	st := requireCounts(t, operator, queue, counts{Pending: 3})
	require.True(t, st.Paused, "Stats.Paused of a paused queue")
	<-time.After(pubsub.PausePoll)
	requireNothingMore(t, ch, "the consumer of a paused queue")

	require.NoError(t, operator.ResumeQueue(ctx, queue))
	require.ElementsMatch(t, later, receiveN(t, ch, 3))
	st, err := operator.Stats(ctx, queue)
	require.NoError(t, err)
	require.False(t, st.Paused)

	err = operator.PauseQueue(ctx, newQueueName())
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
	require.ErrorIs(t, operator.PauseQueue(ctx, "bad name!"), pubsub.ErrInvalidQueueName)
}

// receiveAck receives the next message of ch, acks it and returns its id.
func receiveAck(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	m := Receive(t, ch)
	m.Ack()
	return m
}

// testDelayedPublish checks delayed and scheduled publish: the message
// counts as scheduled and is listed with its time until it is due, is
// not delivered before, and its delivery is its first attempt.
func (s *suite) testDelayedPublish(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	declare(t, b, queue)

	due := time.Now().Add(2 * time.Second)
	delayed := newMessage("delayed")
	pubsub.SetDeliverAt(delayed, due)
	now := newMessage("now")
	publish(t, b, queue, delayed, now)
	requireCounts(t, b, queue, counts{Pending: 1, Scheduled: 1})
	ps, err := b.ListPending(ctx, queue, 10)
	require.NoError(t, err)
	require.Equal(t, []string{now.UUID, delayed.UUID}, pendingIDs(ps))
	require.WithinDuration(t, due, ps[1].AvailableAt, 10*time.Millisecond)

	ch := subscribe(t, b, queue)
	require.Equal(t, now.UUID, receiveAck(t, ch).UUID)
	m := Receive(t, ch)
	require.Equal(t, delayed.UUID, m.UUID)
	require.False(t, time.Now().Before(due), "delivered %s before it was due", time.Until(due))
	require.Equal(t, 1, delivery(t, m, queue).Attempt)
	m.Ack()
	requireCounts(t, b, queue, counts{})

	bad := newMessage("bad")
	bad.Metadata.Set(pubsub.MetadataDeliverAt, "tomorrow")
	err = b.Publisher().Publish(queue, bad)
	require.ErrorIs(t, err, pubsub.ErrInvalidArgument)
	require.ErrorContains(t, err, pubsub.MetadataDeliverAt)
}

// testExpiry checks that a message received after its expiry becomes a
// dead letter with the reason "expired" instead of reaching a consumer,
// and that one not expired is delivered.
func (s *suite) testExpiry(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	declare(t, b, queue)

	expired := newMessage("expired")
	pubsub.SetExpiresAt(expired, time.Now().Add(-time.Second))
	fresh := newMessage("fresh")
	pubsub.SetExpiresAt(fresh, time.Now().Add(time.Hour))
	publish(t, b, queue, expired, fresh)

	ch := subscribe(t, b, queue)
	require.Equal(t, fresh.UUID, receiveAck(t, ch).UUID)
	requireCounts(t, b, queue, counts{DeadLetters: 1})
	dls := listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue})
	require.Len(t, dls, 1)
	require.Equal(t, expired.UUID, dls[0].ID)
	require.Equal(t, pubsub.ReasonExpired, dls[0].Error)
	require.Equal(t, []byte("expired"), dls[0].Payload)
}

// testShowAndDelete checks message detail and removal: a pending, a
// scheduled, a held and a dead-lettered message are shown with their
// state; pending and scheduled ones are deleted, a held one is refused
// with ErrMessageInFlight, unknown ids are ErrMessageNotFound.
func (s *suite) testShowAndDelete(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	declare(t, b, queue)

	first, pending, scheduled := newMessage("first"), newMessage("pending"), newMessage("scheduled")
	pending.Metadata.Set("k", "v")
	pubsub.SetDeliverAt(scheduled, time.Now().Add(time.Hour))
	publish(t, b, queue, first, pending, scheduled)

	m, err := b.GetMessage(ctx, "", pending.UUID)
	require.NoError(t, err)
	require.Equal(t, pubsub.StatePending, m.State)
	require.Equal(t, queue, m.Queue)
	require.Equal(t, []byte("pending"), m.Payload)
	require.Equal(t, "v", m.Metadata["k"])
	require.Zero(t, m.Attempts)
	m, err = b.GetMessage(ctx, queue, scheduled.UUID)
	require.NoError(t, err)
	require.Equal(t, pubsub.StateScheduled, m.State)
	require.False(t, m.AvailableAt.IsZero())

	ch := subscribe(t, b, queue)
	held := Receive(t, ch)
	require.Equal(t, first.UUID, held.UUID)
	m, err = b.GetMessage(ctx, queue, first.UUID)
	require.NoError(t, err)
	require.Equal(t, pubsub.StateInFlight, m.State)
	require.Equal(t, 1, m.Attempts)
	require.ErrorIs(t, b.DeleteMessage(ctx, queue, first.UUID), pubsub.ErrMessageInFlight)

	require.NoError(t, b.DeleteMessage(ctx, queue, scheduled.UUID))
	require.NoError(t, b.DeleteMessage(ctx, queue, pending.UUID))
	_, err = b.GetMessage(ctx, queue, pending.UUID)
	require.ErrorIs(t, err, pubsub.ErrMessageNotFound)
	require.ErrorIs(t, b.DeleteMessage(ctx, "", pending.UUID), pubsub.ErrMessageNotFound)
	requireCounts(t, b, queue, counts{InFlight: 1})

	delivery(t, held, queue).MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom"})
	held.Ack()
	requireCounts(t, b, queue, counts{DeadLetters: 1})
	m, err = b.GetMessage(ctx, "", first.UUID)
	require.NoError(t, err)
	require.Equal(t, pubsub.StateDeadLetter, m.State)
	require.Equal(t, "boom", m.LastError)

	_, err = b.GetMessage(ctx, "", newMessage("").UUID)
	require.ErrorIs(t, err, pubsub.ErrMessageNotFound)
	_, err = b.GetMessage(ctx, "", "")
	require.ErrorIs(t, err, pubsub.ErrInvalidArgument)
	require.False(t, errors.Is(err, pubsub.ErrMessageNotFound))
}

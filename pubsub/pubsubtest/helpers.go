package pubsubtest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// receiveTimeout bounds every wait for a message. It is generous because
// the suite's cases run in parallel with Watermill's heavier tests on small
// machines; passing cases never wait that long.
const receiveTimeout = 20 * time.Second

// eventually bounds every wait for a state (stats, listings).
const eventually = 10 * time.Second

// tick is how often a waited-for state is polled.
const tick = 10 * time.Millisecond

// newQueueName returns a fresh queue name valid on every backend (letters,
// digits and '_' only, so that it maps onto table values, stream names and
// subjects alike).
func newQueueName() string {
	return "qfconf_" + strings.ReplaceAll(uuid.NewString(), "-", "")
}

// newMessage returns a message with a fresh id and the payload.
func newMessage(payload string) *message.Message {
	return message.NewMessage(uuid.NewString(), []byte(payload))
}

// numbered returns n messages with fresh ids, their payloads "prefix 0",
// "prefix 1" and so on.
func numbered(n int, prefix string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMessage(prefix + " " + strconv.Itoa(i))
	}
	return msgs
}

// publish publishes msgs to queue in one call.
func publish(t *testing.T, b *pubsub.Backend, queue string, msgs ...*message.Message) {
	t.Helper()
	require.NoError(t, b.Publisher().Publish(queue, msgs...), "publish to %s", queue)
}

// subscribe subscribes to queue; the subscription ends with the test.
func subscribe(t *testing.T, b *pubsub.Backend, queue string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err, "subscribe to %s", queue)
	return ch
}

// Receive waits up to 20 s for the next message of ch and fails the test
// when none comes or ch closes. Backend tests use it too.
func Receive(t testing.TB, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		require.True(t, ok, "subscription channel closed while waiting for a message")
		return msg
	case <-time.After(receiveTimeout):
		t.Fatalf("no message within %s", receiveTimeout)
		return nil
	}
}

// delivery returns the Delivery the backend attached to msg, checking that
// it names queue.
func delivery(t *testing.T, msg *message.Message, queue string) *pubsub.Delivery {
	t.Helper()
	d := pubsub.DeliveryOf(msg)
	require.NotNil(t, d, "message %s carries no pubsub.Delivery: the backend must attach one (pubsub.NewDeliveryContext)", msg.UUID)
	require.Equal(t, queue, d.Queue, "Delivery.Queue of message %s", msg.UUID)
	return d
}

// waitClosed waits until ch is closed, discarding (and nacking) anything
// still delivered.
func waitClosed(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	timeout := time.After(receiveTimeout)
	for {
		select {
		case msg, ok := <-ch:
			if !ok {
				return
			}
			msg.Nack()
		case <-timeout:
			t.Fatalf("subscription channel not closed within %s", receiveTimeout)
		}
	}
}

// counts is the part of QueueStats the suite compares.
type counts struct {
	Pending, InFlight, Scheduled, DeadLetters int64
}

func countsOf(st pubsub.QueueStats) counts {
	return counts{Pending: st.Pending, InFlight: st.InFlight, Scheduled: st.Scheduled, DeadLetters: st.DeadLetters}
}

// requireCounts waits until the stats of queue show want. Settling a
// message (Ack, Nack) is asynchronous in Watermill, so counts that follow
// a settle are awaited, within a bound.
func requireCounts(t *testing.T, b *pubsub.Backend, queue string, want counts) pubsub.QueueStats {
	t.Helper()
	var last pubsub.QueueStats
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := b.Stats(context.Background(), queue)
		if !assert.NoError(c, err) {
			return
		}
		last = st
		assert.Equal(c, want, countsOf(st), "stats of %s", queue)
	}, eventually, tick)
	require.Equal(t, queue, last.Queue)
	return last
}

// ids returns the ids of msgs.
func ids(msgs []*message.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UUID
	}
	return out
}

// pendingIDs returns the ids of a pending listing.
func pendingIDs(ps []pubsub.PendingMessage) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// deadLetterIDs returns the ids of a dead-letter listing.
func deadLetterIDs(dls []pubsub.DeadLetter) []string {
	out := make([]string, len(dls))
	for i, d := range dls {
		out[i] = d.ID
	}
	return out
}

// listDeadLetters lists dead letters matching q.
func listDeadLetters(t *testing.T, b *pubsub.Backend, q pubsub.DeadLetterQuery) []pubsub.DeadLetter {
	t.Helper()
	dls, err := b.ListDeadLetters(context.Background(), q)
	require.NoError(t, err)
	return dls
}

// deadLetterN publishes n messages to queue, receives each and settles it
// as a dead letter, and waits until all n are listed. It returns their ids
// in publish order.
func deadLetterN(t *testing.T, b *pubsub.Backend, queue string, n int) []string {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMessage("dead letter")
	}
	publish(t, b, queue, msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	for range n {
		msg := Receive(t, ch)
		delivery(t, msg, queue).MarkDeadLetter(pubsub.DeadLetterReason{Error: "failed for the test", Handler: "handler", Service: "service"})
		msg.Ack()
	}
	require.Eventually(t, func() bool {
		dls, err := b.ListDeadLetters(context.Background(), pubsub.DeadLetterQuery{Queue: queue})
		return err == nil && len(dls) == n
	}, eventually, tick, "dead letters of %s", queue)
	return ids(msgs)
}

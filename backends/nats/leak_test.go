package nats_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestCloseLeaksNothing checks that a backend closed with subscriptions,
// a dead letter, a retry and publishes behind it leaves no goroutine.
func TestCloseLeaksNothing(t *testing.T) {
	srv := server(t)
	const queue = "leak"
	use := func() {
		b, err := pubsub.Open(context.Background(), srv.ClientURL())
		require.NoError(t, err)
		ch, err := b.Subscriber().Subscribe(context.Background(), queue)
		require.NoError(t, err)
		require.NoError(t, b.Publisher().Publish(queue, newMessages(3, "x")...))
		msg := pubsubtest.Receive(t, ch)
		pubsub.DeliveryOf(msg).RetryAfter(0, nil)
		msg.Nack()
		msg = pubsubtest.Receive(t, ch)
		pubsub.DeliveryOf(msg).MarkDeadLetter(pubsub.DeadLetterReason{Error: "x"})
		msg.Ack()
		pubsubtest.Receive(t, ch) // held when the backend closes
		_, err = b.ListDeadLetters(context.Background(), pubsub.DeadLetterQuery{})
		require.NoError(t, err)
		require.NoError(t, b.Close())
		for range ch {
		}
	}
	// The first round creates the server-side streams and consumers (and
	// their goroutines, which belong to the server).
	use()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	use()
	goleak.VerifyNone(t, opts...)
}

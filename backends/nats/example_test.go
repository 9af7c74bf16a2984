package nats_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	_ "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
)

// A service and an embedded NATS server in one process: a failed message
// comes back after its retry delay, as its second attempt.
func Example() {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{}) // a temporary data directory
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	backend, err := pubsub.Open(ctx, srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer backend.Close()

	const queue = "proposals_for_consensus_queue"
	err = backend.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, MaxRetries: 3, RetryDelay: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := backend.Publisher().Publish(queue, message.NewMessage("p-1", []byte("proposal"))); err != nil {
		panic(err)
	}
	msgs, err := backend.Subscriber().Subscribe(ctx, queue)
	if err != nil {
		panic(err)
	}
	msg := <-msgs
	fmt.Printf("%s, attempt %d\n", msg.Payload, pubsub.DeliveryOf(msg).Attempt)
	pubsub.DeliveryOf(msg).RetryAfter(100*time.Millisecond, errors.New("no quorum yet"))
	msg.Nack()

	msg = <-msgs
	fmt.Printf("%s, attempt %d, failed first at a known time: %t\n", msg.Payload, pubsub.DeliveryOf(msg).Attempt, !pubsub.DeliveryOf(msg).FirstFailureAt.IsZero())
	msg.Ack()
	// Output:
	// proposal, attempt 1
	// proposal, attempt 2, failed first at a known time: true
}

package mem_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/pubsub"
)

// Two backends opened with the same mem:// name share their queues, as two
// services of one process would.
func Example() {
	ctx := context.Background()
	producer, err := pubsub.Open(ctx, "mem://example")
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	consumer, err := pubsub.Open(ctx, "mem://example")
	if err != nil {
		panic(err)
	}
	defer consumer.Close()

	low := message.NewMessage("low", []byte("routine"))
	high := message.NewMessage("high", []byte("urgent"))
	pubsub.SetPriority(high, pubsub.PriorityHigh)
	if err := producer.Publisher().Publish("rollback_triggers_queue", low, high); err != nil {
		panic(err)
	}

	msgs, err := consumer.Subscriber().Subscribe(ctx, "rollback_triggers_queue")
	if err != nil {
		panic(err)
	}
	for range 2 {
		msg := <-msgs
		fmt.Printf("%s (attempt %d)\n", msg.Payload, pubsub.DeliveryOf(msg).Attempt)
		msg.Ack()
	}
	// Output:
	// urgent (attempt 1)
	// routine (attempt 1)
}

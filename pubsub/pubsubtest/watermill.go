package pubsubtest

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/quantumflow/quantumflow/pubsub"
)

// watermillFeatures derives the universal suite's Features from what the
// backend declares, so that every test the backend can honestly pass runs.
func watermillFeatures(caps pubsub.Capabilities) tests.Features {
	return tests.Features{
		// Every subscription of a queue competes for its messages: there is
		// no consumer group that would get its own copy of each message, so
		// the consumer-group test (two groups each receiving every message)
		// does not apply.
		ConsumerGroups: false,
		// Delivery is at least once: a message nacked, or in flight when a
		// subscriber closes, comes back. Declaring false also enables the
		// close/no-loss tests.
		ExactlyOnceDelivery: false,
		// Priority order means "higher priority first, then oldest", so a
		// single subscriber sees messages of one priority in publish order.
		// With several subscribers the handlers race, so order holds only
		// with a single one.
		GuaranteedOrder:                     caps.Has(pubsub.CapPriorityOrder),
		GuaranteedOrderWithSingleSubscriber: true,
		// In Watermill's sense: messages outlive one Pub/Sub instance and
		// are seen by the next one. The Harness contract (every Open shares
		// the suite's storage, as another process would) makes that true of
		// every backend, durable or not, and it enables the test that
		// subscribers closed mid-stream lose nothing.
		Persistent: true,
		// Several instances on one storage work together.
		RequireSingleInstance: false,
		// A queue deletes what was acked; it does not replay history.
		NewSubscriberReceivesOldMessages: false,
		// Messages cross a process boundary (or could): the publisher's
		// context does not travel with them.
		ContextPreserved: false,
	}
}

// testWatermill runs Watermill's universal suite, full mode unless -short.
// Each Pub/Sub instance the suite asks for is a new backend on the shared
// storage.
func (s *suite) testWatermill(t *testing.T) {
	ctor := func(t *testing.T) (message.Publisher, message.Subscriber) {
		b := s.open(t)
		return b.Publisher(), b.Subscriber()
	}
	cgCtor := func(t *testing.T, _ string) (message.Publisher, message.Subscriber) {
		t.Fatal("pubsubtest: consumer groups are not supported: every subscription of a queue competes")
		return nil, nil
	}
	tests.TestPubSub(t, watermillFeatures(s.caps), ctor, cgCtor)
}

// Package pubsubtest is the conformance suite every QuantumFlow backend runs.
//
// A backend's tests describe how to open it (a Harness) and call Run:
//
//	func TestConformance(t *testing.T) {
//		pubsubtest.Run(t, pubsubtest.Harness{
//			Open: func(t *testing.T) *pubsub.Backend {
//				b, err := pubsub.Open(context.Background(), url)
//				require.NoError(t, err)
//				return b
//			},
//		})
//	}
//
// Run checks two things. First, Watermill's universal Pub/Sub suite
// (github.com/ThreeDotsLabs/watermill/pubsub/tests) in full mode, with
// Features derived from the backend's Capabilities. Second, QuantumFlow's
// own semantics (see the pubsub package doc): competing consumers, nack with
// and without a delay, attempt counting, dead letters, priority order, stats
// and pending listings that match what a consumer then receives, a message
// whose ack was lost coming back with its id (what middleware.Inbox needs), Close under
// load losing nothing, and argument errors. What a backend does not declare
// (CapPriorityOrder, CapDeadLetters, CapDelayedRedelivery) is skipped with
// the reason logged.
//
// Definitions the suite pins down where the pubsub package leaves room:
//   - PendingMessage.Attempts counts deliveries made so far: 0 for a message
//     never delivered; the next delivery's Delivery.Attempt is Attempts+1.
//   - DeadLetter.Attempts is the Delivery.Attempt of the delivery that was
//     dead-lettered.
//   - Stats and ListPending of a queue never declared, published to or
//     subscribed to fail with ErrQueueNotFound; a known but empty queue has
//     all counts zero and an empty listing.
//   - While its consumer holds a delivered message unsettled, a
//     subscription holds no other message: Stats counts one in flight for
//     it, and ListPending lists exactly what it will receive next. (Between
//     a settle and the next receive it may already hold the next message,
//     counted as in flight.)
//   - A declared QueueSpec is listed back exactly: MaxRetries 0 and
//     RetryDelay 0 stay 0.
//   - Publish takes its context from the first message: one already done
//     stores nothing and returns the context's error.
//   - Errors read "<operation> queue <name>: <sentinel>" (for example
//     "stats of queue q: pubsub: queue not found") on every backend.
//   - A message with a dedup key (pubsub.MetadataDedupKey) whose key its
//     queue stored within the queue's dedup window is not stored again:
//     Publish returns nil and sets its UUID to the stored message's id,
//     whether the first came in the same call, another call or another
//     backend; concurrent publishes of one key store one message. Once the
//     window ended, the key stores a new message.
//   - Every backend states a payload limit (Backend.MaxPayload): a payload
//     of the limit is stored, a larger one fails with ErrPayloadTooLarge
//     (and ErrInvalidArgument) naming the queue, the size and the limit,
//     and nothing of that publish is stored.
//   - Publish and Subscribe with an invalid queue name fail with
//     ErrInvalidQueueName; after Close, Publish and Subscribe fail with
//     ErrClosed.
package pubsubtest

import (
	"testing"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Harness describes a backend under test.
type Harness struct {
	// Open opens a new *pubsub.Backend on the storage shared by the whole
	// suite run, as another process would (same mem:// name, same
	// PostgreSQL database/schema, same NATS server). Storage is already
	// initialised (Init called by the harness author or inside Open). The
	// suite uses fresh random queue names per case, so sharing storage is
	// fine. The suite closes what it opens (t.Cleanup).
	//
	// Run keeps the first backend it opens open until every case is done,
	// so in-process storage that lives while a backend has it open
	// (mem://NAME) lasts the whole run. One case retries and purges every
	// dead letter of the storage (it runs alone, before the parallel
	// cases): do not point the suite at storage holding dead letters you
	// care about, nor share it with other tests running in parallel.
	Open func(t *testing.T) *pubsub.Backend
}

// Run runs the whole suite against h as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("pubsubtest: Harness.Open is nil")
	}
	s := &suite{h: h}
	caps := s.open(t).Capabilities()
	s.caps = caps
	t.Logf("backend capabilities: %s", caps)

	// Cases that touch every dead letter of the storage run first and alone:
	// parallel subtests are held until Run returns.
	t.Run("DeadLettersAll", s.testDeadLettersAll)

	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Watermill", s.testWatermill},
		{"CompetingConsumers", s.testCompetingConsumers},
		{"NackWithDelay", s.testNackWithDelay},
		{"PlainNack", s.testPlainNack},
		{"AttemptCounting", s.testAttemptCounting},
		{"DeadLetters", s.testDeadLetters},
		{"PurgeDeadLettersByQueue", s.testPurgeDeadLettersByQueue},
		{"PriorityOrder", s.testPriorityOrder},
		{"OrderThroughGiveBacks", s.testOrderThroughGiveBacks},
		{"StatsAndPending", s.testStatsAndPending},
		{"ConsumeWhileRead", s.testConsumeWhileRead},
		{"CloseUnderLoad", s.testCloseUnderLoad},
		{"CloseIdempotent", s.testCloseIdempotent},
		{"UnknownQueue", s.testUnknownQueue},
		{"DeclareQueue", s.testDeclareQueue},
		{"InvalidQueueName", s.testInvalidQueueName},
		{"ZeroSpec", s.testZeroSpec},
		{"PublishContext", s.testPublishContext},
		{"ErrorShape", s.testErrorShape},
		{"Addressed", s.testAddressed},
		{"Broadcast", s.testBroadcast},
		{"InstanceDeadLetters", s.testInstanceDeadLetters},
		{"InstanceGone", s.testInstanceGone},
		{"InstanceRegistry", s.testInstanceRegistry},
		{"Inbox", s.testInbox},
		{"Pause", s.testPause},
		{"DelayedPublish", s.testDelayedPublish},
		{"Expiry", s.testExpiry},
		{"ShowAndDelete", s.testShowAndDelete},
		{"Dedup", s.testDedup},
		{"DedupWindowEnds", s.testDedupWindowEnds},
		{"DedupConcurrent", s.testDedupConcurrent},
		{"DedupInvalid", s.testDedupInvalid},
		{"PayloadLimit", s.testPayloadLimit},
		{"Audit", s.testAudit},
		{"InvalidEnvelope", s.testInvalidEnvelope},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t)
		})
	}
}

// suite carries the harness and what Run learnt about the backend.
type suite struct {
	h    Harness
	caps pubsub.Capabilities
}

// open opens a backend through the harness and closes it when t ends.
func (s *suite) open(t *testing.T) *pubsub.Backend {
	t.Helper()
	b := s.h.Open(t)
	if b == nil {
		t.Fatal("pubsubtest: Harness.Open returned nil")
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

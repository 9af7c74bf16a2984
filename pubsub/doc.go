// Package pubsub is QuantumFlow's portable messaging API.
//
// A service opens a backend by URL and gets Watermill's Publisher and
// Subscriber interfaces plus the seed's monitoring operations (list queues,
// queue stats, pending messages, dead letters), the same on every backend:
//
//	backend, err := pubsub.Open(ctx, "postgres://user@localhost/singularity")
//	...
//	defer backend.Close()
//	err = backend.Publisher().Publish("proposals_for_consensus_queue", msg)
//
// # URLs
//
// The scheme picks the backend through a registry that each backend package
// fills from its init function: import the backend for its side effect
// (for example `_ "github.com/quantumflow/quantumflow/backends/mem"`).
// Query parameters configure the backend; an unknown parameter is an error.
// One parameter is common to every backend: require=cap1,cap2 makes Open
// fail unless the backend provides those capabilities (see Capability).
// Passwords and tokens in URLs never appear in errors or logs (see RedactURL).
//
// # Delivery semantics
//
// Every backend is a queue, not a fan-out bus: all subscriptions to one
// queue compete, and each message is handled by one of them. Delivery is
// at least once. A subscription hands out one message at a time and waits
// for its Ack or Nack. Ack removes the message. Nack makes it visible again,
// immediately or after the delay asked for through the message's Delivery,
// without holding up the other messages of the queue. The attempt count
// travels with the message (Delivery.Attempt). A message whose Delivery was
// marked dead-lettered moves to the dead-letter queue when it is settled.
//
// Retrying, backoff and the decision to dead-letter belong to the
// middleware package; backends only carry them out.
//
// # Operator controls
//
// Backend.PauseQueue and ResumeQueue pause a queue for every process on
// the backend (drivers keep the state: QueuePauser); the engine reads it
// every PausePoll and receives nothing for a paused queue, giving back
// what it received ahead. A message with MetadataDeliverAt (SetDeliverAt)
// is not delivered before that time and counts as scheduled until then;
// one with MetadataExpiresAt (SetExpiresAt) that a subscription receives
// after that time becomes a dead letter with the error ReasonExpired
// instead. Backend.GetMessage and DeleteMessage find one message by id
// (drivers: MessageStore).
package pubsub

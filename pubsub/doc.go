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
//
// # Deduplication
//
// A message published with a dedup key (MetadataDedupKey: SetDedupKey,
// router.WithDedupKey, `quantumflow publish --dedup-key`) is stored only
// if no message with the same key was stored on the same queue within the
// queue's dedup window (QueueSpec.DedupWindow: DefaultDedupWindow, 2
// minutes, unless declared; from MinDedupWindow to MaxDedupWindow, 24h).
// Otherwise Publish stores nothing, returns nil and sets the message's
// UUID to the id of the message stored with the key; concurrent publishes
// of one key store one message and all learn its id. The window counts
// from the publish that stored the key. This is publish-side: a message
// delivered twice (at least once) is a consumer's matter (the PostgreSQL
// backend's HandleInTx commits a handler's writes with the ack). Each
// backend's package doc says how it keeps keys, and where it cannot know
// the first id (NATS, once the first message was consumed).
//
// # Payload limit
//
// Every backend states the largest payload it stores (PayloadLimiter,
// Backend.MaxPayload): 1 MiB by default everywhere (PostgreSQL's
// max_payload URL parameter, NATS's server max_payload less 8 KiB for
// headers, mem's fixed). A larger payload fails Publish with
// ErrPayloadTooLarge (and ErrInvalidArgument), naming the queue, the
// message, its size and the limit, and nothing of that publish is stored.
package pubsub
